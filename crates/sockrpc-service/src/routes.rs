//! tonic's `Routes` and `RoutesBuilder` (`tonic::service`), beside sockrpc's [`Router`]: a
//! program ported from tonic builds its routes as it did, by reference
//! (`routes.add_service(a).add_service(b)` on a `let mut routes`), where [`Router`] takes and
//! returns itself. Both hand a [`Router`] to `Server::builder().add_routes(..)`.

use crate::{BoxError, Call, IntoCallResponse, NamedService, Router};
use tower_service::Service;

/// tonic's `Routes`: services to serve together, added by reference. Becomes a [`Router`]
/// (`into_router`, or `From`) wherever one is taken, `add_routes` included.
#[derive(Clone, Debug, Default)]
pub struct Routes {
    router: Router,
}

impl Routes {
    /// Routes serving `service`.
    pub fn new<S>(service: S) -> Routes
    where
        S: NamedService + Service<Call> + Clone + Send + Sync + 'static,
        S::Response: IntoCallResponse,
        S::Error: Into<BoxError> + 'static,
        S::Future: Send + 'static,
    {
        let mut routes = Routes::default();
        routes.add_service(service);
        routes
    }

    /// Adds `service` under its name (see [`Router::add_service`]); chains by reference.
    pub fn add_service<S>(&mut self, service: S) -> &mut Routes
    where
        S: NamedService + Service<Call> + Clone + Send + Sync + 'static,
        S::Response: IntoCallResponse,
        S::Error: Into<BoxError> + 'static,
        S::Future: Send + 'static,
    {
        self.router = std::mem::take(&mut self.router).add_service(service);
        self
    }

    /// tonic's `prepare`: nothing to prepare here, the routes as they are.
    pub fn prepare(self) -> Routes {
        self
    }

    /// The router these routes are.
    pub fn into_router(self) -> Router {
        self.router
    }
}

impl From<Routes> for Router {
    fn from(routes: Routes) -> Router {
        routes.router
    }
}

impl From<Router> for Routes {
    fn from(router: Router) -> Routes {
        Routes { router }
    }
}

/// tonic's `RoutesBuilder`: adds services by reference, then gives its [`Routes`].
#[derive(Clone, Debug, Default)]
pub struct RoutesBuilder {
    routes: Routes,
}

impl RoutesBuilder {
    /// Adds `service` under its name; chains by reference.
    pub fn add_service<S>(&mut self, service: S) -> &mut RoutesBuilder
    where
        S: NamedService + Service<Call> + Clone + Send + Sync + 'static,
        S::Response: IntoCallResponse,
        S::Error: Into<BoxError> + 'static,
        S::Future: Send + 'static,
    {
        self.routes.add_service(service);
        self
    }

    /// The routes built.
    pub fn routes(self) -> Routes {
        self.routes
    }
}
