//! The builder's service options, tonic-build's names: default stubs, comments, `Debug`,
//! well-known types, and attributes on the generated modules and types.
//!
//! Kept apart from the [`Builder`]'s prost pass-through settings (in `lib.rs`): these decide
//! what the service generator writes, and live in one [`Options`] value it is handed.
//!
//! Paths name protobuf items as prost-build's do: `"."` is everything, `".pkg"` a package,
//! `".pkg.Service"` a service and `".pkg.Service.Method"` one rpc. A path without the leading
//! dot names the same from the root, and also every item it ends (`"Echo"` is every service
//! `Echo`, `"Echo.Say"` every such rpc), as prost-build and tonic-build read it.

use crate::{Builder, ProtoPaths};

/// What the service generator is told beyond client/server.
#[derive(Debug, Clone, Default)]
pub(crate) struct Options {
    /// Server trait methods get a default body answering `UNIMPLEMENTED`.
    pub(crate) default_stubs: bool,
    /// Paths whose comments are not turned into docs (messages too, through prost).
    pub(crate) disable_comments: Vec<String>,
    /// Paths of messages and enums without `#[derive(Debug)]` (prost's).
    pub(crate) skip_debug: Vec<String>,
    /// Generate the `google.protobuf` types instead of using `prost-types`.
    pub(crate) compile_well_known_types: bool,
    pub(crate) client_mod_attributes: Vec<(String, String)>,
    pub(crate) client_attributes: Vec<(String, String)>,
    pub(crate) server_mod_attributes: Vec<(String, String)>,
    pub(crate) server_attributes: Vec<(String, String)>,
    pub(crate) trait_attributes: Vec<(String, String)>,
    /// Clients get no `connect` (`tonic_compat.rs`).
    pub(crate) no_connect: bool,
    /// Services are named on the wire without their package (`tonic_compat.rs`).
    pub(crate) omit_package: bool,
    /// Where relative message types are found instead of `super` (`tonic_compat.rs`).
    pub(crate) proto_path: Option<String>,
    /// The codec type of generated clients and servers (`None`: `ProstCodec`).
    pub(crate) codec_path: Option<String>,
    /// Server trait methods take `self: Arc<Self>` instead of `&self` (`tonic_compat.rs`).
    pub(crate) use_arc_self: bool,
}

impl Options {
    /// The receiver of server trait methods: `&self`, or `self: Arc<Self>` (tonic-build's
    /// `use_arc_self`).
    pub(crate) fn receiver(&self) -> &'static str {
        if self.use_arc_self {
            "self: ::std::sync::Arc<Self>"
        } else {
            "&self"
        }
    }
}

/// Whether `path` (a builder path) covers the item at `item` (`pkg.Service[.Method]`): the
/// item or one of its parents is `path`, or, for a path without a leading dot, ends with it
/// (prost-build and tonic-build read `"Echo"` as every `Echo`, `"v1.Echo"` as every `Echo` of
/// a `v1` package).
pub(crate) fn matches(path: &str, item: &str) -> bool {
    let (relative, path) = match path.strip_prefix('.') {
        Some(path) => (false, path),
        None => (true, path),
    };
    if path.is_empty() {
        return true;
    }
    // The item and each of its parents, at segment boundaries.
    let mut parents =
        std::iter::once(item).chain(item.rmatch_indices('.').map(|(i, _)| &item[..i]));
    parents.any(|parent| {
        parent == path
            || (relative
                && parent
                    .strip_suffix(path)
                    .is_some_and(|head| head.ends_with('.')))
    })
}

impl Options {
    /// Whether comments of `item` become docs.
    pub(crate) fn comments_for(&self, item: &str) -> bool {
        !self.disable_comments.iter().any(|p| matches(p, item))
    }

    /// The expression generated clients and servers pass as the codec of every call.
    pub(crate) fn codec(&self) -> String {
        match &self.codec_path {
            Some(path) => format!("<{path} as ::core::default::Default>::default()"),
            None => "::sockrpc::codegen::ProstCodec".to_owned(),
        }
    }

    /// The attributes of `list` whose path covers `service`, one per line.
    pub(crate) fn attributes(list: &[(String, String)], service: &str) -> String {
        list.iter()
            .filter(|(path, _)| matches(path, service))
            .map(|(_, attribute)| format!("{attribute}\n"))
            .collect()
    }
}

impl Builder {
    /// Server trait methods get a default body that answers `UNIMPLEMENTED` (tonic-build's
    /// `generate_default_stubs`), so an implementation names only the rpcs it serves. A
    /// streaming rpc's method then returns a `sockrpc::BoxStream` rather than an associated
    /// type (stable Rust has no defaults for associated types).
    pub fn generate_default_stubs(mut self, enable: bool) -> Self {
        self.options.default_stubs = enable;
        self
    }

    /// Leaves out the doc comments of the items under `paths` (`"."` or `["."]` for all:
    /// [`ProtoPaths`]): services and
    /// rpcs here, messages and fields through [`prost_build::Config::disable_comments`].
    pub fn disable_comments(mut self, paths: impl ProtoPaths) -> Self {
        self.options.disable_comments.extend(paths.into_paths());
        self
    }

    /// Messages and enums under `paths` get no `#[derive(Debug)]` (implement it yourself); see
    /// [`prost_build::Config::skip_debug`].
    pub fn skip_debug(mut self, paths: impl ProtoPaths) -> Self {
        self.options.skip_debug.extend(paths.into_paths());
        self
    }

    /// Generates the `google.protobuf` well-known types into the output (a
    /// `google.protobuf.rs`) instead of referring to `prost-types` (default `false`); see
    /// [`prost_build::Config::compile_well_known_types`].
    pub fn compile_well_known_types(mut self, enable: bool) -> Self {
        self.options.compile_well_known_types = enable;
        self
    }

    /// Adds `attribute` (e.g. `#[cfg(feature = "client")]`) to the `<service>_client`
    /// modules of the services under `path`.
    pub fn client_mod_attribute(
        mut self,
        path: impl AsRef<str>,
        attribute: impl AsRef<str>,
    ) -> Self {
        self.options
            .client_mod_attributes
            .push(crate::pair(path, attribute));
        self
    }

    /// Adds `attribute` to the `<Service>Client` structs of the services under `path`. A
    /// `#[cfg(..)]` among them gates the struct's impl blocks too, so the crate builds with the
    /// cfg off.
    pub fn client_attribute(mut self, path: impl AsRef<str>, attribute: impl AsRef<str>) -> Self {
        self.options
            .client_attributes
            .push(crate::pair(path, attribute));
        self
    }

    /// Adds `attribute` to the `<service>_server` modules of the services under `path`.
    pub fn server_mod_attribute(
        mut self,
        path: impl AsRef<str>,
        attribute: impl AsRef<str>,
    ) -> Self {
        self.options
            .server_mod_attributes
            .push(crate::pair(path, attribute));
        self
    }

    /// Adds `attribute` to the `<Service>Server` structs of the services under `path` (as
    /// tonic-build does; the trait takes [`trait_attribute`](Self::trait_attribute)'s). A
    /// `#[cfg(..)]` among them gates the struct's impl blocks too, so the crate builds with the
    /// cfg off. To gate a whole server module, use
    /// [`server_mod_attribute`](Self::server_mod_attribute).
    pub fn server_attribute(mut self, path: impl AsRef<str>, attribute: impl AsRef<str>) -> Self {
        self.options
            .server_attributes
            .push(crate::pair(path, attribute));
        self
    }

    /// Adds `attribute` to the `<Service>` server traits of the services under `path`. A
    /// `#[cfg(..)]` among them gates what names the trait too: its object-safe twin
    /// `Dyn<Service>` with its impls, and the server struct's `Service` and `NamedService`
    /// impls.
    pub fn trait_attribute(mut self, path: impl AsRef<str>, attribute: impl AsRef<str>) -> Self {
        self.options
            .trait_attributes
            .push(crate::pair(path, attribute));
        self
    }

    /// The codec generated clients and servers encode and decode messages with, instead of
    /// `sockrpc::ProstCodec` (tonic-build's `codec_path`): the path of a type implementing
    /// [`Default`] and `sockrpc::Codec<M>` for every request and response message `M` of the
    /// services, e.g. `"crate::codec::CountingCodec"`. One value is made per call with
    /// `Default::default()`. Both ends of a call must agree on the encoding; sockrpc does not
    /// negotiate it.
    pub fn codec_path(mut self, path: impl AsRef<str>) -> Self {
        self.options.codec_path = Some(path.as_ref().to_owned());
        self
    }

    /// Applies the options prost-build handles itself.
    pub(crate) fn apply_options(&self, config: &mut prost_build::Config) {
        if !self.options.disable_comments.is_empty() {
            config.disable_comments(&self.options.disable_comments);
        }
        if !self.options.skip_debug.is_empty() {
            config.skip_debug(&self.options.skip_debug);
        }
        if self.options.compile_well_known_types {
            config.compile_well_known_types();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn paths_cover_their_items() {
        assert!(matches(".", "pkg.Svc"));
        assert!(matches(".pkg", "pkg.Svc.M"));
        assert!(matches("pkg.Svc", "pkg.Svc"));
        assert!(matches(".pkg.Svc", "pkg.Svc.M"));
        assert!(!matches(".pkg.Sv", "pkg.Svc"));
        assert!(!matches(".other", "pkg.Svc"));
    }

    #[test]
    fn paths_without_the_leading_dot_also_name_items_by_their_end() {
        // tonic-build's `attrs` example: `.server_attribute("Echo", ..)` for `attrs.Echo`.
        assert!(matches("Echo", "attrs.Echo"));
        assert!(matches("Echo", "attrs.Echo.Say"));
        assert!(matches("v1.Echo", "a.v1.Echo"));
        assert!(matches("Echo.Say", "attrs.Echo.Say"));
        assert!(matches("attrs", "attrs.Echo"), "from the root, as before");
        assert!(!matches("cho", "attrs.Echo"), "at a segment boundary only");
        assert!(
            !matches(".Echo", "attrs.Echo"),
            "a leading dot is from the root only"
        );
        assert!(!matches("Echo", "attrs.EchoTwo"));
    }
}
