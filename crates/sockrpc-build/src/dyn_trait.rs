//! The object-safe twin of a server trait: `Dyn<Service>`, implemented for every
//! implementation of `<Service>`, and `<Service>` implemented for `Arc<dyn Dyn<Service>>`.
//!
//! Why a twin: the server trait returns `impl Future` (no box per call), which makes it
//! unusable as `dyn`; tonic's `#[async_trait]` traits are object-safe at the price of a box on
//! every call. The twin gives the choice back: serve `Arc<dyn DynGreeter>` (an implementation
//! picked at run time, or several behind one type) and pay one box per call for it, or serve
//! the implementation itself and pay nothing.
//!
//! The twin's methods are named apart from the trait's ([`twin_method_name`]): every
//! implementation of the trait implements the twin too, so a user who glob-imports the server
//! module (`use greeter_server::*;`, bringing both traits into scope) and calls
//! `imp.say_hello(request)` would otherwise get "multiple applicable items in scope".

use crate::config::Options;
use crate::generator::{MethodModel, ServiceModel};
use crate::server::request_type;

/// How the twin's methods take their receiver, as the trait's do: `&self`, with futures that
/// borrow it, or `self: Arc<Self>` (`use_arc_self`), with futures that own it.
#[derive(Clone, Copy)]
struct Receiver {
    arc: bool,
}

impl Receiver {
    fn param(self) -> &'static str {
        if self.arc {
            "self: ::std::sync::Arc<Self>"
        } else {
            "&self"
        }
    }

    fn lifetime(self) -> &'static str {
        if self.arc {
            "'static"
        } else {
            "'_"
        }
    }
}

/// The twin trait, its blanket impl and the impl for `Arc<dyn ..>`, inside the server module;
/// `cfgs` are the `#[cfg(..)]` attributes of the trait, which gate all three.
pub(crate) fn generate(service: &ServiceModel, options: &Options, cfgs: &str) -> String {
    let default_stubs = options.default_stubs;
    let receiver = Receiver {
        arc: options.use_arc_self,
    };
    let service_trait = &service.names.server_trait;
    let twin = format!("Dyn{}", service_trait.trim_end_matches('_'));
    let t = service.names.generic;
    let methods: String = service
        .methods
        .iter()
        .map(|m| twin_method(m, receiver))
        .collect();
    let forwards: String = service
        .methods
        .iter()
        .map(|m| forward(m, &twin, default_stubs, receiver))
        .collect();
    let blanket: String = service
        .methods
        .iter()
        .map(|m| blanket(m, service_trait, t, receiver))
        .collect();
    let stream_types: String = service
        .methods
        .iter()
        .filter(|m| m.shape.server_streams())
        .map(|m| {
            format!(
                "type {} = ::sockrpc::codegen::BoxStream<{}>;\n",
                m.stream_type, m.output
            )
        })
        .collect();
    // With default stubs a streaming method returns `BoxStream` and there is no associated type.
    let stream_types = if default_stubs {
        String::new()
    } else {
        stream_types
    };
    format!(
        r#"
    /// [`{service_trait}`] as a trait object: every implementation of [`{service_trait}`] is one,
    /// and `Arc<dyn {twin}>` implements [`{service_trait}`], so
    /// `{server}::new(Arc::new(imp) as Arc<dyn {twin}>)` serves an implementation chosen at run
    /// time (one box per call, and per response stream). Its methods are named
    /// `__dyn_<method>`, apart from the trait's, so that both traits in scope (a glob import of
    /// this module) leave `imp.<method>(..)` unambiguous; call the trait's methods.
    {cfgs}pub trait {twin}: ::core::marker::Send + ::core::marker::Sync + 'static {{
        {methods}
    }}
    {cfgs}impl<{t}: {service_trait}> {twin} for {t} {{
        {blanket}
    }}
    {cfgs}impl {service_trait} for ::std::sync::Arc<dyn {twin}> {{
        {stream_types}
        {forwards}
    }}
"#,
        server = service.names.server_struct,
    )
}

/// The twin's name for the rpc method `ident`: `__dyn_` and the name without its `r#`
/// (`say_hello` → `__dyn_say_hello`, `r#type` → `__dyn_type`). Rpc method names never start with
/// two underscores but the name `__` itself (see `names::method`), so no twin method can take
/// the name of a trait method, and different rpcs keep different twin names.
pub(crate) fn twin_method_name(ident: &str) -> String {
    format!("__dyn_{}", ident.trim_start_matches("r#"))
}

/// What a twin method's future resolves to: the message, or a boxed stream of them.
fn twin_output(m: &MethodModel) -> String {
    if m.shape.server_streams() {
        format!("::sockrpc::codegen::BoxStream<{}>", m.output)
    } else {
        m.output.clone()
    }
}

fn future_of(output: &str, receiver: Receiver) -> String {
    format!(
        "::core::pin::Pin<::std::boxed::Box<dyn ::core::future::Future<Output = \
         ::core::result::Result<::sockrpc::codegen::Response<{output}>, \
         ::sockrpc::codegen::Status>> + ::core::marker::Send + {lifetime}>>",
        lifetime = receiver.lifetime(),
    )
}

fn twin_method(m: &MethodModel, receiver: Receiver) -> String {
    format!(
        "#[doc = {doc:?}]\nfn {name}({param}, request: {input}) -> {future};\n",
        doc = format!(" `{}`, boxed.", m.ident.trim_start_matches("r#")),
        name = twin_method_name(&m.ident),
        param = receiver.param(),
        input = request_type(m),
        future = future_of(&twin_output(m), receiver),
    )
}

fn blanket(m: &MethodModel, service_trait: &str, t: &str, receiver: Receiver) -> String {
    let body = if m.shape.server_streams() {
        format!(
            "::std::boxed::Box::pin(async move {{
                let response = <{t} as {service_trait}>::{name}(self, request).await?;
                ::core::result::Result::Ok(response.map(
                    |stream| -> ::sockrpc::codegen::BoxStream<{output}> {{
                        ::std::boxed::Box::pin(stream)
                    }}
                ))
            }})",
            name = m.ident,
            output = m.output,
        )
    } else {
        format!(
            "::std::boxed::Box::pin(<{t} as {service_trait}>::{name}(self, request))",
            name = m.ident
        )
    };
    format!(
        "fn {twin_name}({param}, request: {input}) -> {future} {{ {body} }}\n",
        twin_name = twin_method_name(&m.ident),
        param = receiver.param(),
        input = request_type(m),
        future = future_of(&twin_output(m), receiver),
    )
}

fn forward(m: &MethodModel, twin: &str, default_stubs: bool, receiver: Receiver) -> String {
    // The trait's own spelling of the output: its associated type, when it has one.
    let output = if m.shape.server_streams() && !default_stubs {
        format!("Self::{}", m.stream_type)
    } else {
        twin_output(m)
    };
    // `self` is `&Arc<dyn Twin>`, or `Arc<Arc<dyn Twin>>` with `use_arc_self`.
    let inner = if receiver.arc {
        "::std::sync::Arc::clone(&*self)"
    } else {
        "&**self"
    };
    format!(
        "fn {name}(
            {param},
            request: {input},
        ) -> impl ::core::future::Future<
            Output = ::core::result::Result<::sockrpc::codegen::Response<{output}>, ::sockrpc::codegen::Status>,
        > + ::core::marker::Send {{
            <dyn {twin} as {twin}>::{twin_name}({inner}, request)
        }}\n",
        name = m.ident,
        param = receiver.param(),
        twin_name = twin_method_name(&m.ident),
        input = request_type(m),
    )
}

#[cfg(test)]
mod tests {
    use super::twin_method_name;
    use crate::names::method;

    #[test]
    fn twin_methods_never_take_a_trait_method_s_name() {
        for proto in [
            "SayHello",
            "Type",
            "Self",
            "_",
            "__",
            "_2fa",
            "DynSayHello",
            "Connect",
        ] {
            let ident = method(proto);
            let twin = twin_method_name(&ident);
            assert!(twin.starts_with("__dyn_"), "{twin}");
            assert!(!twin.contains('#'), "{twin}");
            assert_ne!(twin, ident);
            // No rpc maps to a name starting with two underscores but `__` itself.
            assert!(!ident.starts_with("__") || ident == "__", "{ident}");
        }
        assert_eq!(twin_method_name("r#type"), "__dyn_type");
        assert_eq!(twin_method_name("say_hello"), "__dyn_say_hello");
    }
}
