//! The resilience example's server:
//! `cargo run -p sockrpc-examples --example resilience-server [ADDR]` (default 127.0.0.1:50061).
//!
//! An inventory that is flaky on purpose (every third `GetItem` fails with `UNAVAILABLE`, as a
//! restarting backend would), behind what a production server puts in front of its handlers:
//!
//! - a bearer-token interceptor: no token is `UNAUTHENTICATED`; a `reader` token may only call
//!   `GetItem`, anything else is `PERMISSION_DENIED`; the principal reaches the handler as a
//!   request extension;
//! - load shedding past 256 calls in flight, at once, with a pushback hint;
//! - a rate limit of 500 calls per second (bursts of 50), a call waiting up to 50 ms for its
//!   token;
//! - at most 4 `Reserve` calls at once, others waiting up to 200 ms;
//! - a server-wide timeout of 5 s.
//!
//! Run the client (`--example resilience-client`) against it: its retries hide the flaky
//! reads, and its refused calls show the interceptor's answers.

use sockrpc::middleware::limit::{ConcurrencyLimitLayer, LoadShedLayer, RateLimitLayer, WaitQueue};
use sockrpc::{MethodPath, Request, Response, Server, Status};
use sockrpc_examples::inventory::inventory_server::{Inventory, InventoryServer};
use sockrpc_examples::inventory::{GetItemRequest, Item, ReserveRequest, SetStockRequest};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Who called: put in the request's extensions by [`bearer_auth`], read by the handlers.
#[derive(Debug, Clone)]
struct Principal(String);

/// Checks `authorization: Bearer <token>` per method. Tokens: `reader`, `writer`.
fn bearer_auth(mut request: Request<()>) -> Result<Request<()>, Status> {
    let token = request
        .metadata()
        .get_str("authorization")
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or_else(|| Status::unauthenticated("send authorization: Bearer <token>"))?
        .to_owned();
    let method = request
        .extensions()
        .get::<MethodPath>()
        .map(|path| path.method().to_owned())
        .unwrap_or_default();
    let allowed = match token.as_str() {
        "writer" => true,
        "reader" => method == "GetItem",
        _ => return Err(Status::unauthenticated("unknown token")),
    };
    if !allowed {
        return Err(Status::permission_denied(format!(
            "{token} may not call {method}"
        )));
    }
    request.extensions_mut().insert(Principal(token));
    Ok(request)
}

#[derive(Default)]
struct Stock {
    items: Mutex<HashMap<String, i64>>,
    reads: AtomicU64,
}

fn who(request: &Request<impl Sized>) -> String {
    let principal = request
        .extensions()
        .get::<Principal>()
        .map_or("?", |p| p.0.as_str());
    let peer = request
        .conn_info()
        .and_then(|conn| conn.peer)
        .map_or("?".to_owned(), |peer| peer.to_string());
    let attempt = request
        .metadata()
        .get_str(sockrpc::service::PREVIOUS_ATTEMPTS_KEY)
        .map_or(String::new(), |n| format!(" (retry after {n})"));
    format!("{principal}@{peer}{attempt}")
}

impl Inventory for Stock {
    async fn get_item(&self, request: Request<GetItemRequest>) -> Result<Response<Item>, Status> {
        let caller = who(&request);
        let sku = request.into_inner().sku;
        if self.reads.fetch_add(1, Ordering::Relaxed) % 3 == 2 {
            println!("GetItem {sku} from {caller}: failing on purpose");
            return Err(Status::unavailable("backend restarting"));
        }
        println!("GetItem {sku} from {caller}");
        let stock = self.items.lock().expect("lock").get(&sku).copied();
        let stock = stock.ok_or_else(|| Status::not_found(format!("no item {sku}")))?;
        Ok(Response::new(Item { sku, stock }))
    }

    async fn set_stock(&self, request: Request<SetStockRequest>) -> Result<Response<Item>, Status> {
        println!("SetStock from {}", who(&request));
        let SetStockRequest { sku, stock } = request.into_inner();
        self.items.lock().expect("lock").insert(sku.clone(), stock);
        Ok(Response::new(Item { sku, stock }))
    }

    async fn reserve(&self, request: Request<ReserveRequest>) -> Result<Response<Item>, Status> {
        println!("Reserve from {}", who(&request));
        let ReserveRequest { sku, units } = request.into_inner();
        let mut items = self.items.lock().expect("lock");
        let stock = items
            .get_mut(&sku)
            .ok_or_else(|| Status::not_found(format!("no item {sku}")))?;
        if *stock < units {
            return Err(Status::failed_precondition(format!(
                "only {stock} of {sku} left"
            )));
        }
        *stock -= units;
        Ok(Response::new(Item { sku, stock: *stock }))
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:50061".into());
    let addr = addr.parse().map_err(|err| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{addr}: {err}"))
    })?;
    let listener = sockrpc::transport::bind_tcp(addr, &sockrpc::SocketConfig::default())?;
    println!("inventory listening on {}", listener.local_addr()?);
    Server::builder()
        .timeout(Duration::from_secs(5))
        // Outermost first: shed before anything else is spent on a call.
        .layer(LoadShedLayer::new(256))
        .layer(
            RateLimitLayer::new(500, Duration::from_secs(1))
                .burst(50)
                .queue(WaitQueue::new(64, Duration::from_millis(50))),
        )
        .layer(
            ConcurrencyLimitLayer::new()
                .method("/inventory.Inventory/Reserve", 4)
                .queue(WaitQueue::new(16, Duration::from_millis(200))),
        )
        .add_service(InventoryServer::with_interceptor(
            Stock::default(),
            bearer_auth,
        ))
        .serve_with_listener_and_shutdown(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
