//! What a peer built from another version of `shop.proto` sends, sent to the generated server as
//! it would arrive (`NewerOrder` holds `Order`'s numbers: the extensions as plain fields, an enum
//! number `Color` lacks, a field past every range, the required fields left out).
//!
//! prost keeps no unknown fields or extensions: the call succeeds, the handler sees the known
//! fields, and an answer built from the request no longer carries what it did not know. A
//! missing required field is not refused: the handler reads the type's default (as with tonic;
//! prost has no presence for required fields to check).

use sockrpc::{Code, Request};
use sockrpc_tests::p2::sockrpc::p2::newer_order::NewerColor;
use sockrpc_tests::p2::sockrpc::p2::order::nested::Level;
use sockrpc_tests::p2::sockrpc::p2::order::Nested;
use sockrpc_tests::p2::sockrpc::p2::{Color, NewerOrder, Order, Seen};

use crate::support::{bounded, channel, start};

const PLACE: &str = "/sockrpc.p2.Shop/Place";
const INSPECT: &str = "/sockrpc.p2.Shop/Inspect";

fn newer() -> NewerOrder {
    NewerOrder {
        id: Some("n-1".to_owned()),
        quantity: Some(7),
        color: Some(NewerColor::Purple as i32),
        ext_comment: Some("from the extension".to_owned()),
        ext_numbers: vec![1, 2, 3],
        ext_nested: Some(Nested {
            level: Some(Level::Low as i32),
            delta: Some(9),
            levels: vec![Level::High as i32],
        }),
        later: Some("unknown to Order".to_owned()),
        not_a_group: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extensions_and_unknown_fields_do_not_break_a_call() {
    let server = start();
    let mut raw = sockrpc::Client::new(channel(&server).await);

    let seen = bounded(
        "inspect newer",
        raw.unary::<NewerOrder, Seen, _>(Request::new(newer()), INSPECT, sockrpc::ProstCodec),
    )
    .await
    .expect("a newer peer's order is served")
    .into_inner();
    assert_eq!(seen.id.as_deref(), Some("n-1"));
    assert_eq!(seen.quantity, Some(7));
    // A closed enum's unknown number: kept as it came, read as the declared default.
    assert_eq!(seen.color_number, Some(NewerColor::Purple as i32));
    assert_eq!(seen.color, Some(Color::Green as i32));
    assert_eq!(seen.present, ["color"]);

    // Echoed by a prost handler, the extensions and the unknown field are gone; the unknown
    // enum number is kept.
    let back = bounded(
        "place newer",
        raw.unary::<NewerOrder, NewerOrder, _>(Request::new(newer()), PLACE, sockrpc::ProstCodec),
    )
    .await
    .expect("place newer")
    .into_inner();
    assert_eq!(
        back,
        NewerOrder {
            id: Some("n-1".to_owned()),
            quantity: Some(7),
            color: Some(NewerColor::Purple as i32),
            ext_comment: None,
            ext_numbers: Vec::new(),
            ext_nested: None,
            later: None,
            not_a_group: None,
        }
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_required_field_reads_as_its_default() {
    let server = start();
    let mut raw = sockrpc::Client::new(channel(&server).await);
    let without = NewerOrder {
        ext_comment: Some("only an extension".to_owned()),
        ..NewerOrder::default()
    };
    let seen = bounded(
        "inspect without required",
        raw.unary::<NewerOrder, Seen, _>(Request::new(without), INSPECT, sockrpc::ProstCodec),
    )
    .await
    .expect("prost does not refuse a missing required field")
    .into_inner();
    assert_eq!(seen.id.as_deref(), Some(""));
    assert_eq!(seen.quantity, Some(0));
    assert!(seen.present.is_empty(), "{:?}", seen.present);

    // The generated client sends a required field even at its default (prost encodes required
    // fields always), so the echo carries both.
    let back = bounded(
        "place default order",
        raw.unary::<Order, NewerOrder, _>(
            Request::new(Order::default()),
            PLACE,
            sockrpc::ProstCodec,
        ),
    )
    .await
    .expect("place default order")
    .into_inner();
    assert_eq!(back.id.as_deref(), Some(""));
    assert_eq!(back.quantity, Some(0));

    // Bytes that are not an `Order` (a group's number with another wire type): a clear status
    // before any handler runs.
    let broken = bounded(
        "not an order",
        raw.unary::<NewerOrder, Seen, _>(
            Request::new(NewerOrder {
                not_a_group: Some("shipping?".to_owned()),
                ..NewerOrder::default()
            }),
            INSPECT,
            sockrpc::ProstCodec,
        ),
    )
    .await
    .expect_err("bytes that are not an Order");
    // INTERNAL, as tonic answers a request its codec cannot decode.
    assert_eq!(broken.code(), Code::Internal, "{broken:?}");
    assert!(
        broken
            .message()
            .starts_with("failed to decode Protobuf message: "),
        "{broken:?}"
    );
    server.stop().await;
}
