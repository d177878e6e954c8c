//! The server every tricky service runs on, and the helpers the tests share.

use sockrpc::{Request, Response};
use sockrpc_tests::tricky::a::b::v1::nested_server::NestedServer;
use sockrpc_tests::tricky::kw::r#type::v1::match_server::MatchServer;
use sockrpc_tests::tricky::naked_server::NakedServer;
use sockrpc_tests::tricky::sockrpc::test::tricky as t;
use t::echo_server_rpc::EchoServer as EchoRpcServer;
use t::empty_server::EmptyServer;
use t::keywords_server::KeywordsServer;
use t::server_server::ServerServer;
use t::service_server::ServiceServer;
use t::snake_service_server::SnakeServiceServer;
use t::Msg;

use crate::keywords::Kw;
use crate::odd_services::{Hollow, NoPackage, Snake};
use crate::packages::{Echoer, Matcher, Unwrapper};
use crate::service::Svc;
use crate::well_known::Wkt;

/// Bound on every single step of these tests.
pub(crate) use sockrpc_tests::bounded::{bounded, channel, collect};

pub(crate) fn msg(text: &str, n: i64) -> Msg {
    Msg {
        text: text.to_owned(),
        n,
    }
}

/// What every unary `Keywords` rpc answers: its own proto name, so a call routed to the wrong
/// method shows.
pub(crate) fn tagged(rpc: &str, request: Request<Msg>) -> Response<Msg> {
    let request = request.into_inner();
    Response::new(msg(&format!("{rpc}:{}", request.text), request.n + 1))
}

/// A running server on `127.0.0.1:0` (`sockrpc_tests::serve`).
pub(crate) use sockrpc_tests::serve::Running;

/// Serves `builder` on a fresh loopback port.
pub(crate) fn start(
    builder: sockrpc::service::ServerBuilder<tower::layer::util::Identity>,
) -> Running {
    Running::start(builder)
}

/// Every tricky service on one server.
pub(crate) fn start_all() -> Running {
    start(
        sockrpc::Server::builder()
            .add_service(KeywordsServer::new(Kw))
            .add_service(ServiceServer::new(Svc))
            .add_service(ServerServer::new(Wkt))
            .add_service(EchoRpcServer::new(Echoer))
            .add_service(EmptyServer::new(Hollow))
            .add_service(SnakeServiceServer::new(Snake))
            .add_service(NestedServer::new(Unwrapper))
            .add_service(NakedServer::new(NoPackage))
            .add_service(MatchServer::new(Matcher)),
    )
}
