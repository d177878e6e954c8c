//! The [`prost_build::ServiceGenerator`] that emits sockrpc clients and
//! servers next to the messages prost-build generates.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use prost_build::{Comments, Method, Service, ServiceGenerator};

use crate::config::Options;
use crate::names::{self, ServiceNames};
use crate::prost_modules::PackageModules;
use crate::source_comments::SourceComments;
use crate::{client, server};

/// Lints silenced inside every generated module: generated code can't adapt
/// to the user's lint configuration, and proto comments aren't written with
/// clippy's doc lints in mind. A `[text](target)` link in a comment is kept as
/// written (`comments.rs`); when rustdoc resolves `target` itself and the text
/// names it too (`[Option](Option)`, `[Greeter](Greeter)` on the trait
/// `Greeter`), `rustdoc::redundant_explicit_links` would fail `cargo doc` with
/// `-D warnings`, so it is silenced beside `broken_intra_doc_links`.
pub(crate) const LINT_ALLOWS: &str = "unused_variables, dead_code, missing_docs, \
    non_camel_case_types, non_snake_case, clippy::wildcard_imports, clippy::let_unit_value, \
    clippy::needless_lifetimes, clippy::type_complexity, clippy::doc_lazy_continuation, \
    clippy::wrong_self_convention, clippy::should_implement_trait, deprecated, \
    rustdoc::broken_intra_doc_links, rustdoc::redundant_explicit_links, \
    rustdoc::invalid_html_tags, rustdoc::bare_urls, rustdoc::unescaped_backticks";

/// How requests and responses flow in an rpc.
///
/// Each shape gets its own client method and server handler in the runtime
/// (`unary` / `unary_handler`, `server_streaming` / ..., and so on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallShape {
    /// One request, one response.
    Unary,
    /// A request stream, one response.
    ClientStreaming,
    /// One request, a response stream.
    ServerStreaming,
    /// Streams both ways.
    Streaming,
}

impl CallShape {
    /// Whether the client sends a stream of messages.
    pub(crate) fn client_streams(self) -> bool {
        matches!(self, Self::ClientStreaming | Self::Streaming)
    }

    /// Whether the server answers with a stream of messages (and the trait
    /// gets an associated stream type for it).
    pub(crate) fn server_streams(self) -> bool {
        matches!(self, Self::ServerStreaming | Self::Streaming)
    }
}

/// One rpc, with every name and type already resolved for rendering.
#[derive(Debug, Clone)]
pub(crate) struct MethodModel {
    /// The rpc name in the .proto, used on the wire.
    pub(crate) proto_name: String,
    /// The Rust method name (see [`names::method`]).
    pub(crate) ident: String,
    /// `/package.Service/Method`.
    pub(crate) path: String,
    /// Request type, usable from inside the generated module.
    pub(crate) input: String,
    /// Response type, usable from inside the generated module.
    pub(crate) output: String,
    /// The server trait's associated type for the response stream (see
    /// [`names::stream_type`]); only used when the server streams.
    pub(crate) stream_type: String,
    /// Call shape, from the `stream` keywords.
    pub(crate) shape: CallShape,
    /// Marked `option idempotency_level = NO_SIDE_EFFECTS` or `IDEMPOTENT`: may run twice.
    pub(crate) idempotent: bool,
    /// The `sockrpc::codegen::Idempotency` variant for the level: `Unknown`, `NoSideEffects`
    /// or `Idempotent`. Generated clients hand it to middleware with every call.
    pub(crate) idempotency: &'static str,
    /// Comments from the .proto (empty when `disable_comments` covers the rpc).
    pub(crate) comments: Comments,
    /// Marked `option deprecated = true`, or in a service marked so: the client method and
    /// trait method get `#[deprecated]`.
    pub(crate) deprecated: bool,
}

/// What building a [`ServiceModel`] needs beyond the service itself.
struct Context<'a> {
    /// The builder's service options.
    options: &'a Options,
    /// Module names prost-build declares in the service's package.
    taken: &'a HashSet<String>,
    /// Service and rpc comments as written.
    source_comments: &'a SourceComments,
}

/// One service, ready for rendering.
#[derive(Debug, Clone)]
pub(crate) struct ServiceModel {
    /// Rust names of the generated items.
    pub(crate) names: ServiceNames,
    /// `package.Service`.
    pub(crate) full_name: String,
    /// The service's name on the wire: `package.Service`, or `Service` under
    /// `emit_package(false)`.
    pub(crate) wire_name: String,
    /// Comments from the .proto (empty when `disable_comments` covers the service).
    pub(crate) comments: Comments,
    /// The rpcs, in .proto order.
    pub(crate) methods: Vec<MethodModel>,
    /// Marked `option deprecated = true` as a whole: the client struct gets `#[deprecated]`,
    /// and so does every rpc (client and trait methods). The server trait and struct do not:
    /// whoever serves the service must go on serving it to the callers it still has.
    pub(crate) deprecated: bool,
}

impl ServiceModel {
    /// Resolves names and types; fails if two rpcs end up with the same Rust
    /// name (e.g. `GetFoo` and `get_foo`, or `Connect` and `ConnectRpc`), or
    /// two streaming rpcs with the same associated stream type (which, being
    /// the proto name plus `Stream`, only a generator bug would cause).
    fn new(service: Service, context: &Context<'_>) -> Result<Self, String> {
        let options = context.options;
        let full_name = names::qualified_service(&service.package, &service.proto_name);
        let wire_name = if options.omit_package {
            service.proto_name.clone()
        } else {
            full_name.clone()
        };
        let mut seen: HashMap<String, String> = HashMap::new();
        let mut stream_types: HashMap<String, String> = HashMap::new();
        let mut methods = Vec::with_capacity(service.methods.len());
        let deprecated = service.options.deprecated.unwrap_or(false);
        for method in service.methods {
            let mut model = MethodModel::new(method, &wire_name, options.proto_path.as_deref());
            model.deprecated |= deprecated;
            let method_name = format!("{full_name}.{}", model.proto_name);
            if !options.comments_for(&method_name) {
                model.comments = no_comments();
            } else if let Some(raw) = context.source_comments.get(&method_name) {
                model.comments = raw.clone();
            }
            if let Some(other) = seen.insert(model.ident.clone(), model.proto_name.clone()) {
                return Err(format!(
                    "service `{full_name}`: rpcs `{other}` and `{}` both map to the Rust name `{}`",
                    model.proto_name, model.ident
                ));
            }
            if model.shape.server_streams() {
                if let Some(other) =
                    stream_types.insert(model.stream_type.clone(), model.proto_name.clone())
                {
                    return Err(format!(
                        "service `{full_name}`: streaming rpcs `{other}` and `{}` both map to \
                         the associated type `{}`",
                        model.proto_name, model.stream_type
                    ));
                }
            }
            methods.push(model);
        }
        let comments = if !options.comments_for(&full_name) {
            no_comments()
        } else if let Some(raw) = context.source_comments.get(&full_name) {
            raw.clone()
        } else {
            service.comments
        };
        Ok(Self {
            names: ServiceNames::new(&service.proto_name).avoiding(context.taken),
            full_name,
            wire_name,
            comments,
            methods,
            deprecated,
        })
    }
}

impl MethodModel {
    fn new(method: Method, full_service: &str, proto_path: Option<&str>) -> Self {
        let shape = match (method.client_streaming, method.server_streaming) {
            (false, false) => CallShape::Unary,
            (true, false) => CallShape::ClientStreaming,
            (false, true) => CallShape::ServerStreaming,
            (true, true) => CallShape::Streaming,
        };
        // google.protobuf.MethodOptions.IdempotencyLevel: 1 NO_SIDE_EFFECTS, 2 IDEMPOTENT.
        let idempotency = match method.options.idempotency_level {
            Some(1) => "NoSideEffects",
            Some(2) => "Idempotent",
            _ => "Unknown",
        };
        Self {
            deprecated: method.options.deprecated.unwrap_or(false),
            idempotent: idempotency != "Unknown",
            idempotency,
            ident: names::method(&method.proto_name),
            path: format!("/{full_service}/{}", method.proto_name),
            stream_type: names::stream_type(&method.proto_name),
            input: names::type_path(&method.input_type, proto_path),
            output: names::type_path(&method.output_type, proto_path),
            shape,
            comments: method.comments,
            proto_name: method.proto_name,
        }
    }
}

fn no_comments() -> Comments {
    Comments {
        leading_detached: Vec::new(),
        leading: Vec::new(),
        trailing: Vec::new(),
    }
}

/// Problems found while generating; prost-build's trait can't return errors,
/// so they are collected here and turned into an `io::Error` afterwards.
pub(crate) type Errors = Rc<RefCell<Vec<String>>>;

/// Generates sockrpc clients and/or servers for every service prost-build
/// encounters.
#[derive(Debug)]
pub(crate) struct SockrpcServiceGenerator {
    build_client: bool,
    build_server: bool,
    options: Options,
    /// Module names prost-build declares per package, which the service modules must avoid.
    prost_modules: PackageModules,
    /// Service and rpc comments as written (prost-build's went through its Markdown cleanup).
    source_comments: SourceComments,
    /// Module names used so far per package (by its Rust module path), to catch services whose
    /// names collapse to the same snake_case module (`FooBar` and `Foo_Bar`).
    modules: HashMap<String, HashMap<String, String>>,
    errors: Errors,
}

impl SockrpcServiceGenerator {
    /// A generator reporting problems into `errors`, keeping its modules clear of
    /// `prost_modules` and documenting with `source_comments`.
    pub(crate) fn new(
        build_client: bool,
        build_server: bool,
        options: Options,
        prost_modules: PackageModules,
        source_comments: SourceComments,
        errors: Errors,
    ) -> Self {
        Self {
            build_client,
            build_server,
            options,
            prost_modules,
            source_comments,
            modules: HashMap::new(),
            errors,
        }
    }

    fn check_module_clash(&mut self, service: &ServiceModel, package: &str) -> Result<(), String> {
        let used = self.modules.entry(package.to_owned()).or_default();
        match used.insert(service.names.client_mod.clone(), service.full_name.clone()) {
            Some(other) if other != service.full_name => Err(format!(
                "services `{other}` and `{}` both map to the Rust modules `{}`/`{}`",
                service.full_name, service.names.client_mod, service.names.server_mod
            )),
            _ => Ok(()),
        }
    }
}

impl ServiceGenerator for SockrpcServiceGenerator {
    fn generate(&mut self, service: Service, buf: &mut String) {
        let package = crate::prost_modules::package_key(&service.package);
        let no_modules = HashSet::new();
        let taken = self.prost_modules.get(&package).unwrap_or(&no_modules);
        let context = Context {
            options: &self.options,
            taken,
            source_comments: &self.source_comments,
        };
        let model = ServiceModel::new(service, &context)
            .and_then(|model| self.check_module_clash(&model, &package).map(|()| model));
        let model = match model {
            Ok(model) => model,
            Err(error) => {
                self.errors.borrow_mut().push(error);
                return;
            }
        };
        if self.build_client {
            client::generate(&model, &self.options, buf);
        }
        if self.build_server {
            server::generate(&model, &self.options, buf);
        }
    }
}
