//! The `#[cfg(..)]` attributes among those a user gives for a generated struct or trait.
//!
//! An attribute such as `#[cfg(feature = "server")]` given through `server_attribute` lands on
//! the server struct; the struct's impl blocks name it, so they must carry the same `cfg` or a
//! build without the feature fails ("cannot find type"). Likewise for the client struct, and for
//! the server trait (`trait_attribute`), which its object-safe twin and the server's `Service`
//! impl name. Other attributes (`#[derive]`, `#[doc]`, ...) stay on the item they were given for.

/// The `#[cfg(..)]` attributes in `attributes` (attribute text as given to the builder, possibly
/// several in one string), each followed by a newline. `#[cfg_attr(..)]` is not one: it gates
/// nothing.
pub(crate) fn cfg_attributes(attributes: &str) -> String {
    split_attributes(attributes)
        .into_iter()
        .filter(|attribute| is_cfg(attribute))
        .map(|attribute| format!("{attribute}\n"))
        .collect()
}

/// Whether the attribute `#[..]` is a `cfg`.
fn is_cfg(attribute: &str) -> bool {
    let inner = attribute
        .strip_prefix("#[")
        .map(str::trim_start)
        .unwrap_or_default();
    inner
        .strip_prefix("cfg")
        .is_some_and(|rest| rest.trim_start().starts_with('('))
}

/// The outer attributes `#[..]` in `text`, as written. Brackets inside string literals don't
/// count; text that is not an attribute is skipped.
fn split_attributes(text: &str) -> Vec<&str> {
    let mut attributes = Vec::new();
    let mut start = None;
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '#' if depth == 0 && chars.peek().is_some_and(|&(_, next)| next == '[') => {
                start = Some(at);
            }
            '"' if depth > 0 => in_string = true,
            '[' if start.is_some() => depth += 1,
            ']' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    if let Some(begin) = start.take() {
                        attributes.push(&text[begin..=at]);
                    }
                }
            }
            _ => {}
        }
    }
    attributes
}

#[cfg(test)]
mod tests {
    use super::cfg_attributes;

    #[test]
    fn only_cfg_attributes_are_kept() {
        assert_eq!(
            cfg_attributes(r#"#[cfg(feature = "x")]"#),
            "#[cfg(feature = \"x\")]\n"
        );
        assert_eq!(
            cfg_attributes(
                r##"#[derive(Default)] #[cfg(all(unix, feature = "a]b"))]
                   #[cfg_attr(test, derive(Hash))] #[doc = "#[cfg(no)]"] #[ cfg (any())]"##
            ),
            "#[cfg(all(unix, feature = \"a]b\"))]\n#[ cfg (any())]\n"
        );
        assert_eq!(cfg_attributes("#[derive(Clone)]"), "");
        assert_eq!(cfg_attributes(""), "");
        assert_eq!(cfg_attributes("#[cfg(unclosed"), "");
    }
}
