//! The `Shop` service the tests serve, and the helpers they share.

use futures_util::stream::{self, BoxStream, StreamExt};
use sockrpc::{Request, Response, Status, Streaming};
use sockrpc_tests::p2::sockrpc::p2::order::nested::Level;
use sockrpc_tests::p2::sockrpc::p2::order::{Line, Nested, Shipping};
use sockrpc_tests::p2::sockrpc::p2::shop_server::{Shop, ShopServer};
use sockrpc_tests::p2::sockrpc::p2::{Color, Order, Seen};

/// Bound on every single step of these tests.
pub(crate) use sockrpc_tests::bounded::{bounded, channel};

/// A running server on `127.0.0.1:0` (`sockrpc_tests::serve`).
pub(crate) use sockrpc_tests::serve::Running;

/// The service: answers what it was sent, or what it saw through the generated getters.
pub(crate) struct Store;

impl Shop for Store {
    async fn place(&self, request: Request<Order>) -> Result<Response<Order>, Status> {
        Ok(Response::new(request.into_inner()))
    }

    async fn inspect(&self, request: Request<Order>) -> Result<Response<Seen>, Status> {
        Ok(Response::new(seen(&request.into_inner())))
    }

    type LinesStream = BoxStream<'static, Result<Order, Status>>;

    async fn lines(&self, request: Request<Order>) -> Result<Response<Self::LinesStream>, Status> {
        let order = request.into_inner();
        let mut out: Vec<Result<Order, Status>> = order
            .line
            .iter()
            .map(|line| {
                Ok(Order {
                    id: order.id.clone(),
                    quantity: 1,
                    line: vec![line.clone()],
                    ..Order::default()
                })
            })
            .collect();
        out.push(Ok(order));
        Ok(Response::new(stream::iter(out).boxed()))
    }

    async fn merge(&self, request: Request<Streaming<Order>>) -> Result<Response<Order>, Status> {
        let mut orders = request.into_inner();
        let mut merged = Order::default();
        while let Some(order) = orders.next().await {
            let order = order?;
            merged.id.push_str(&order.id);
            merged.quantity += order.quantity;
            merged.packed_counts.extend(order.packed_counts);
            merged.plain_counts.extend(order.plain_counts);
            merged.line.extend(order.line);
        }
        Ok(Response::new(merged))
    }
}

/// What a handler reads from `order` through prost's getters, and which optional fields came.
pub(crate) fn seen(order: &Order) -> Seen {
    let nested = order.nested.clone().unwrap_or_default();
    let mut present = Vec::new();
    for (name, is) in [
        ("note", order.note.is_some()),
        ("priority", order.priority.is_some()),
        ("ratio", order.ratio.is_some()),
        ("gift", order.gift.is_some()),
        ("color", order.color.is_some()),
        ("tag", order.tag.is_some()),
        ("shipping", order.shipping.is_some()),
        ("nested", order.nested.is_some()),
        ("scale", order.scale.is_some()),
    ] {
        if is {
            present.push(name.to_owned());
        }
    }
    Seen {
        id: Some(order.id.clone()),
        quantity: Some(order.quantity),
        note: Some(order.note().to_owned()),
        priority: Some(order.priority()),
        ratio: Some(order.ratio()),
        gift: Some(order.gift()),
        color: Some(order.color() as i32),
        color_number: order.color,
        tag: Some(order.tag().to_vec()),
        days: order.shipping.as_ref().map(Shipping::days),
        level: Some(nested.level() as i32),
        delta: Some(nested.delta()),
        scale: Some(order.scale()),
        present,
    }
}

/// An order with every field set, none to its default.
pub(crate) fn full_order() -> Order {
    Order {
        id: "order-1 ünïcode".to_owned(),
        quantity: -42,
        note: Some(String::new()),
        priority: Some(i32::MIN),
        ratio: Some(-0.25),
        gift: Some(false),
        color: Some(Color::Blue as i32),
        tag: Some(vec![0, 0xff, 7]),
        packed_counts: vec![0, -1, i32::MAX, i32::MIN, 300],
        plain_counts: vec![i64::MIN, -1, 0, i64::MAX],
        shipping: Some(Shipping {
            address: "1 Loopback Lane".to_owned(),
            days: Some(0),
        }),
        line: vec![
            Line {
                sku: Some("a".to_owned()),
                count: Some(u32::MAX),
            },
            Line {
                sku: None,
                count: None,
            },
        ],
        nested: Some(Nested {
            level: Some(Level::Low as i32),
            delta: Some(i64::MIN),
            levels: vec![Level::High as i32, Level::Low as i32],
        }),
        scale: Some(f32::MIN_POSITIVE),
    }
}

/// Serves `Shop` on a fresh loopback port.
pub(crate) fn start() -> Running {
    Running::start(sockrpc::Server::builder().add_service(ShopServer::new(Store)))
}
