//! Where a fenced code block opens and closes in a comment, by CommonMark's rules, so that a
//! line only looking like a fence (inline code at the start of a line) keeps its text.

/// The fence `line` opens (```` ``` ```` or `~~~`); `None` if it opens none.
pub(crate) fn fence_marker(line: &str) -> Option<&'static str> {
    // CommonMark: at most three spaces in, and no backtick after a backtick fence
    // (```` ```Greeter``` answers ```` opens no block: it is inline code).
    if crate::comments::indent_of(line) > 3 {
        return None;
    }
    let t = line.trim_start();
    if t.starts_with("```") {
        (!t.trim_start_matches('`').contains('`')).then_some("```")
    } else if t.starts_with("~~~") {
        Some("~~~")
    } else {
        None
    }
}

/// Whether `line` closes a fence opened with `marker` in content `content` spaces in: the
/// marker (or a longer run of it) alone, at most three spaces further in.
pub(crate) fn closes_fence(line: &str, marker: &str, content: usize) -> bool {
    let indent = crate::comments::indent_of(line);
    let t = line.trim_start();
    let mark = marker.chars().next().unwrap_or('`');
    indent >= content
        && indent - content <= 3
        && t.starts_with(marker)
        && t.trim_start_matches(mark).trim().is_empty()
}

#[cfg(test)]
mod tests {
    use super::{closes_fence, fence_marker};

    #[test]
    fn fences_open_by_commonmarks_rule() {
        assert_eq!(fence_marker("```"), Some("```"));
        assert_eq!(fence_marker("   ```rust"), Some("```"));
        assert_eq!(
            fence_marker("~~~ `js`"),
            Some("~~~"),
            "tildes take any info string"
        );
        assert_eq!(fence_marker("```Greeter``` answers hellos."), None);
        assert_eq!(
            fence_marker("    ```"),
            None,
            "four spaces in is indented code"
        );
        assert_eq!(fence_marker("``"), None);
    }

    #[test]
    fn fences_close_with_the_marker_alone() {
        assert!(closes_fence("```", "```", 0));
        assert!(closes_fence("  `````  ", "```", 0));
        assert!(
            closes_fence("    ```", "```", 2),
            "in a list item's content"
        );
        assert!(
            !closes_fence("```rust", "```", 0),
            "a closing fence has no info string"
        );
        assert!(!closes_fence("~~~", "```", 0));
    }
}
