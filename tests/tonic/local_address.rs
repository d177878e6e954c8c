//! tonic's `Endpoint::local_address`: the client's socket is bound to that IP before it
//! connects, so the server sees the call come from it (127.0.0.2 on loopback, where the
//! system would otherwise pick 127.0.0.1).

use crate::support::bounded;
use sockrpc::transport::{Endpoint, EndpointExt, Server};
use sockrpc::{Request, Response, Status};
use sockrpc_tests::parity::test_client::TestClient;
use sockrpc_tests::parity::test_server::{Test, TestServer};
use sockrpc_tests::parity::{Input, Output};
use sockrpc_tests::serve::Running;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

/// Notes the peer address of every call.
#[derive(Clone, Default)]
struct Peers(Arc<Mutex<Vec<Option<SocketAddr>>>>);

impl Test for Peers {
    async fn unary_call(&self, request: Request<Input>) -> Result<Response<Output>, Status> {
        self.0.lock().expect("lock").push(request.remote_addr());
        Ok(Response::new(Output::default()))
    }
}

async fn peer_of(server: &Running, peers: &Peers, local: Option<IpAddr>) -> IpAddr {
    let endpoint = Endpoint::from_shared(format!("tcp://{}", server.addr))
        .expect("uri")
        .local_address(local);
    let channel = bounded("connect", endpoint.connect())
        .await
        .expect("connect");
    bounded("call", TestClient::new(channel).unary_call(Input {}))
        .await
        .expect("call");
    let peer = peers.0.lock().expect("lock").pop().flatten();
    peer.expect("the server knows the peer").ip()
}

#[tokio::test]
async fn the_server_sees_the_local_address_as_the_peer() {
    let peers = Peers::default();
    let server = Running::start(Server::builder().add_service(TestServer::new(peers.clone())));
    let chosen = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    assert_eq!(peer_of(&server, &peers, Some(chosen)).await, chosen);
    // Unset, the system picks the server's own loopback address.
    assert_eq!(
        peer_of(&server, &peers, None).await,
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    );
    // An IPv6 address for an IPv4 server is not used, as hyper's connector does.
    assert_eq!(
        peer_of(&server, &peers, Some("::1".parse().expect("ip"))).await,
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    );
    server.stop().await;
}
