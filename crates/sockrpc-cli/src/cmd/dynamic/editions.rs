//! The word on a `--proto` file written in protobuf editions (`edition = "2023";`): protox
//! (0.9), which `--proto` files are compiled with, reads proto2 and proto3 only, and its parser
//! stops at the first statement with "expected 'enum', 'extend', ... but found 'edition'", which
//! names neither editions nor what to do. sockrpc-build says the same for the code it generates
//! (`crates/sockrpc-build/src/source_files.rs`).

/// Why `text` (the file `name`) cannot be compiled, if its first statement is `edition = ..;`:
/// where that statement is (`name:LINE:COLUMN`), that editions are not read, and what to write
/// instead.
pub(crate) fn edition_error(name: &str, text: &str) -> Option<String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let at = first_token(text);
    let rest = &text[at..];
    let after = rest.strip_prefix("edition")?;
    if !after.trim_start().starts_with('=') {
        return None;
    }
    let statement = rest.split(';').next().unwrap_or(rest).trim();
    let line = text[..at].matches('\n').count() + 1;
    let column = text[..at]
        .rsplit('\n')
        .next()
        .map_or(0, |line| line.chars().count())
        + 1;
    Some(format!(
        "{name}:{line}:{column}: `{statement};`: protobuf editions are not supported (protox, \
         which sockrpc compiles --proto files with, reads proto2 and proto3 only); declare \
         `syntax = \"proto3\";` or `syntax = \"proto2\";` instead"
    ))
}

/// Where the first token of `text` starts, past whitespace and comments.
fn first_token(text: &str) -> usize {
    let mut at = 0;
    loop {
        let rest = &text[at..];
        let trimmed = rest.trim_start();
        at += rest.len() - trimmed.len();
        if trimmed.starts_with("//") {
            at += trimmed.find('\n').unwrap_or(trimmed.len());
        } else if let Some(comment) = trimmed.strip_prefix("/*") {
            at += comment.find("*/").map_or(trimmed.len(), |end| end + 4);
        } else {
            return at;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edition_is_found_past_comments_and_a_byte_order_mark() {
        let text = "\u{feff}// header\n/* block\n */  edition = \"2023\";\npackage x;";
        let error = edition_error("x.proto", text).unwrap_or_default();
        assert!(
            error.starts_with("x.proto:3:6: `edition = \"2023\";`: protobuf editions"),
            "{error}"
        );
        assert!(edition_error("x.proto", "syntax = \"proto3\";").is_none());
        assert!(edition_error("x.proto", "editions_are_not = 1;").is_none());
        assert!(edition_error("x.proto", "/* unclosed").is_none());
        assert!(edition_error("x.proto", "").is_none());
    }
}
