//! `sockrpc describe ADDR SYMBOL`: a service, method, message, field, oneof, enum or enum value,
//! written back as `.proto` text from its descriptor (from reflection, or from `--proto` files).

use super::dynamic::conn::ConnArgs;
use super::dynamic::exit::{finish, Failure};
use super::dynamic::{reflect, source};
use clap::Args;
use prost_reflect::{
    Cardinality, DescriptorPool, EnumDescriptor, EnumValueDescriptor, FieldDescriptor, Kind,
    MessageDescriptor, MethodDescriptor, ServiceDescriptor, Syntax,
};
use std::fmt::Write as _;

/// `sockrpc describe` flags.
#[derive(Debug, Args)]
pub(crate) struct DescribeArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// A fully qualified name: package.Service, package.Service.Method (or
    /// package.Service/Method), package.Message, package.Message.field (or a oneof),
    /// package.Enum, package.VALUE (or package.Enum.VALUE).
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
    if symbol.is_empty() {
        return Err(Failure::Input(
            "no symbol given: expected a name such as package.Service".to_owned(),
        ));
    }
    let pool = if args.conn.proto.is_empty() {
        let channel = args.conn.connect().await?;
        reflect::pool_for_symbol(&channel, &symbol)
            .await
            .map_err(|failure| source::unknown(failure, "symbol", &symbol))?
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
    if let Some(value) = enum_value(pool, symbol) {
        return Some(format!(
            "{symbol} is a value of enum .{}:\n{} = {};\n",
            value.parent_enum().full_name(),
            value.name(),
            value.number()
        ));
    }
    let (parent, name) = symbol.rsplit_once('.')?;
    if let Some(message) = pool.get_message_by_name(parent) {
        if let Some(field) = message.get_field_by_name(name) {
            let mut line = String::new();
            write_field(&mut line, &field, "", "");
            return Some(format!("{symbol} is a field:\n{line}"));
        }
        let oneof = message
            .oneofs()
            .find(|o| o.name() == name && !o.is_synthetic())?;
        let mut text = format!("oneof {name} {{\n");
        for member in oneof.fields() {
            write_field(&mut text, &member, "", "  ");
        }
        return Some(format!("{symbol} is a oneof:\n{text}}}\n"));
    }
    let method = pool
        .get_service_by_name(parent)?
        .methods()
        .find(|m| m.name() == name)?;
    Some(format!("{symbol} is a method:\n{}\n", method_text(&method)))
}

/// An enum value by either of its names: a sibling of its enum (`pkg.RED`, as protoc names
/// it), or under its enum (`pkg.Colour.RED`).
fn enum_value(pool: &DescriptorPool, symbol: &str) -> Option<EnumValueDescriptor> {
    if let Some((parent, name)) = symbol.rsplit_once('.') {
        if let Some(value) = pool
            .get_enum_by_name(parent)
            .and_then(|en| en.get_value_by_name(name))
        {
            return Some(value);
        }
    }
    pool.all_enums()
        .flat_map(|en| en.values().collect::<Vec<_>>())
        .find(|value| value.full_name() == symbol)
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
    let mut out = String::new();
    write_message(&mut out, message, "");
    out
}

/// `message` as `.proto` text at `indent`: its fields in the order they were declared, each
/// real `oneof` as a block where its first field stands, proto3 `optional` fields (a synthetic
/// oneof each) labelled, and its nested messages and enums (map entries and proto2 groups, which
/// their field writes, aside) after its fields.
fn write_message(out: &mut String, message: &MessageDescriptor, indent: &str) {
    let _ = writeln!(out, "{indent}message {} {{", message.name());
    write_message_body(out, message, indent);
}

/// What `write_message` writes after the `message Name {` line, closing brace included.
fn write_message_body(out: &mut String, message: &MessageDescriptor, indent: &str) {
    let inner = format!("{indent}  ");
    let proto = message.descriptor_proto();
    let declared = proto
        .field
        .iter()
        .filter_map(|f| message.get_field(u32::try_from(f.number?).ok()?));
    let mut written_oneofs = Vec::new();
    for field in declared {
        match field.containing_oneof() {
            Some(oneof) if !oneof.is_synthetic() => {
                if written_oneofs.contains(&oneof.name().to_owned()) {
                    continue;
                }
                written_oneofs.push(oneof.name().to_owned());
                let _ = writeln!(out, "{inner}oneof {} {{", oneof.name());
                for member in oneof.fields() {
                    write_field(out, &member, "", &format!("{inner}  "));
                }
                let _ = writeln!(out, "{inner}}}");
            }
            Some(_) => write_field(out, &field, "optional ", &inner),
            None => {
                let label = match field.cardinality() {
                    Cardinality::Repeated if !field.is_map() => "repeated ",
                    // proto2 labels every field, message fields too (proto3 labels an optional
                    // field only, and it has a synthetic oneof).
                    Cardinality::Optional if field.parent_file().syntax() == Syntax::Proto2 => {
                        "optional "
                    }
                    Cardinality::Required => "required ",
                    _ => "",
                };
                write_field(out, &field, label, &inner);
            }
        }
    }
    let groups: Vec<String> = message
        .fields()
        .filter(|f| f.is_group())
        .filter_map(|f| match f.kind() {
            Kind::Message(group) => Some(group.full_name().to_owned()),
            _ => None,
        })
        .collect();
    for nested in message
        .child_messages()
        .filter(|m| !m.is_map_entry() && !groups.iter().any(|g| g == m.full_name()))
    {
        write_message(out, &nested, &inner);
    }
    for en in message.child_enums() {
        for line in enum_text(&en).lines() {
            let _ = writeln!(out, "{inner}{line}");
        }
    }
    let _ = writeln!(out, "{indent}}}");
}

/// One field; a proto2 group as its block (`optional group Name = 1 { .. }`, the group's
/// message written inside), since its wire form is a group's, not a message field's.
fn write_field(out: &mut String, field: &FieldDescriptor, label: &str, indent: &str) {
    if let (true, Kind::Message(group)) = (field.is_group(), field.kind()) {
        let _ = writeln!(
            out,
            "{indent}{label}group {} = {} {{",
            group.name(),
            field.number()
        );
        write_message_body(out, &group, indent);
        return;
    }
    let _ = writeln!(
        out,
        "{indent}{label}{} {} = {}{};",
        field_type(field),
        field.name(),
        field.number(),
        default_option(field)
    );
}

/// ` [default = ..]` for a proto2 field declared with a default, as `.proto` text writes it:
/// a string quoted and escaped, bytes quoted (the descriptor holds them escaped already).
fn default_option(field: &FieldDescriptor) -> String {
    let Some(value) = field.field_descriptor_proto().default_value.as_deref() else {
        return String::new();
    };
    let value = match field.kind() {
        Kind::String => format!("\"{}\"", escape(value)),
        Kind::Bytes => format!("\"{value}\""),
        _ => value.to_owned(),
    };
    format!(" [default = {value}]")
}

/// `text` as the inside of a `.proto` string literal: quotes, backslashes and control
/// characters escaped, the rest (UTF-8 included) as it is.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\{:03o}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// `en` with its values in the order they were declared (the first one is the default, and
/// proto3 wants it to be zero), and `allow_alias` when it has it (values sharing a number).
fn enum_text(en: &EnumDescriptor) -> String {
    let mut out = format!("enum {} {{\n", en.name());
    let proto = en.enum_descriptor_proto();
    if proto.options.as_ref().and_then(|o| o.allow_alias) == Some(true) {
        out.push_str("  option allow_alias = true;\n");
    }
    for value in &proto.value {
        let _ = writeln!(out, "  {} = {};", value.name(), value.number());
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROTO: &str = r#"
syntax = "proto3";
package shapes.v1;
message Shape {
  string name = 2;
  oneof kind {
    Circle circle = 3;
    int64 side = 5;
  }
  optional double area = 4;
  repeated string tags = 1;
  map<string, int32> counts = 6;
  message Circle { double radius = 1; }
  enum Colour { COLOUR_UNSPECIFIED = 0; RED = 1; }
  Colour colour = 7;
}
"#;

    fn pool() -> DescriptorPool {
        pool_of(PROTO)
    }

    fn pool_of(proto: &str) -> DescriptorPool {
        // One directory per call: the tests of this module run at once in one process, and a
        // directory named by the process alone was removed under another test's compile.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("sockrpc-describe-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("shapes.proto");
        std::fs::write(&file, proto).expect("write proto");
        let pool = source::compile(std::slice::from_ref(&file), &[]).expect("compile");
        let _ = std::fs::remove_dir_all(&dir);
        pool
    }

    #[test]
    fn a_message_is_written_back_with_its_oneofs_optionals_and_nested_types() {
        let text = render(&pool(), "shapes.v1.Shape").expect("a message");
        let want = "shapes.v1.Shape is a message:
message Shape {
  string name = 2;
  oneof kind {
    .shapes.v1.Shape.Circle circle = 3;
    int64 side = 5;
  }
  optional double area = 4;
  repeated string tags = 1;
  map<string, int32> counts = 6;
  .shapes.v1.Shape.Colour colour = 7;
  message Circle {
    double radius = 1;
  }
  enum Colour {
    COLOUR_UNSPECIFIED = 0;
    RED = 1;
  }
}
";
        assert_eq!(text, want);
    }

    #[test]
    fn fields_and_oneofs_are_described_too() {
        let pool = pool();
        assert_eq!(
            render(&pool, "shapes.v1.Shape.area").as_deref(),
            Some("shapes.v1.Shape.area is a field:\ndouble area = 4;\n")
        );
        assert_eq!(
            render(&pool, "shapes.v1.Shape.kind").as_deref(),
            Some(
                "shapes.v1.Shape.kind is a oneof:\noneof kind {\n  \
                 .shapes.v1.Shape.Circle circle = 3;\n  int64 side = 5;\n}\n"
            )
        );
        assert!(render(&pool, "shapes.v1.Shape.nope").is_none());
        let red = "is a value of enum .shapes.v1.Shape.Colour:\nRED = 1;\n";
        for name in ["shapes.v1.Shape.RED", "shapes.v1.Shape.Colour.RED"] {
            assert_eq!(render(&pool, name), Some(format!("{name} {red}")));
        }
        assert!(render(&pool, "shapes.v1.RED").is_none());
    }

    const PROTO2: &str = r#"
syntax = "proto2";
package legacy;
message Req {
  required string name = 1;
  optional int32 n = 2 [default = -42];
  optional string s = 3 [default = "say \"hi\"\\ é"];
  optional group Grp = 4 { optional int32 a = 5; }
  repeated group Items = 6 { optional string x = 7; }
  optional Req next = 8;
  optional Colour colour = 9 [default = RED];
  message Inner { optional bool b = 1 [default = true]; }
}
enum Colour {
  option allow_alias = true;
  RED = 1;
  ROUGE = 1;
  NEG = -1;
  ZERO = 0;
}
"#;

    #[test]
    fn proto2_is_written_back_with_labels_defaults_and_groups() {
        let text = render(&pool_of(PROTO2), "legacy.Req").expect("a message");
        let want = r#"legacy.Req is a message:
message Req {
  required string name = 1;
  optional int32 n = 2 [default = -42];
  optional string s = 3 [default = "say \"hi\"\\ é"];
  optional group Grp = 4 {
    optional int32 a = 5;
  }
  repeated group Items = 6 {
    optional string x = 7;
  }
  optional .legacy.Req next = 8;
  optional .legacy.Colour colour = 9 [default = RED];
  message Inner {
    optional bool b = 1 [default = true];
  }
}
"#;
        assert_eq!(text, want);
    }

    #[test]
    fn an_enum_keeps_its_declared_order_and_its_aliases() {
        let text = render(&pool_of(PROTO2), "legacy.Colour").expect("an enum");
        let want = "legacy.Colour is an enum:
enum Colour {
  option allow_alias = true;
  RED = 1;
  ROUGE = 1;
  NEG = -1;
  ZERO = 0;
}
";
        assert_eq!(text, want);
    }
}
