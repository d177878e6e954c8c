//! A client of reflection under its v1alpha name, `grpc.reflection.v1alpha.ServerReflection`,
//! as tonic-reflection's `pb::v1alpha::server_reflection_client` has it: older servers
//! (grpc-go's and tonic's before v1) answer only that name. The messages are v1's (gRPC renamed
//! the package, not a message), so only the path this client calls differs from v1's.

use crate::pb::{ServerReflectionRequest, ServerReflectionResponse};
use sockrpc::codegen::{
    Channel, Client, ClientService, Idempotency, IntoEndpoint, IntoStreamingRequest, ProstCodec,
    Response, RpcMethod, Status, Streaming,
};

/// The method this client calls.
pub const SERVER_REFLECTION_INFO: &str =
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";

/// The v1alpha `ServerReflection` client, over a channel or any tower stack over one.
#[derive(Debug, Clone)]
pub struct ServerReflectionClient<T = Channel> {
    inner: Client<T>,
}

impl ServerReflectionClient<Channel> {
    /// Connects to `dst` (e.g. `"tcp://127.0.0.1:50051"` or `"http://127.0.0.1:50051"`).
    pub async fn connect<D: IntoEndpoint>(dst: D) -> Result<Self, Status> {
        let channel = Channel::connect(dst).await?;
        Ok(Self::new(channel))
    }
}

impl<T: ClientService> ServerReflectionClient<T> {
    /// Wraps an existing channel or tower stack.
    pub fn new(inner: T) -> Self {
        Self {
            inner: Client::new(inner),
        }
    }

    /// One reflection stream: an answer for each request, in order.
    pub async fn server_reflection_info(
        &mut self,
        request: impl IntoStreamingRequest<Message = ServerReflectionRequest>,
    ) -> Result<Response<Streaming<ServerReflectionResponse>>, Status> {
        self.inner
            .streaming(
                IntoStreamingRequest::into_streaming_request(request),
                RpcMethod::new(SERVER_REFLECTION_INFO, Idempotency::Unknown),
                ProstCodec,
            )
            .await
    }
}
