//! Every proto2 field kind through the generated client and server, over every call shape:
//! values come back exactly, absent optional fields stay absent, and the handler reads the
//! `[default = ..]` values through prost's getters.

use futures_util::stream;
use sockrpc::Request;
use sockrpc_tests::p2::sockrpc::p2::order::nested::Level;
use sockrpc_tests::p2::sockrpc::p2::order::{Line, Shipping};
use sockrpc_tests::p2::sockrpc::p2::shop_client::ShopClient;
use sockrpc_tests::p2::sockrpc::p2::{Color, Order, Seen};

use crate::support::{bounded, channel, full_order, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_field_kind_round_trips_exactly() {
    let server = start();
    let mut client = ShopClient::new(channel(&server).await);

    let full = full_order();
    let back = bounded("place", client.place(full.clone()))
        .await
        .expect("place")
        .into_inner();
    assert_eq!(back, full);
    // Values equal to the defaults are still sent when set, and come back set.
    let at_defaults = Order {
        id: String::new(),
        quantity: 0,
        note: Some("none given".to_owned()),
        priority: Some(-5),
        color: Some(Color::Green as i32),
        ..Order::default()
    };
    let back = bounded("place defaults", client.place(at_defaults.clone()))
        .await
        .expect("place defaults")
        .into_inner();
    assert_eq!(back, at_defaults);
    assert_eq!(back.ratio, None, "an absent optional field stays absent");

    // What the handler saw of the full order: its values, not the defaults.
    let seen = bounded("inspect", client.inspect(full.clone()))
        .await
        .expect("inspect")
        .into_inner();
    assert_eq!(seen.note.as_deref(), Some(""));
    assert_eq!(seen.priority, Some(i32::MIN));
    assert_eq!(seen.color, Some(Color::Blue as i32));
    assert_eq!(seen.days, Some(0));
    assert_eq!(seen.level, Some(Level::Low as i32));
    assert_eq!(seen.delta, Some(i64::MIN));
    assert_eq!(seen.scale, Some(f32::MIN_POSITIVE));
    assert_eq!(
        seen.present,
        ["note", "priority", "ratio", "gift", "color", "tag", "shipping", "nested", "scale"]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handler_sees_declared_defaults() {
    let server = start();
    let mut client = ShopClient::new(channel(&server).await);
    // Only the required fields, an empty group and an empty nested message.
    let bare = Order {
        id: "bare".to_owned(),
        quantity: 1,
        shipping: Some(Shipping {
            address: String::new(),
            days: None,
        }),
        nested: Some(Default::default()),
        ..Order::default()
    };
    let seen = bounded("inspect", client.inspect(bare))
        .await
        .expect("inspect")
        .into_inner();
    assert_eq!(
        seen,
        Seen {
            id: Some("bare".to_owned()),
            quantity: Some(1),
            note: Some("none given".to_owned()),
            priority: Some(-5),
            ratio: Some(1.5),
            gift: Some(true),
            color: Some(Color::Green as i32),
            color_number: None,
            tag: Some(b"\x01x\xff".to_vec()),
            days: Some(3),
            level: Some(Level::High as i32),
            delta: Some(-7),
            scale: Some(-0.125),
            present: vec!["shipping".to_owned(), "nested".to_owned()],
        }
    );
    // The client reads the same defaults from the answer's absent fields.
    let back = bounded("place", client.place(Order::default()))
        .await
        .expect("place")
        .into_inner();
    assert_eq!(back.note(), "none given");
    assert_eq!(back.color(), Color::Green);
    assert_eq!(back.tag(), b"\x01x\xff");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_and_packed_fields_through_streams() {
    let server = start();
    let mut client = ShopClient::new(channel(&server).await);
    let full = full_order();

    // Server streaming: each repeated group element on its own, then the whole order.
    let mut lines = bounded("lines", client.lines(full.clone()))
        .await
        .expect("lines")
        .into_inner();
    let mut got = Vec::new();
    for _ in 0..10 {
        match bounded("lines message", lines.message())
            .await
            .expect("lines message")
        {
            Some(order) => got.push(order),
            None => break,
        }
    }
    assert_eq!(got.len(), full.line.len() + 1, "{got:?}");
    for (order, line) in got.iter().zip(&full.line) {
        assert_eq!(order.line, std::slice::from_ref(line));
    }
    assert_eq!(got.last(), Some(&full));

    // Client streaming: packed and unpacked repeated fields and groups merged in order.
    let parts = vec![
        Order {
            id: "a".to_owned(),
            quantity: 2,
            packed_counts: vec![1, -2],
            plain_counts: vec![-3],
            line: vec![Line {
                sku: Some("x".to_owned()),
                count: Some(5),
            }],
            ..Order::default()
        },
        Order {
            id: "b".to_owned(),
            quantity: 3,
            packed_counts: vec![i32::MAX],
            plain_counts: vec![i64::MAX, 0],
            ..Order::default()
        },
    ];
    let merged = bounded("merge", client.merge(Request::new(stream::iter(parts))))
        .await
        .expect("merge")
        .into_inner();
    assert_eq!(merged.id, "ab");
    assert_eq!(merged.quantity, 5);
    assert_eq!(merged.packed_counts, [1, -2, i32::MAX]);
    assert_eq!(merged.plain_counts, [-3, i64::MAX, 0]);
    assert_eq!(merged.line.len(), 1);
    assert_eq!(merged.line[0].count, Some(5));
    server.stop().await;
}
