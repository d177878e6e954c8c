//! The generated client: `<service>_client::<Service>Client<T>`.
//!
//! Every runtime item is spelled out as `::sockrpc::codegen::X` and every std
//! item as `::core::..`/`::std::..` instead of glob-importing: a service or
//! message named `Status`, `Result` or `Clone` would otherwise shadow them.

use std::fmt::Write as _;

use crate::cfg_attrs::cfg_attributes;
use crate::comments::doc_attrs;
use crate::config::Options;
use crate::generator::{CallShape, MethodModel, ServiceModel, LINT_ALLOWS};
use crate::message_settings::{self, Side};

/// Renders the client module for `service`.
pub(crate) fn generate(service: &ServiceModel, options: &Options, buf: &mut String) {
    let names = &service.names;
    let client = &names.client_struct;
    let t = names.generic;
    let docs = doc_attrs(&service.comments);
    let codec = options.codec();
    let methods: String = service.methods.iter().map(|m| method(m, &codec)).collect();
    let mod_attributes = Options::attributes(&options.client_mod_attributes, &service.full_name);
    let attributes = Options::attributes(&options.client_attributes, &service.full_name);
    let cfgs = cfg_attributes(&attributes);
    let deprecated = deprecated_attr(service.deprecated);
    let settings = message_settings::setters(Side::Client, "inner");

    // `write!` into a String cannot fail.
    let _ = write!(
        buf,
        r#"
/// Generated client implementations.
{mod_attributes}pub mod {module} {{
    #![allow({LINT_ALLOWS})]
    {docs}
    {attributes}{deprecated}#[derive(::core::fmt::Debug, ::core::clone::Clone)]
    pub struct {client}<{t} = ::sockrpc::codegen::Channel> {{
        inner: ::sockrpc::codegen::Client<{t}>,
    }}
    {connect}{cfgs}impl<{t}> {client}<{t}>
    where
        {t}: ::sockrpc::codegen::ClientService,
    {{
        /// Wraps an existing channel or any tower service stack over one (its error may be a
        /// `Status` or anything that converts into a `BoxError`, such as tower's `Elapsed`).
        pub fn new(inner: {t}) -> Self {{
            Self {{ inner: ::sockrpc::codegen::Client::new(inner) }}
        }}
        /// Wraps `inner` behind `interceptor`, which sees (and may change or refuse) every call
        /// before it is sent.
        pub fn with_interceptor<F>(
            inner: {t},
            interceptor: F,
        ) -> {client}<::sockrpc::codegen::InterceptedService<{t}, F>>
        where
            F: ::sockrpc::codegen::Interceptor,
            {t}::Error: ::core::convert::From<::sockrpc::codegen::Status>,
        {{
            {client}::new(::sockrpc::codegen::InterceptedService::new(inner, interceptor))
        }}
        {settings}
        /// Returns the wrapped channel or service stack.
        pub fn into_inner(self) -> {t} {{
            self.inner.into_inner()
        }}
        /// The wrapped channel or service stack.
        pub fn get_ref(&self) -> &{t} {{
            self.inner.get_ref()
        }}
        /// The wrapped channel or service stack, to use directly.
        pub fn get_mut(&mut self) -> &mut {t} {{
            self.inner.get_mut()
        }}
        {methods}
    }}
}}
"#,
        module = names.client_mod,
        connect = if options.no_connect {
            String::new()
        } else {
            connect(client, &cfgs)
        },
    );
}

/// `connect(dst)`, which makes the client's channel itself (left out under
/// `build_transport(false)`).
fn connect(client: &str, cfgs: &str) -> String {
    format!(
        r#"{cfgs}impl {client}<::sockrpc::codegen::Channel> {{
        /// Connects to `dst` (e.g. `"tcp://127.0.0.1:50051"` or `"127.0.0.1:50051"`).
        pub async fn connect<D: ::sockrpc::codegen::IntoEndpoint>(dst: D)
            -> ::core::result::Result<Self, ::sockrpc::codegen::Status>
        {{
            let channel = ::sockrpc::codegen::Channel::connect(dst).await?;
            ::core::result::Result::Ok(Self::new(channel))
        }}
    }}
    "#
    )
}

/// One client method per rpc (encoding with `codec`, an expression), in tonic's shapes: a single request is taken
/// as `impl IntoRequest<Req>`, a request stream as
/// `impl IntoStreamingRequest<Message = Req>` (any `Stream` of messages); a
/// response stream comes back as `Response<Streaming<Resp>>`.
fn method(m: &MethodModel, codec: &str) -> String {
    let (param, into_request) = if m.shape.client_streams() {
        (
            format!(
                "impl ::sockrpc::codegen::IntoStreamingRequest<Message = {}>",
                m.input
            ),
            "::sockrpc::codegen::IntoStreamingRequest::into_streaming_request(request)".to_owned(),
        )
    } else {
        (
            format!("impl ::sockrpc::codegen::IntoRequest<{}>", m.input),
            format!(
                "::sockrpc::codegen::IntoRequest::<{}>::into_request(request)",
                m.input
            ),
        )
    };
    let response = if m.shape.server_streams() {
        format!("::sockrpc::codegen::Streaming<{}>", m.output)
    } else {
        m.output.clone()
    };
    let call = match m.shape {
        CallShape::Unary => "unary",
        CallShape::ServerStreaming => "server_streaming",
        CallShape::ClientStreaming => "client_streaming",
        CallShape::Streaming => "streaming",
    };
    format!(
        r#"
        {docs}{deprecated}
        pub async fn {name}(
            &mut self,
            request: {param},
        ) -> ::core::result::Result<::sockrpc::codegen::Response<{response}>, ::sockrpc::codegen::Status> {{
            self.inner
                .{call}(
                    {into_request},
                    const {{
                        ::sockrpc::codegen::RpcMethod::new(
                            {path:?},
                            ::sockrpc::codegen::Idempotency::{idempotency},
                        )
                    }},
                    {codec},
                )
                .await
        }}
"#,
        docs = doc_attrs(&m.comments),
        deprecated = deprecated_attr(m.deprecated),
        name = m.ident,
        path = m.path,
        idempotency = m.idempotency,
    )
}

/// `#[deprecated]` for an item marked `option deprecated = true` (an rpc, or a whole service).
pub(crate) fn deprecated_attr(deprecated: bool) -> &'static str {
    if deprecated {
        "#[deprecated]"
    } else {
        ""
    }
}
