//! The comments of services and rpcs exactly as written in the `.proto`.
//!
//! prost-build is built with its `cleanup-markdown` feature, so that the comments it renders on
//! messages, fields and enums have their code blocks tagged (all of them as text, once
//! `text_code_blocks.rs` has retagged the fenced ones) and never run as doctests. The
//! [`Comments`] it hands the service generator have been through the same Markdown round trip,
//! which re-wraps and re-escapes them; `comments.rs` renders service and rpc comments itself
//! and wants them as written. They come from the descriptors' source info instead (taken before
//! the retagging), found here by the item's full name.

use std::collections::HashMap;

use prost_build::Comments;
use prost_types::source_code_info::Location;
use prost_types::FileDescriptorSet;

use crate::names::qualified_service;

/// `FileDescriptorProto.service` (field 6) and `ServiceDescriptorProto.method` (field 2): the
/// source info paths of a service (`[6, s]`) and of an rpc (`[6, s, 2, m]`).
const SERVICE_FIELD: i32 = 6;
const METHOD_FIELD: i32 = 2;

/// Every source location of every file in `fds` (files without source info have none), for the
/// passes that rewrite comments before anything renders them.
pub(crate) fn locations_mut(fds: &mut FileDescriptorSet) -> impl Iterator<Item = &mut Location> {
    fds.file
        .iter_mut()
        .filter_map(|file| file.source_code_info.as_mut())
        .flat_map(|info| info.location.iter_mut())
}

/// The leading and trailing comment of every source location in `fds`: what prost-build
/// renders into docs.
pub(crate) fn doc_comments_mut(fds: &mut FileDescriptorSet) -> impl Iterator<Item = &mut String> {
    locations_mut(fds).flat_map(|location| {
        location
            .leading_comments
            .as_mut()
            .into_iter()
            .chain(location.trailing_comments.as_mut())
    })
}

/// Raw comments of every service (`package.Service`) and rpc (`package.Service.Method`).
#[derive(Debug, Default)]
pub(crate) struct SourceComments {
    by_name: HashMap<String, Comments>,
}

impl SourceComments {
    /// Collects the comments of every service and rpc in `fds` (files without source info
    /// contribute nothing).
    pub(crate) fn collect(fds: &FileDescriptorSet) -> Self {
        let mut by_name = HashMap::new();
        for file in fds.file.iter() {
            let Some(info) = &file.source_code_info else {
                continue;
            };
            for location in &info.location {
                let (service, method) = match location.path[..] {
                    [SERVICE_FIELD, s] => (s, None),
                    [SERVICE_FIELD, s, METHOD_FIELD, m] => (s, Some(m)),
                    _ => continue,
                };
                let Some(service) = usize::try_from(service)
                    .ok()
                    .and_then(|s| file.service.get(s))
                else {
                    continue;
                };
                let mut name = qualified_service(file.package(), service.name());
                if let Some(m) = method {
                    let Some(method) = usize::try_from(m).ok().and_then(|m| service.method.get(m))
                    else {
                        continue;
                    };
                    name = format!("{name}.{}", method.name());
                }
                by_name.insert(name, comments(location));
            }
        }
        Self { by_name }
    }

    /// The comments of the service or rpc `full_name`, if the source info had them.
    pub(crate) fn get(&self, full_name: &str) -> Option<&Comments> {
        self.by_name.get(full_name)
    }
}

/// `location`'s comments, one entry per line, as prost-build splits them without
/// `cleanup-markdown`. A lone CR (an old Mac line end) ends a line too, as `\r\n` and `\n` do:
/// kept inside a line, it would be dropped as a control character and join two words.
fn comments(location: &Location) -> Comments {
    let lines = |text: &String| {
        text.replace("\r\n", "\n")
            .replace('\r', "\n")
            .lines()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    Comments {
        leading_detached: location
            .leading_detached_comments
            .iter()
            .map(lines)
            .collect(),
        leading: location.leading_comments.as_ref().map_or(Vec::new(), lines),
        trailing: location
            .trailing_comments
            .as_ref()
            .map_or(Vec::new(), lines),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_end_ends_a_line() {
        let location = Location {
            leading_comments: Some(" one\r two\r\n three\n four\n".to_owned()),
            trailing_comments: Some("end\r".to_owned()),
            ..Location::default()
        };
        let comments = comments(&location);
        assert_eq!(comments.leading, [" one", " two", " three", " four"]);
        assert_eq!(comments.trailing, ["end"]);
    }
    use prost_types::{
        FileDescriptorProto, MethodDescriptorProto, ServiceDescriptorProto, SourceCodeInfo,
    };

    fn location(path: Vec<i32>, leading: &str) -> Location {
        Location {
            path,
            leading_comments: Some(leading.to_owned()),
            trailing_comments: Some(" after\n".to_owned()),
            ..Default::default()
        }
    }

    #[test]
    fn services_and_rpcs_are_found_by_full_name() {
        let method = |name: &str| MethodDescriptorProto {
            name: Some(name.to_owned()),
            ..Default::default()
        };
        let file = |package: Option<&str>| FileDescriptorProto {
            package: package.map(str::to_owned),
            service: vec![ServiceDescriptorProto {
                name: Some("Svc".to_owned()),
                method: vec![method("A"), method("B")],
                ..Default::default()
            }],
            source_code_info: Some(SourceCodeInfo {
                location: vec![
                    location(vec![6, 0], " The service.\n\n     code();\n"),
                    location(vec![6, 0, 2, 1], " Rpc B, [x] `y`\n"),
                    location(vec![4, 0], " A message: ignored.\n"),
                    location(vec![6, 3], " No such service: ignored.\n"),
                ],
            }),
            ..Default::default()
        };
        let fds = FileDescriptorSet {
            file: vec![file(Some("p.q")), file(None)],
        };
        let comments = SourceComments::collect(&fds);
        let service = comments.get("p.q.Svc").expect("service comments");
        assert_eq!(service.leading, [" The service.", "", "     code();"]);
        assert_eq!(service.trailing, [" after"]);
        let b = comments.get("p.q.Svc.B").expect("rpc comments");
        assert_eq!(b.leading, [" Rpc B, [x] `y`"]);
        assert!(comments.get("p.q.Svc.A").is_none());
        assert!(comments.get("Svc").is_some(), "no package: the bare name");
        assert_eq!(comments.by_name.len(), 4);
    }
}
