//! `Status`'s `Display` is tonic's: `status: <Code's Rust name>, message: "..", details:
//! [..], metadata: ..`, every field, empty or not, so a log line or an assert ported from
//! tonic reads the same. (The metadata is printed as sockrpc's `MetadataMap` prints itself, a
//! map of keys to values, where tonic's prints the `HeaderMap` inside its own.)

use sockrpc::metadata::MetadataMap;
use sockrpc::{Code, Status};

#[test]
fn display_reads_as_tonics() {
    assert_eq!(
        Status::not_found("gone").to_string(),
        r#"status: NotFound, message: "gone", details: [], metadata: {}"#
    );
    let mut metadata = MetadataMap::new();
    metadata.insert_str("x-a", "b").expect("ascii");
    let status = Status::with_details_and_metadata(Code::Internal, "boom", &[1u8, 2][..], metadata);
    assert_eq!(
        status.to_string(),
        r#"status: Internal, message: "boom", details: [1, 2], metadata: {"x-a": "b"}"#
    );
}
