//! The generated server: the `<Service>` trait users implement and the
//! `<Service>Server<T>` tower service that dispatches calls to it.
//!
//! Paths are fully qualified for the same reason as in the client (see
//! `client.rs`); here it matters even more because the trait carries the
//! service's own name and would shadow any same-named import.

use std::fmt::Write as _;

use crate::cfg_attrs::cfg_attributes;
use crate::client::deprecated_attr;
use crate::comments::doc_attrs;
use crate::config::Options;
use crate::generator::{CallShape, MethodModel, ServiceModel, LINT_ALLOWS};
use crate::message_settings::{self, Side};

/// Renders the server module for `service`.
pub(crate) fn generate(service: &ServiceModel, options: &Options, buf: &mut String) {
    let names = &service.names;
    let server = &names.server_struct;
    let service_trait = &names.server_trait;
    let t = names.generic;
    let docs = doc_attrs(&service.comments);
    let trait_methods: String = service
        .methods
        .iter()
        .map(|m| trait_method(m, options))
        .collect();
    let mod_attributes = Options::attributes(&options.server_mod_attributes, &service.full_name);
    let attributes = Options::attributes(&options.server_attributes, &service.full_name);
    let trait_attributes = Options::attributes(&options.trait_attributes, &service.full_name);
    // A cfg on the struct gates its impls; one on the trait gates what names the trait.
    let cfgs = cfg_attributes(&attributes);
    let trait_cfgs = cfg_attributes(&trait_attributes);
    let settings = message_settings::setters(Side::Server, "settings");
    let twin = crate::dyn_trait::generate(service, options, &trait_cfgs);
    let arms: String = service
        .methods
        .iter()
        .map(|m| dispatch_arm(m, service_trait, t, options))
        .collect();
    let unknown = "::std::boxed::Box::pin(::std::future::ready(::core::result::Result::Err(\
        ::sockrpc::codegen::Status::unimplemented(::std::format!(\"unknown method {}\", call.path())))))";
    // A match with only a wildcard arm trips clippy::match_single_binding.
    let body = if arms.is_empty() {
        unknown.to_owned()
    } else {
        format!("match call.method_bytes() {{ {arms} _ => {unknown}, }}")
    };

    // `write!` into a String cannot fail.
    let _ = write!(
        buf,
        r#"
/// Generated server implementations.
{mod_attributes}pub mod {module} {{
    #![allow({LINT_ALLOWS})]
    {docs}
    {trait_attributes}pub trait {service_trait}: ::core::marker::Send + ::core::marker::Sync + 'static {{
        {trait_methods}
    }}
    {twin}
    /// Serves a [`{service_trait}`] implementation; add it to a `Router` / `Server::builder().add_service(..)`.
    {attributes}pub struct {server}<{t}> {{
        inner: ::std::sync::Arc<{t}>,
        settings: ::sockrpc::codegen::MessageSettings,
    }}
    {cfgs}impl<{t}> {server}<{t}> {{
        /// Serves `inner`.
        pub fn new(inner: {t}) -> Self {{
            Self::from_arc(::std::sync::Arc::new(inner))
        }}
        /// Serves an implementation that is already shared.
        pub fn from_arc(inner: ::std::sync::Arc<{t}>) -> Self {{
            Self {{ inner, settings: ::sockrpc::codegen::MessageSettings::new() }}
        }}
        {settings}
        /// Serves `inner` behind `interceptor`, which sees (and may change or refuse) every
        /// call before the handler runs; mount the result with `add_service` as usual.
        pub fn with_interceptor<F>(
            inner: {t},
            interceptor: F,
        ) -> ::sockrpc::codegen::InterceptedService<Self, F>
        where
            F: ::sockrpc::codegen::Interceptor,
        {{
            ::sockrpc::codegen::InterceptedService::new(Self::new(inner), interceptor)
        }}
    }}
    {cfgs}impl<{t}> ::core::clone::Clone for {server}<{t}> {{
        fn clone(&self) -> Self {{
            Self {{ inner: ::std::sync::Arc::clone(&self.inner), settings: self.settings }}
        }}
    }}
    {cfgs}impl<{t}> ::core::fmt::Debug for {server}<{t}> {{
        fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {{
            f.debug_struct({server:?}).finish_non_exhaustive()
        }}
    }}
    {cfgs}{trait_cfgs}impl<{t}: {service_trait}> ::sockrpc::codegen::NamedService for {server}<{t}> {{
        const NAME: &'static str = {name:?};
        const IDEMPOTENT_METHODS: &'static [&'static str] = &[{idempotent}];
    }}
    {cfgs}{trait_cfgs}impl<{t}: {service_trait}> ::sockrpc::codegen::Service<::sockrpc::codegen::Call> for {server}<{t}> {{
        type Response = ::sockrpc::codegen::Response<::sockrpc::codegen::Body>;
        type Error = ::sockrpc::codegen::Status;
        type Future = ::sockrpc::codegen::BoxFuture<::core::result::Result<Self::Response, Self::Error>>;
        fn poll_ready(
            &mut self,
            _cx: &mut ::core::task::Context<'_>,
        ) -> ::core::task::Poll<::core::result::Result<(), Self::Error>> {{
            ::core::task::Poll::Ready(::core::result::Result::Ok(()))
        }}
        fn call(&mut self, call: ::sockrpc::codegen::Call) -> Self::Future {{
            self.settings.serve(call, |call| {body})
        }}
    }}
}}
"#,
        module = names.server_mod,
        name = service.wire_name,
        idempotent = service
            .methods
            .iter()
            .filter(|m| m.idempotent)
            .map(|m| format!("{:?}", m.path))
            .collect::<Vec<_>>()
            .join(", "),
    );
}

/// The trait items for one rpc: the method, preceded by its associated
/// stream type when the server streams (tonic's shape). With default stubs,
/// the method has a body answering `UNIMPLEMENTED`, and a streaming one
/// returns a `BoxStream` (an associated type cannot have a default).
fn trait_method(m: &MethodModel, options: &Options) -> String {
    let default_stubs = options.default_stubs;
    let input = request_type(m);
    let (stream_type, output) = match (m.shape.server_streams(), default_stubs) {
        (true, false) => {
            let stream_type = format!(
                r#"
        #[doc = {doc:?}]
        type {assoc}: ::sockrpc::codegen::Stream<
            Item = ::core::result::Result<{output}, ::sockrpc::codegen::Status>,
        > + ::core::marker::Send + 'static;
"#,
                doc = format!(
                    " Server streaming response type for the {} method.",
                    m.proto_name
                ),
                assoc = m.stream_type,
                output = m.output,
            );
            (stream_type, format!("Self::{}", m.stream_type))
        }
        (true, true) => (
            String::new(),
            format!("::sockrpc::codegen::BoxStream<{}>", m.output),
        ),
        (false, _) => (String::new(), m.output.clone()),
    };
    let body = if default_stubs {
        format!(
            r#" {{
            async move {{
                ::core::result::Result::Err(::sockrpc::codegen::Status::unimplemented({message:?}))
            }}
        }}"#,
            message = format!("{} is not implemented", m.path),
        )
    } else {
        ";".to_owned()
    };
    format!(
        r#"{stream_type}
        {docs}{deprecated}
        fn {name}(
            {receiver},
            request: {input},
        ) -> impl ::core::future::Future<
            Output = ::core::result::Result<::sockrpc::codegen::Response<{output}>, ::sockrpc::codegen::Status>,
        > + ::core::marker::Send{body}
"#,
        docs = doc_attrs(&m.comments),
        deprecated = deprecated_attr(m.deprecated),
        name = m.ident,
        receiver = options.receiver(),
    )
}

/// What the trait method (and the handler closure) receives: the message, or
/// a `Streaming` of them when the client streams.
pub(crate) fn request_type(m: &MethodModel) -> String {
    if m.shape.client_streams() {
        format!(
            "::sockrpc::codegen::Request<::sockrpc::codegen::Streaming<{}>>",
            m.input
        )
    } else {
        format!("::sockrpc::codegen::Request<{}>", m.input)
    }
}

/// The `match call.method_bytes()` arm for one rpc, decoding with the options' codec (proto
/// names are ASCII identifiers, so the
/// byte-string literal is the name as written).
fn dispatch_arm(m: &MethodModel, service_trait: &str, t: &str, options: &Options) -> String {
    let codec = options.codec();
    // The handler gets the shared implementation itself (`use_arc_self`), or a borrow of it.
    let receiver = if options.use_arc_self {
        "inner"
    } else {
        "&*inner"
    };
    let handler = match m.shape {
        CallShape::Unary => "unary_handler",
        CallShape::ServerStreaming => "server_streaming_handler",
        CallShape::ClientStreaming => "client_streaming_handler",
        CallShape::Streaming => "streaming_handler",
    };
    // Fully-qualified call: method syntax on `Arc<T>` would try `Arc`'s own
    // methods (and every trait in scope) before the rpc.
    format!(
        r#"
            b{proto_name:?} => {{
                let inner = ::std::sync::Arc::clone(&self.inner);
                ::std::boxed::Box::pin(::sockrpc::codegen::{handler}(
                    call,
                    {codec},
                    move |request: {input}| async move {{
                        <{t} as {service_trait}>::{name}({receiver}, request).await
                    }},
                ))
            }}
"#,
        proto_name = m.proto_name,
        input = request_type(m),
        name = m.ident,
    )
}
