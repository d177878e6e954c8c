//! tonic's names for making a channel, so a client set-up ported from tonic compiles. tonic
//! builds an `Endpoint` from `Channel::from_static`/`from_shared` and then calls the endpoint's
//! `connect()`; sockrpc's `Endpoint` lives in the transport crate, below `Channel`, so the
//! connect step is `Channel::connect(endpoint)` (or [`Channel::connect_lazy`] for tonic's
//! `connect_lazy()`). [`EndpointExt`] gives the endpoint tonic's own spelling,
//! `endpoint.connect().await` and `endpoint.connect_lazy()`, once the trait is in scope (a
//! method of the transport's type defined up here, where `Channel` is, must be a trait's).
//! tonic's `Channel::balance_list` is a balanced channel over a fixed list, as
//! [`Channel::balance`] makes from [`discovery::fixed`](crate::discovery::fixed).

use super::Channel;
use crate::balance::Balanced;
use sockrpc_protocol::Status;
use sockrpc_transport::endpoint::{Endpoint, IntoEndpoint};

impl Channel {
    /// tonic's `Channel::from_static`: the [`Endpoint`] for a constant address, to configure
    /// and then connect with [`Channel::connect`].
    ///
    /// # Panics
    /// If `uri` is not an address `Endpoint::from_uri` takes.
    pub fn from_static(uri: &'static str) -> Endpoint {
        Endpoint::from_static(uri)
    }

    /// tonic's `Channel::from_shared`: the [`Endpoint`] for an address held at run time.
    pub fn from_shared(uri: impl Into<Vec<u8>>) -> Result<Endpoint, Status> {
        Endpoint::from_shared(uri)
    }

    /// tonic's `Endpoint::connect_lazy`: a channel that connects on its first call (the same as
    /// [`Channel::lazy`]).
    pub fn connect_lazy(dst: impl IntoEndpoint) -> Result<Channel, Status> {
        Channel::lazy(dst)
    }

    /// tonic's `Channel::balance_list`: one channel balancing calls over these endpoints
    /// (p2c on peak-EWMA load, as [`Channel::balance`]), keyed by their addresses, so a
    /// repeated one counts once. A [`Balanced`], which generated clients take as they take a
    /// `Channel`. Call inside a Tokio runtime, as tonic's.
    pub fn balance_list(list: impl Iterator<Item = Endpoint>) -> Balanced {
        Channel::balance(crate::discovery::of_endpoints(list))
    }
}

/// tonic's `Endpoint::connect` and `Endpoint::connect_lazy`, as methods of sockrpc's
/// [`Endpoint`]: `use sockrpc::transport::EndpointExt;` and a set-up ported from tonic,
/// `Endpoint::from_static(..).connect().await?`, compiles as it was.
pub trait EndpointExt: Sized {
    /// Connects now, as [`Channel::connect`]: `UNAVAILABLE` when not even one connection
    /// comes up within the endpoint's connect timeout (tonic's `transport::Error`).
    fn connect(self) -> impl std::future::Future<Output = Result<Channel, Status>> + Send;

    /// A channel that connects on its first call, as [`Channel::lazy`]. Infallible, as
    /// tonic's: the endpoint is already checked.
    fn connect_lazy(self) -> Channel;
}

impl EndpointExt for Endpoint {
    fn connect(self) -> impl std::future::Future<Output = Result<Channel, Status>> + Send {
        Channel::connect(self)
    }

    fn connect_lazy(self) -> Channel {
        Channel::lazy_from(self)
    }
}
