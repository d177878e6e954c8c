//! A service as `.proto` text: its options, and each method with its streaming markers and,
//! when it has options (`idempotency_level`, `deprecated`, custom ones), a block holding them.

use super::options::{entries, write_statements};
use super::text::Text;
use prost_reflect::{MethodDescriptor, ServiceDescriptor};

/// Path of a service's options in its `ServiceDescriptorProto`.
const SERVICE_OPTIONS: i32 = 3;
/// Path of a method's options in its `MethodDescriptorProto`.
const METHOD_OPTIONS: i32 = 4;

/// Writes `service` at `indent`, comments included.
pub(super) fn write_service(text: &mut Text, service: &ServiceDescriptor, indent: &str) {
    let inner = format!("{indent}  ");
    text.gap(indent);
    text.leading(service.path(), indent);
    text.line(indent, &format!("service {} {{", service.name()));
    text.trailing(service.path(), &inner);
    let options_path = [service.path(), &[SERVICE_OPTIONS]].concat();
    write_statements(text, &service.options(), &[], &options_path, &inner);
    for method in service.methods() {
        write_method(text, &method, &inner);
    }
    text.line(indent, "}");
}

/// Writes one `rpc` at `indent`.
pub(super) fn write_method(text: &mut Text, method: &MethodDescriptor, indent: &str) {
    text.leading(method.path(), indent);
    let options = entries(&method.options(), &[]);
    let head = method_head(method);
    if options.is_empty() {
        text.line(indent, &format!("{head};"));
        text.trailing(method.path(), indent);
        return;
    }
    let inner = format!("{indent}  ");
    text.line(indent, &format!("{head} {{"));
    text.trailing(method.path(), &inner);
    let options_path = [method.path(), &[METHOD_OPTIONS]].concat();
    write_statements(text, &method.options(), &[], &options_path, &inner);
    text.line(indent, "}");
}

/// `rpc Name(stream .pkg.In) returns (.pkg.Out)`.
fn method_head(method: &MethodDescriptor) -> String {
    let stream = |on: bool| if on { "stream " } else { "" };
    format!(
        "rpc {}({}.{}) returns ({}.{})",
        method.name(),
        stream(method.is_client_streaming()),
        method.input().full_name(),
        stream(method.is_server_streaming()),
        method.output().full_name()
    )
}
