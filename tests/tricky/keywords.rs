//! Rpcs named like Rust keywords and like the generated client's and server's own helpers (and
//! prelude-trait methods) reach their methods, on the server and on its `dyn` twin, under their
//! proto names.

use std::sync::Arc;

use futures_util::stream::{self, BoxStream, StreamExt};
use sockrpc::{NamedService, Request, Response, Status, Streaming};
use sockrpc_tests::tricky::sockrpc::test::tricky as t;
use t::keywords_client::KeywordsClient;
use t::keywords_server::{DynKeywords, Keywords, KeywordsServer};
use t::Msg;

use crate::support::{bounded, channel, collect, msg, start, start_all, tagged};

/// Every rpc of `Keywords` tags its answer with its proto name.
pub(crate) struct Kw;

/// The unary `Keywords` rpcs, method name and proto name, handed to `$then`: the server's
/// implementation and the client's checks come from this one list.
macro_rules! keyword_rpcs {
    ($then:ident $(, $arg:expr)?) => {
        $then! {
            $($arg,)?
            r#type => "Type",
            r#match => "Match",
            self_ => "Self",
            super_ => "Super",
            r#async => "Async",
            r#fn => "Fn",
            r#dyn => "Dyn",
            r#gen => "Gen",
            new_rpc => "New",
            connect_rpc => "Connect",
            with_interceptor_rpc => "WithInterceptor",
            into_inner_rpc => "IntoInner",
            clone_rpc => "Clone",
            call => "Call",
            ready => "Ready",
            poll_ready => "PollReady",
            from_arc => "FromArc",
            unary => "Unary",
            streaming => "Streaming",
            default => "Default",
            drop => "Drop",
            into_rpc => "Into",
            try_into_rpc => "TryInto",
            to_owned_rpc => "ToOwned",
            clone_into_rpc => "CloneInto",
        }
    };
}

/// The unary `Keywords` rpcs, each answering [`tagged`] with its proto name.
macro_rules! unary_tagged {
    ($($method:ident => $rpc:literal),* $(,)?) => {
        $(
            async fn $method(&self, request: Request<Msg>) -> Result<Response<Msg>, Status> {
                Ok(tagged($rpc, request))
            }
        )*
    };
}

impl Keywords for Kw {
    keyword_rpcs!(unary_tagged);

    type LoopStream = BoxStream<'static, Result<Msg, Status>>;

    /// `n` answers, numbered.
    async fn r#loop(&self, request: Request<Msg>) -> Result<Response<Self::LoopStream>, Status> {
        let request = request.into_inner();
        let answers: Vec<_> = (0..request.n)
            .map(|i| Ok(msg(&format!("Loop:{}", request.text), i)))
            .collect();
        Ok(Response::new(stream::iter(answers).boxed()))
    }

    type YieldStream = BoxStream<'static, Result<Msg, Status>>;

    /// Each message answered, doubled.
    async fn r#yield(
        &self,
        request: Request<Streaming<Msg>>,
    ) -> Result<Response<Self::YieldStream>, Status> {
        let answers = request.into_inner().map(|m| {
            let m = m?;
            Ok(msg(&format!("Yield:{}", m.text), m.n * 2))
        });
        Ok(Response::new(answers.boxed()))
    }

    /// The sum of the numbers sent.
    async fn r#where(&self, request: Request<Streaming<Msg>>) -> Result<Response<Msg>, Status> {
        let mut requests = request.into_inner();
        let mut sum = 0;
        while let Some(m) = requests.message().await? {
            sum += m.n;
        }
        Ok(Response::new(msg("Where", sum)))
    }
}

/// Calls one unary `Keywords` rpc and checks it reached the method of that proto name.
macro_rules! check_tagged {
    ($client:expr, $($method:ident => $rpc:literal),* $(,)?) => {
        $(
            let reply = bounded($rpc, $client.$method(msg("x", 1)))
                .await
                .unwrap_or_else(|e| panic!("{} failed: {e:?}", $rpc))
                .into_inner();
            assert_eq!(reply, msg(concat!($rpc, ":x"), 2), "{}", $rpc);
        )*
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyword_and_helper_named_rpcs_reach_their_methods() {
    let server = start_all();
    let mut client = KeywordsClient::connect(format!("tcp://{}", server.addr))
        .await
        .expect("connect");
    keyword_rpcs!(check_tagged, client);

    // Server streaming through a keyword-named rpc.
    let answers = bounded("Loop", client.r#loop(msg("l", 3)))
        .await
        .expect("Loop")
        .into_inner();
    assert_eq!(
        collect("Loop stream", answers).await,
        [msg("Loop:l", 0), msg("Loop:l", 1), msg("Loop:l", 2)]
    );
    // Bidi.
    let answers = bounded(
        "Yield",
        client.r#yield(stream::iter([msg("a", 1), msg("b", 2)])),
    )
    .await
    .expect("Yield")
    .into_inner();
    assert_eq!(
        collect("Yield stream", answers).await,
        [msg("Yield:a", 2), msg("Yield:b", 4)]
    );
    // Client streaming.
    let sum = bounded(
        "Where",
        client.r#where(stream::iter((1..=4).map(|n| msg("", n)))),
    )
    .await
    .expect("Where")
    .into_inner();
    assert_eq!(sum, msg("Where", 10));

    // The client's own helpers still are the helpers, next to the rpcs named like them.
    let mut clone = client.clone();
    let reply = bounded("Call on a clone", clone.call(msg("c", 0)))
        .await
        .expect("Call on a clone");
    assert_eq!(reply.into_inner().text, "Call:c");
    let mut rebuilt = KeywordsClient::new(client.into_inner());
    let reply = bounded("Type on a rebuilt client", rebuilt.r#type(msg("r", 0)))
        .await
        .expect("Type on a rebuilt client");
    assert_eq!(reply.into_inner().text, "Type:r");

    // Wire names are the proto names.
    assert_eq!(
        <KeywordsServer<Kw> as NamedService>::NAME,
        "sockrpc.test.tricky.Keywords"
    );
    let mut raw = sockrpc::Client::new(channel(&server).await);
    for (path, tag) in [
        ("/sockrpc.test.tricky.Keywords/Self", "Self:w"),
        ("/sockrpc.test.tricky.Keywords/Connect", "Connect:w"),
        ("/sockrpc.test.tricky.Keywords/Type", "Type:w"),
    ] {
        let reply = bounded(
            path,
            raw.unary::<Msg, Msg, _>(Request::new(msg("w", 0)), path, sockrpc::ProstCodec),
        )
        .await
        .expect(path);
        assert_eq!(reply.into_inner().text, tag, "{path}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyword_rpcs_through_the_dyn_twin() {
    let imp: Arc<dyn DynKeywords> = Arc::new(Kw);
    let server = start(sockrpc::Server::builder().add_service(KeywordsServer::new(imp)));
    let mut client = KeywordsClient::new(channel(&server).await);
    check_tagged! {
        client,
        r#type => "Type",
        self_ => "Self",
        connect_rpc => "Connect",
        call => "Call",
    }
    let answers = bounded("Loop", client.r#loop(msg("d", 2)))
        .await
        .expect("Loop")
        .into_inner();
    assert_eq!(
        collect("Loop stream", answers).await,
        [msg("Loop:d", 0), msg("Loop:d", 1)]
    );
    server.stop().await;
}
