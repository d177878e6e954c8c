//! Characters that change the visible direction of text (U+202A–U+202E, U+2066–U+2069) are
//! dropped from every `.proto` comment before it becomes rustdoc.
//!
//! rustc refuses them in doc comments (`text_direction_codepoint_in_comment`, deny by default:
//! they can make code read otherwise than it runs), so one such character in a comment would
//! stop the user's build, in a file they did not write. Right-to-left text itself (Arabic,
//! Hebrew) is kept: it needs none of these controls to display.

use prost_types::FileDescriptorSet;

/// Whether `c` is a bidirectional embedding, override or isolate control.
fn is_direction_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Drops direction controls from the leading, trailing and detached comments of every item in
/// `fds` (files without source info have none).
pub(crate) fn drop_direction_controls(fds: &mut FileDescriptorSet) {
    for location in crate::source_comments::locations_mut(fds) {
        let comments = location
            .leading_comments
            .iter_mut()
            .chain(location.trailing_comments.iter_mut())
            .chain(location.leading_detached_comments.iter_mut());
        for comment in comments {
            if comment.chars().any(is_direction_control) {
                comment.retain(|c| !is_direction_control(c));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::source_code_info::Location;
    use prost_types::{FileDescriptorProto, SourceCodeInfo};

    #[test]
    fn controls_go_and_right_to_left_text_stays() {
        let mut fds = FileDescriptorSet {
            file: vec![FileDescriptorProto {
                source_code_info: Some(SourceCodeInfo {
                    location: vec![Location {
                        leading_comments: Some("a \u{202B}مرحبا\u{202C} b".to_owned()),
                        trailing_comments: Some("\u{202E}x\u{2066}y\u{2069}".to_owned()),
                        leading_detached_comments: vec!["plain".to_owned()],
                        ..Location::default()
                    }],
                }),
                ..FileDescriptorProto::default()
            }],
        };
        drop_direction_controls(&mut fds);
        let location = &fds.file[0]
            .source_code_info
            .as_ref()
            .expect("info")
            .location[0];
        assert_eq!(location.leading_comments.as_deref(), Some("a مرحبا b"));
        assert_eq!(location.trailing_comments.as_deref(), Some("xy"));
        assert_eq!(location.leading_detached_comments, ["plain"]);
    }
}
