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
