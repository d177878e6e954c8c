//! Identifier rules for generated code.
//!
//! Proto names are free-form enough to collide with Rust keywords and with the
//! helpers the generated client defines, so every identifier we emit goes
//! through this module. The rules are documented in the crate docs; keep the
//! two in sync because users rely on them to predict method names.

use std::collections::HashSet;

use heck::{ToSnakeCase, ToUpperCamelCase};

/// Methods the generated client struct defines itself (inherent or derived),
/// and those it gets from traits of the prelude.
///
/// An rpc mapping to one of these gets a `_rpc` suffix, in the client and the
/// server trait alike, so one proto method always has one Rust name.
///
/// The prelude's methods matter because method-call syntax tries `self` by
/// value and `&self` before `&mut self`: with an inherent
/// `async fn into(&mut self, ..)`, `client.into(request)` still resolves to
/// `Into::into(self)` and fails to compile (likewise `TryInto::try_into`, and
/// `ToOwned::to_owned` / `clone_into`, which the derived `Clone` brings).
const CLIENT_RESERVED: &[&str] = &[
    "connect",
    "new",
    "with_interceptor",
    "into_inner",
    "get_ref",
    "get_mut",
    "send_compressed",
    "accept_compressed",
    "compression_min_size",
    "max_decoding_message_size",
    "max_encoding_message_size",
    "clone",
    "clone_from",
    "fmt",
    // Prelude traits every client implements (`Into`, `TryInto` blanket impls; `ToOwned`
    // through `Clone`).
    "into",
    "try_into",
    "to_owned",
    "clone_into",
];

/// Makes `ident` usable as a Rust identifier, the way prost-build does it.
///
/// Keywords that accept the raw form become `r#kw`; those that don't (`self`,
/// `Self`, `super`, `crate`, `extern`, `_`) get a trailing `_`.
pub(crate) fn sanitize(ident: &str) -> String {
    match ident {
        // Strict and reserved keywords of every edition up to 2024.
        "as" | "break" | "const" | "continue" | "else" | "enum" | "false" | "fn" | "for" | "if"
        | "impl" | "in" | "let" | "loop" | "match" | "mod" | "move" | "mut" | "pub" | "ref"
        | "return" | "static" | "struct" | "trait" | "true" | "type" | "unsafe" | "use"
        | "where" | "while" | "dyn" | "abstract" | "become" | "box" | "do" | "final" | "macro"
        | "override" | "priv" | "typeof" | "unsized" | "virtual" | "yield" | "async" | "await"
        | "try" | "gen" => format!("r#{ident}"),
        "_" | "super" | "self" | "Self" | "extern" | "crate" => format!("{ident}_"),
        // A proto name of underscores only (`_`, `__`) converts to nothing.
        "" => "__".to_owned(),
        s if s.starts_with(|c: char| c.is_ascii_digit()) => format!("_{ident}"),
        _ => ident.to_owned(),
    }
}

/// prost-build's snake_case for a proto name (its `to_snake`): the module it declares for a
/// message with nested items.
pub(crate) fn prost_snake(proto_name: &str) -> String {
    sanitize(&proto_name.to_snake_case())
}

/// The Rust method name for an rpc, shared by the client and the server trait.
pub(crate) fn method(proto_name: &str) -> String {
    let snake = proto_name.to_snake_case();
    if CLIENT_RESERVED.contains(&snake.as_str()) {
        // The suffix makes the name a non-keyword, so no sanitizing needed.
        format!("{snake}_rpc")
    } else {
        sanitize(&snake)
    }
}

/// The server trait's associated type for an rpc's response stream, as
/// tonic-build names it: the rpc's name exactly as written in the .proto plus
/// `Stream` (`ListFeatures` → `ListFeaturesStream`, `ListURLs` →
/// `ListURLsStream`, `getValue` → `getValueStream`), so code written against
/// tonic's traits compiles unchanged.
///
/// A proto identifier plus a suffix is always a valid Rust identifier and
/// never a keyword (`Self` → `SelfStream`, `Type` → `TypeStream`); inside the
/// trait it is only reached as `Self::XStream`, so it can't shadow messages or
/// the trait. Names that are not UpperCamelCase are allowed by the generated
/// modules' `non_camel_case_types`.
pub(crate) fn stream_type(proto_name: &str) -> String {
    format!("{proto_name}Stream")
}

/// prost-build's UpperCamelCase for a proto name (its `to_upper_camel`), which
/// is the `Service::name` tonic-build builds its names on: `Self` → `Self_`,
/// `_2fa` → `_2fa`.
pub(crate) fn prost_upper_camel(proto_name: &str) -> String {
    sanitize(&proto_name.to_upper_camel_case())
}

/// tonic-build's `naive_snake_case`, which it applies to prost-build's
/// UpperCamelCase service name for the `_client` / `_server` modules: lower
/// case, with `_` before every upper-case letter but the first.
fn naive_snake_case(name: &str) -> String {
    let mut snake = String::with_capacity(name.len() + 4);
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        snake.push(c.to_ascii_lowercase());
        if chars.peek().is_some_and(|next| next.is_uppercase()) {
            snake.push('_');
        }
    }
    snake
}

/// Names derived from a service's proto name, as tonic-build derives them
/// from prost-build's UpperCamelCase name (`Self` → `Self_`).
#[derive(Debug, Clone)]
pub(crate) struct ServiceNames {
    /// `greeter_client`; the suffix keeps it clear of keywords.
    pub(crate) client_mod: String,
    /// `greeter_server`.
    pub(crate) server_mod: String,
    /// `GreeterClient`; `Self_Client` for `Self`.
    pub(crate) client_struct: String,
    /// `GreeterServer`; `Self_Server` for `Self`.
    pub(crate) server_struct: String,
    /// `Greeter`; `Self` becomes `Self_`, as prost would name a message.
    pub(crate) server_trait: String,
    /// Generic parameter of the client and server structs; only differs from
    /// `T` when the trait itself is called `T`.
    pub(crate) generic: &'static str,
}

impl ServiceNames {
    /// Derives every name for the service `proto_name`.
    pub(crate) fn new(proto_name: &str) -> Self {
        let camel = prost_upper_camel(proto_name);
        let snake = naive_snake_case(&camel);
        let generic = if camel == "T" { "Svc" } else { "T" };
        Self {
            client_mod: format!("{snake}_client"),
            server_mod: format!("{snake}_server"),
            client_struct: format!("{camel}Client"),
            server_struct: format!("{camel}Server"),
            server_trait: camel,
            generic,
        }
    }

    /// Moves the client and server modules clear of module names prost-build already declares
    /// in the same package (`taken`, see `prost_modules.rs`): `_rpc` is appended until the name
    /// is free, so a service `Echo` beside a message `EchoClient` with a oneof gets
    /// `echo_client_rpc::EchoClient`. Names that are free are kept as they are.
    pub(crate) fn avoiding(mut self, taken: &HashSet<String>) -> Self {
        for module in [&mut self.client_mod, &mut self.server_mod] {
            while taken.contains(module.as_str()) {
                module.push_str("_rpc");
            }
        }
        self
    }
}

/// The fully-qualified service name used on the wire: `package.Service`.
pub(crate) fn qualified_service(package: &str, service: &str) -> String {
    if package.is_empty() {
        service.to_owned()
    } else {
        format!("{package}.{service}")
    }
}

/// Makes a type path from prost-build usable inside the generated module.
///
/// prost-build resolves message types relative to the package module, and the
/// generated code lives one module deeper. Absolute paths (extern paths such
/// as `::sockrpc::codegen::prost_types::Any` or `crate::x`) and the builtin
/// types prost maps wrapper well-known types to (`()`, `bool`, ...) must not
/// get the `super::` prefix (or `proto_path`'s, when the builder was given one).
pub(crate) fn type_path(rust_type: &str, proto_path: Option<&str>) -> String {
    const BUILTIN: &[&str] = &["bool", "f32", "f64", "i32", "i64", "u32", "u64"];
    let absolute = rust_type.starts_with("::")
        || rust_type.starts_with("crate::")
        || rust_type.starts_with('(')
        || BUILTIN.contains(&rust_type);
    if absolute {
        rust_type.to_owned()
    } else {
        let Some(mut base) = proto_path else {
            return format!("super::{rust_type}");
        };
        // prost-build names another package's type from this one's module (`super::other::X`):
        // each `super` climbs out of the given path, which must not hold one in its middle.
        let mut rest = rust_type;
        while let (Some(tail), Some((parent, _))) =
            (rest.strip_prefix("super::"), base.rsplit_once("::"))
        {
            rest = tail;
            base = parent;
        }
        format!("{base}::{rest}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_follow_prost_snake_case() {
        assert_eq!(method("SayHello"), "say_hello");
        assert_eq!(method("UnaryCall"), "unary_call");
        assert_eq!(method("HTTPGet"), "http_get");
        assert_eq!(method("getFoo"), "get_foo");
    }

    #[test]
    fn names_of_underscores_only_stay_identifiers() {
        assert_eq!(method("_"), "__");
        assert_eq!(method("__"), "__");
        assert_eq!(sanitize(""), "__");
    }

    #[test]
    fn keywords_are_raw_or_suffixed() {
        assert_eq!(method("Type"), "r#type");
        assert_eq!(method("Match"), "r#match");
        assert_eq!(method("Async"), "r#async");
        assert_eq!(method("Await"), "r#await");
        assert_eq!(method("Self"), "self_");
        assert_eq!(method("Super"), "super_");
        assert_eq!(method("Crate"), "crate_");
    }

    #[test]
    fn client_helpers_get_rpc_suffix() {
        assert_eq!(method("Connect"), "connect_rpc");
        assert_eq!(method("New"), "new_rpc");
        assert_eq!(method("Clone"), "clone_rpc");
        assert_eq!(method("IntoInner"), "into_inner_rpc");
        assert_eq!(method("GetRef"), "get_ref_rpc");
        assert_eq!(method("GetMut"), "get_mut_rpc");
        assert_eq!(method("WithInterceptor"), "with_interceptor_rpc");
        assert_eq!(method("SendCompressed"), "send_compressed_rpc");
        assert_eq!(
            method("MaxDecodingMessageSize"),
            "max_decoding_message_size_rpc"
        );
    }

    #[test]
    fn prelude_methods_of_the_client_get_rpc_suffix() {
        // `client.into(req)` would be `Into::into(client)`: by-value and `&self` receivers of
        // prelude traits win over an inherent `&mut self` method.
        assert_eq!(method("Into"), "into_rpc");
        assert_eq!(method("TryInto"), "try_into_rpc");
        assert_eq!(method("ToOwned"), "to_owned_rpc");
        assert_eq!(method("CloneInto"), "clone_into_rpc");
        // Names that only look similar are left alone.
        assert_eq!(method("IntoStream"), "into_stream");
        assert_eq!(method("Drop"), "drop");
        assert_eq!(method("Default"), "default");
    }

    #[test]
    fn stream_types_follow_tonic() {
        // tonic-build: `format_ident!("{}Stream", method.identifier())`, the proto name.
        assert_eq!(stream_type("ListFeatures"), "ListFeaturesStream");
        assert_eq!(stream_type("Watch"), "WatchStream");
        assert_eq!(stream_type("Self"), "SelfStream");
        assert_eq!(stream_type("Type"), "TypeStream");
        assert_eq!(stream_type("Connect"), "ConnectStream");
        assert_eq!(stream_type("listFeatures"), "listFeaturesStream");
        assert_eq!(stream_type("list_features"), "list_featuresStream");
        assert_eq!(stream_type("HTTPGet"), "HTTPGetStream");
        assert_eq!(stream_type("ListURLs"), "ListURLsStream");
        assert_eq!(stream_type("_"), "_Stream");
    }

    #[test]
    fn service_names() {
        let n = ServiceNames::new("TestService");
        assert_eq!(n.client_mod, "test_service_client");
        assert_eq!(n.server_mod, "test_service_server");
        assert_eq!(n.client_struct, "TestServiceClient");
        assert_eq!(n.server_struct, "TestServiceServer");
        assert_eq!(n.server_trait, "TestService");
        assert_eq!(n.generic, "T");

        // tonic-build: `{name}Client`, `{name}Server`, the trait `{name}` and the modules
        // `{naive_snake_case(name)}_client` / `_server`, `name` being prost-build's UpperCamel.
        let n = ServiceNames::new("Self");
        assert_eq!(n.server_trait, "Self_");
        assert_eq!(n.client_mod, "self__client");
        assert_eq!(n.server_mod, "self__server");
        assert_eq!(n.client_struct, "Self_Client");
        assert_eq!(n.server_struct, "Self_Server");
        assert_eq!(ServiceNames::new("T").generic, "Svc");

        for (proto, module, structs) in [
            ("snake_service", "snake_service", "SnakeService"),
            ("HTTPService", "http_service", "HttpService"),
            ("getValue", "get_value", "GetValue"),
            ("Get2FA", "get2_fa", "Get2Fa"),
            ("V1Api", "v1_api", "V1Api"),
            // heck drops the `_` before a digit; tonic's snake case does not put it back.
            ("Api_2", "api2", "Api2"),
            // prost prefixes an UpperCamel name that starts with a digit.
            ("_2fa", "_2fa", "_2fa"),
        ] {
            let n = ServiceNames::new(proto);
            assert_eq!(n.client_mod, format!("{module}_client"), "{proto}");
            assert_eq!(n.server_mod, format!("{module}_server"), "{proto}");
            assert_eq!(n.client_struct, format!("{structs}Client"), "{proto}");
            assert_eq!(n.server_struct, format!("{structs}Server"), "{proto}");
            assert_eq!(n.server_trait, structs, "{proto}");
        }
    }

    #[test]
    fn modules_avoid_names_prost_took() {
        let taken: HashSet<String> = ["echo_client", "echo_client_rpc", "other_server"]
            .map(String::from)
            .into();
        let n = ServiceNames::new("Echo").avoiding(&taken);
        assert_eq!(n.client_mod, "echo_client_rpc_rpc");
        assert_eq!(n.server_mod, "echo_server");
        // Only the modules move: the items inside keep their names.
        assert_eq!(n.client_struct, "EchoClient");
        assert_eq!(n.server_trait, "Echo");
        let n = ServiceNames::new("Other").avoiding(&taken);
        assert_eq!(
            (n.client_mod.as_str(), n.server_mod.as_str()),
            ("other_client", "other_server_rpc")
        );
        assert_eq!(prost_snake("EchoClient"), "echo_client");
        assert_eq!(prost_snake("Type"), "r#type");
    }

    #[test]
    fn type_paths() {
        assert_eq!(type_path("HelloRequest", None), "super::HelloRequest");
        assert_eq!(
            type_path("super::core::Bucket", None),
            "super::super::core::Bucket"
        );
        assert_eq!(type_path("()", None), "()");
        assert_eq!(type_path("::prost_types::Any", None), "::prost_types::Any");
        assert_eq!(type_path("crate::x::Y", None), "crate::x::Y");
        assert_eq!(type_path("bool", None), "bool");
        // `proto_path`: the package's module named outright.
        let pb = Some("crate::pb::shop");
        assert_eq!(type_path("Order", pb), "crate::pb::shop::Order");
        assert_eq!(
            type_path("super::core::Bucket", pb),
            "crate::pb::core::Bucket"
        );
        assert_eq!(type_path("::prost_types::Any", pb), "::prost_types::Any");
    }

    #[test]
    fn qualified() {
        assert_eq!(
            qualified_service("helloworld", "Greeter"),
            "helloworld.Greeter"
        );
        assert_eq!(qualified_service("", "Greeter"), "Greeter");
    }
}
