//! The statements a list of a message or enum was declared in: `reserved 1, 5 to 9;` and
//! `extensions 100 to 199 [..];` each add several items to one list, and a parser files the
//! comments of each statement under the list's path, one location per statement. Writing the
//! items back in the statements they came from (the source info's spans say which) puts each
//! comment back on its statement; without source info there are no comments to place, and the
//! caller's grouping holds.

use super::text::Text;
use prost_reflect::prost_types::source_code_info::Location;

/// One statement: the indices of its items in the list, and its location (its comments) when
/// the source info has one.
pub(super) struct Statement {
    /// Indices into the list, in order.
    pub(super) items: Vec<usize>,
    /// Where the statement was, with its comments.
    pub(super) location: Option<Location>,
}

/// The statements that declared the `count` items of the list at `path`, from the source info's
/// spans: each statement location at `path` holds the items whose own location (`path` and
/// the item's index) lies within its span. `None` when the source info does not account for
/// every item that way.
pub(super) fn statements(text: &Text, path: &[i32], count: usize) -> Option<Vec<Statement>> {
    let mut statements: Vec<Statement> = Vec::new();
    let mut item_spans: Vec<Option<Span>> = vec![None; count];
    for location in &text.locations {
        if location.path == path {
            statements.push(Statement {
                items: Vec::new(),
                location: Some(location.clone()),
            });
        } else if location.path.len() == path.len() + 1 && location.path.starts_with(path) {
            let at = usize::try_from(location.path[path.len()]).ok()?;
            if let Some(slot) = item_spans.get_mut(at) {
                slot.get_or_insert(Span::of(location)?);
            }
        }
    }
    // The source info need not list a list's statements in the order they were written.
    statements.sort_by_key(|s| {
        s.location
            .as_ref()
            .and_then(Span::of)
            .map(|span| span.start)
    });
    for (item, span) in item_spans.iter().enumerate() {
        let span = (*span)?;
        let owner = statements.iter_mut().find(|s| {
            s.location
                .as_ref()
                .and_then(Span::of)
                .is_some_and(|outer| outer.holds(span))
        })?;
        owner.items.push(item);
    }
    statements.retain(|s| !s.items.is_empty());
    // A statement's items come one after another in the list, and the statements in order.
    let flat: Vec<usize> = statements.iter().flat_map(|s| s.items.clone()).collect();
    (flat == (0..count).collect::<Vec<_>>()).then_some(statements)
}

/// Writes one statement `line` at `indent` with its comments.
pub(super) fn write_statement(text: &mut Text, statement: &Statement, line: &str, indent: &str) {
    if let Some(location) = &statement.location {
        text.leading_of(location, indent);
    }
    text.line(indent, line);
    if let Some(location) = &statement.location {
        text.trailing_of(location, indent);
    }
}

/// A location's span as (start line, start column, end line, end column).
#[derive(Clone, Copy)]
struct Span {
    start: (i32, i32),
    end: (i32, i32),
}

impl Span {
    fn of(location: &Location) -> Option<Span> {
        match *location.span.as_slice() {
            [line, start, end] => Some(Span {
                start: (line, start),
                end: (line, end),
            }),
            [start_line, start, end_line, end] => Some(Span {
                start: (start_line, start),
                end: (end_line, end),
            }),
            _ => None,
        }
    }

    fn holds(self, inner: Span) -> bool {
        self.start <= inner.start && inner.end <= self.end
    }
}
