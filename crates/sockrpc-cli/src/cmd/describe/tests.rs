//! What `describe` writes for each kind of symbol, checked against the exact text.

use super::*;
use prost_reflect::DescriptorPool;

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
        Some("shapes.v1.Shape.area is a field:\noptional double area = 4;\n")
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

const OPTIONS: &str = r#"
syntax = "proto3";
package opts;
import "google/protobuf/descriptor.proto";
extend google.protobuf.FieldOptions { string unit = 50000; }
// A reading.
message Reading {
  option deprecated = true;
  double value = 1 [json_name = "v", (unit) = "kg"]; // In kilograms.
  repeated int32 raw = 2 [packed = false];
  reserved 5, 8 to 10, 100 to max;
  reserved "old";
}
"#;

#[test]
fn a_message_is_written_with_its_options_reserved_and_comments() {
    let text = render(&pool_of(OPTIONS), "opts.Reading").expect("a message");
    let want = r#"opts.Reading is a message:
// A reading.
message Reading {
  option deprecated = true;
  double value = 1 [json_name = "v", (opts.unit) = "kg"]; // In kilograms.
  repeated int32 raw = 2 [packed = false];
  reserved 5, 8 to 10, 100 to max;
  reserved "old";
}
"#;
    assert_eq!(text, want);
}

#[test]
fn a_oneof_whose_members_are_apart_is_written_once() {
    use prost_reflect::prost_types::field_descriptor_proto::Type;
    use prost_reflect::prost_types::{
        DescriptorProto, FieldDescriptorProto, FileDescriptorProto, OneofDescriptorProto,
    };
    let field = |name: &str, number: i32, oneof: Option<i32>| FieldDescriptorProto {
        name: Some(name.to_owned()),
        number: Some(number),
        r#type: Some(Type::Int32 as i32),
        oneof_index: oneof,
        ..Default::default()
    };
    // Members 1 and 3 of `pick` with a plain field between them: no compiler writes this, a
    // descriptor made by hand (and served over reflection) may.
    let file = FileDescriptorProto {
        name: Some("apart.proto".to_owned()),
        package: Some("apart".to_owned()),
        syntax: Some("proto3".to_owned()),
        message_type: vec![DescriptorProto {
            name: Some("M".to_owned()),
            field: vec![
                field("a", 1, Some(0)),
                field("b", 2, None),
                field("c", 3, Some(0)),
            ],
            oneof_decl: vec![OneofDescriptorProto {
                name: Some("pick".to_owned()),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut pool = DescriptorPool::new();
    pool.add_file_descriptor_proto(file)
        .expect("a valid descriptor");
    let text = render(&pool, "apart.M").expect("a message");
    let want = "apart.M is a message:
message M {
  oneof pick {
    int32 a = 1;
    int32 c = 3;
  }
  int32 b = 2;
}
";
    assert_eq!(text, want);
}

const RANGES: &str = r#"
syntax = "proto2";
package ranges;
import "google/protobuf/descriptor.proto";
extend google.protobuf.ExtensionRangeOptions { optional int32 tag = 50000; }
extend google.protobuf.MessageOptions { optional double weight = 50001; }
message M {
  // Why deprecated.
  option deprecated = true; // Since v2.
  // Old numbers.
  reserved 1, 3 to 5; // Do not reuse.
  reserved 9;
  extensions 100 to 199, 300 to 300 [(tag) = 7];
  extensions 500 to max;
}
"#;

#[test]
fn reserved_and_extensions_keep_their_statements_options_and_comments() {
    let text = render(&pool_of(RANGES), "ranges.M").expect("a message");
    let want = "ranges.M is a message:
message M {

  // Why deprecated.
  option deprecated = true; // Since v2.

  // Old numbers.
  reserved 1, 3 to 5; // Do not reuse.
  reserved 9;
  extensions 100 to 199, 300 to 300 [(ranges.tag) = 7];
  extensions 500 to max;
}
";
    assert_eq!(text, want);
}
