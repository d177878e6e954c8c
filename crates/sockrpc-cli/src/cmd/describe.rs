//! `sockrpc describe ADDR SYMBOL`: a service, method, message or enum, written back as `.proto`
//! text from its descriptor (from reflection, or from `--proto` files).

use super::dynamic::conn::ConnArgs;
use super::dynamic::exit::{finish, Failure};
use super::dynamic::{reflect, source};
use clap::Args;
use prost_reflect::{
    Cardinality, DescriptorPool, EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor,
    MethodDescriptor, ServiceDescriptor,
};
use std::fmt::Write as _;

/// `sockrpc describe` flags.
#[derive(Debug, Args)]
pub(crate) struct DescribeArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// A fully qualified name: package.Service, package.Service.Method (or
    /// package.Service/Method), package.Message, package.Enum.
    #[arg(value_name = "SYMBOL")]
    symbol: String,
}

/// Runs `sockrpc describe`.
pub(crate) fn run(args: DescribeArgs) -> std::process::ExitCode {
    finish(describe(args))
}

async fn describe(args: DescribeArgs) -> Result<(), Failure> {
    let symbol = args
        .symbol
        .trim()
        .trim_start_matches(['.', '/'])
        .replace('/', ".");
    let pool = if args.conn.proto.is_empty() {
        let channel = args.conn.connect().await?;
        reflect::pool_for_symbol(&channel, &symbol).await?
    } else {
        source::compile(&args.conn.proto, &args.conn.import_path)?
    };
    let text =
        render(&pool, &symbol).ok_or_else(|| Failure::Input(format!("unknown symbol {symbol}")))?;
    print!("{text}");
    Ok(())
}

/// `symbol` as `.proto` text, with a first line saying what it is.
fn render(pool: &DescriptorPool, symbol: &str) -> Option<String> {
    if let Some(service) = pool.get_service_by_name(symbol) {
        return Some(format!(
            "{symbol} is a service:\n{}",
            service_text(&service)
        ));
    }
    if let Some(message) = pool.get_message_by_name(symbol) {
        return Some(format!(
            "{symbol} is a message:\n{}",
            message_text(&message)
        ));
    }
    if let Some(en) = pool.get_enum_by_name(symbol) {
        return Some(format!("{symbol} is an enum:\n{}", enum_text(&en)));
    }
    let (service, method) = symbol.rsplit_once('.')?;
    let method = pool
        .get_service_by_name(service)?
        .methods()
        .find(|m| m.name() == method)?;
    Some(format!("{symbol} is a method:\n{}\n", method_text(&method)))
}

fn method_text(method: &MethodDescriptor) -> String {
    let stream = |on: bool| if on { "stream " } else { "" };
    format!(
        "rpc {}({}{}) returns ({}{});",
        method.name(),
        stream(method.is_client_streaming()),
        method.input().full_name(),
        stream(method.is_server_streaming()),
        method.output().full_name()
    )
}

fn service_text(service: &ServiceDescriptor) -> String {
    let mut out = format!("service {} {{\n", service.name());
    for method in service.methods() {
        let _ = writeln!(out, "  {}", method_text(&method));
    }
    out.push_str("}\n");
    out
}

fn field_type(field: &FieldDescriptor) -> String {
    match field.kind() {
        Kind::Message(message) if field.is_map() => {
            let key = message.map_entry_key_field();
            let value = message.map_entry_value_field();
            format!("map<{}, {}>", field_type(&key), field_type(&value))
        }
        Kind::Message(message) => format!(".{}", message.full_name()),
        Kind::Enum(en) => format!(".{}", en.full_name()),
        kind => format!("{kind:?}").to_ascii_lowercase(),
    }
}

fn message_text(message: &MessageDescriptor) -> String {
    let mut out = format!("message {} {{\n", message.name());
    for field in message.fields() {
        let label = match field.cardinality() {
            Cardinality::Repeated if !field.is_map() => "repeated ",
            Cardinality::Optional
                if field.supports_presence()
                    && field.containing_oneof().is_none()
                    && !matches!(field.kind(), Kind::Message(_)) =>
            {
                "optional "
            }
            _ => "",
        };
        let _ = writeln!(
            out,
            "  {label}{} {} = {};",
            field_type(&field),
            field.name(),
            field.number()
        );
    }
    out.push_str("}\n");
    out
}

fn enum_text(en: &EnumDescriptor) -> String {
    let mut out = format!("enum {} {{\n", en.name());
    for value in en.values() {
        let _ = writeln!(out, "  {} = {};", value.name(), value.number());
    }
    out.push_str("}\n");
    out
}
