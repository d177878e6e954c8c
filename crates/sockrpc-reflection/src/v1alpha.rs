//! Reflection under its v1alpha name. gRPC renamed the package from `v1alpha` to `v1` without
//! changing a message, so the v1 service answers v1alpha calls unchanged: only the name the
//! router mounts it under differs (generated servers dispatch on the method name alone).

use crate::pb::server_reflection_server::ServerReflectionServer;
use crate::service::Reflection;
use sockrpc::codegen::{Body, BoxFuture, Call, NamedService, Response, Service, Status};
use std::task::{Context, Poll};

/// `grpc.reflection.v1alpha.ServerReflection`, served by the v1 implementation.
#[derive(Debug, Clone)]
pub struct V1Alpha {
    inner: ServerReflectionServer<Reflection>,
}

impl V1Alpha {
    /// Serves `inner` under the v1alpha name.
    pub fn new(inner: ServerReflectionServer<Reflection>) -> V1Alpha {
        V1Alpha { inner }
    }
}

impl NamedService for V1Alpha {
    const NAME: &'static str = "grpc.reflection.v1alpha.ServerReflection";
}

impl Service<Call> for V1Alpha {
    type Response = Response<Body>;
    type Error = Status;
    type Future = BoxFuture<Result<Response<Body>, Status>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, call: Call) -> Self::Future {
        self.inner.call(call)
    }
}
