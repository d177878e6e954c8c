//! The resilience example's client:
//! `cargo run -p sockrpc-examples --example resilience-client [URI]` (default
//! tcp://127.0.0.1:50061), against `--example resilience-server`.
//!
//! The stack, outermost first:
//!
//! ```text
//!  InventoryClient::with_interceptor(.., bearer token)   adds authorization metadata
//!    RetryLayer::new()          retries by each method's idempotency level (from the .proto)
//!      tower TimeoutLayer 1 s   per attempt; tower's Elapsed comes back as DEADLINE_EXCEEDED
//!        Channel                user agent "inventory-example/1.0 sockrpc/…"
//! ```
//!
//! Reads succeed although the server fails every third one: `GetItem` is `NO_SIDE_EFFECTS`,
//! so it is retried on `UNAVAILABLE` without any configuration, and the answer says how many
//! attempts it took. `Reserve` is not marked idempotent and is never sent twice once started.

use sockrpc::middleware::retry::RetryLayer;
use sockrpc::{Code, Endpoint, Request, Status};
use sockrpc_examples::inventory::inventory_client::InventoryClient;
use sockrpc_examples::inventory::{GetItemRequest, ReserveRequest, SetStockRequest};
use std::time::Duration;

fn bearer(token: &'static str) -> impl Fn(Request<()>) -> Result<Request<()>, Status> + Clone {
    move |mut request: Request<()>| {
        request
            .metadata_mut()
            .insert_str("authorization", &format!("Bearer {token}"))
            .map_err(|err| Status::internal(err.to_string()))?;
        Ok(request)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let uri = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "tcp://127.0.0.1:50061".into());
    let endpoint = Endpoint::from_uri(&uri)?.user_agent("inventory-example/1.0")?;
    let channel = sockrpc::Channel::connect(endpoint).await?;
    let retry = RetryLayer::new();
    let stack = tower::ServiceBuilder::new()
        .layer(retry.clone())
        .timeout(Duration::from_secs(1))
        .service(channel);

    let mut writer = InventoryClient::with_interceptor(stack.clone(), bearer("writer"));
    writer
        .set_stock(SetStockRequest {
            sku: "apple".into(),
            stock: 10,
        })
        .await?;
    for _ in 0..6 {
        let response = writer
            .get_item(GetItemRequest {
                sku: "apple".into(),
            })
            .await?;
        // Present when the call took more than one attempt.
        let failed = response
            .metadata()
            .get_str(sockrpc::service::PREVIOUS_ATTEMPTS_KEY)
            .unwrap_or("0")
            .to_owned();
        println!(
            "apple: {} in stock (failed attempts before this answer: {failed})",
            response.into_inner().stock
        );
    }
    let item = writer
        .reserve(ReserveRequest {
            sku: "apple".into(),
            units: 3,
        })
        .await?;
    println!("reserved 3 apples, {} left", item.into_inner().stock);

    let mut reader = InventoryClient::with_interceptor(stack.clone(), bearer("reader"));
    let refused = reader
        .reserve(ReserveRequest {
            sku: "apple".into(),
            units: 1,
        })
        .await
        .expect_err("readers may not reserve");
    assert_eq!(refused.code(), Code::PermissionDenied);
    println!("reader reserving: {refused}");

    let mut anonymous = InventoryClient::new(stack);
    let refused = anonymous
        .get_item(GetItemRequest {
            sku: "apple".into(),
        })
        .await
        .expect_err("no token");
    assert_eq!(refused.code(), Code::Unauthenticated);
    println!("no token: {refused}");

    if let Some(throttle) = retry.get_throttle() {
        println!("retry throttle: {:.1} tokens", throttle.tokens());
    }
    Ok(())
}
