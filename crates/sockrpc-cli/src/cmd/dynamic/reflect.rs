//! The reflection client: which services a server serves, and the descriptors of one symbol's
//! file with everything it imports, asked for file by file until nothing is missing. It asks
//! `grpc.reflection.v1`, then `v1alpha` when the server has only that (older servers).

use super::exit::Failure;
use prost::Message;
use prost_reflect::DescriptorPool;
use sockrpc::codegen::prost_types::FileDescriptorProto;
use sockrpc::{Channel, Code, Request, Status};
use sockrpc_reflection::pb::server_reflection_request::MessageRequest;
use sockrpc_reflection::pb::server_reflection_response::MessageResponse;
use sockrpc_reflection::pb::{ServerReflectionRequest, ServerReflectionResponse};
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// Most files one lookup fetches (a symbol's file and its imports): a bound on a server that
/// keeps naming new imports.
const MAX_FILES: usize = 1000;

/// How long one reflection request may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(10);

/// The reflection method under gRPC's current name, then under the name servers from before
/// the rename still serve alone.
const PATHS: [&str; 2] = [
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// Asks one question on a stream of its own and returns the answer: of v1 reflection, or of
/// v1alpha when the server has no v1 (as grpcurl falls back).
pub(super) async fn ask(
    channel: &Channel,
    request: MessageRequest,
) -> Result<MessageResponse, Failure> {
    let question = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut answer = Err(Status::unimplemented("no reflection path tried"));
    for path in PATHS {
        answer = ask_at(channel, path, question.clone()).await;
        if !matches!(&answer, Err(status) if status.code() == Code::Unimplemented) {
            break;
        }
    }
    answer
        .map_err(explain)?
        .message_response
        .ok_or_else(|| Failure::Status(Status::internal("reflection sent an empty answer")))
}

/// One question to the reflection method at `path`, and its first answer.
async fn ask_at(
    channel: &Channel,
    path: &'static str,
    question: ServerReflectionRequest,
) -> Result<ServerReflectionResponse, Status> {
    let mut call = Request::new(futures_util::stream::iter([question]));
    call.set_timeout(ASK_TIMEOUT);
    let mut answers = sockrpc::Client::new(channel.clone())
        .streaming(call, path, sockrpc::ProstCodec)
        .await?
        .into_inner();
    futures_util::StreamExt::next(&mut answers)
        .await
        .ok_or_else(|| Status::internal("reflection ended without an answer"))?
}

/// A reflection failure, with what to do about an absent reflection service.
fn explain(status: Status) -> Failure {
    if status.code() == Code::Unimplemented {
        return Failure::Status(Status::unimplemented(
            "the server has no reflection service (neither grpc.reflection.v1 nor v1alpha): \
             pass the service's --proto files",
        ));
    }
    Failure::Status(status)
}

/// The services the server lists.
pub(crate) async fn list_services(channel: &Channel) -> Result<Vec<String>, Failure> {
    match ask(channel, MessageRequest::ListServices(String::new())).await? {
        MessageResponse::ListServicesResponse(list) => {
            let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
            names.sort();
            Ok(names)
        }
        other => Err(unexpected(other, "a service list")),
    }
}

/// An answer that is not the `wanted` kind: the error it carries, or one line naming what came
/// instead (never the answer itself, which may be a whole descriptor set).
pub(super) fn unexpected(answer: MessageResponse, wanted: &str) -> Failure {
    let got = match answer {
        MessageResponse::ErrorResponse(error) => {
            return Failure::Status(Status::new(
                Code::from_u32(u32::try_from(error.error_code).unwrap_or(2)),
                error.error_message,
            ))
        }
        MessageResponse::FileDescriptorResponse(_) => "files",
        MessageResponse::AllExtensionNumbersResponse(_) => "extension numbers",
        MessageResponse::ListServicesResponse(_) => "a service list",
    };
    Failure::Status(Status::internal(format!(
        "reflection answered with {got} where {wanted} was asked for"
    )))
}

/// The files of a `FileDescriptorResponse`, decoded; any other answer is its error.
pub(super) fn decode_files(answer: MessageResponse) -> Result<Vec<FileDescriptorProto>, Failure> {
    match answer {
        MessageResponse::FileDescriptorResponse(files) => files
            .file_descriptor_proto
            .iter()
            .map(|bytes| {
                FileDescriptorProto::decode(bytes.as_slice()).map_err(|err| {
                    Failure::Status(Status::internal(format!(
                        "reflection sent a file that does not decode: {err}"
                    )))
                })
            })
            .collect(),
        other => Err(unexpected(other, "files")),
    }
}

/// Keeps `found` (the first copy of each file) and queues the imports they name.
fn add(
    files: &mut HashMap<String, FileDescriptorProto>,
    found: Vec<FileDescriptorProto>,
    missing: &mut VecDeque<String>,
) {
    for file in found {
        missing.extend(file.dependency.iter().cloned());
        files.entry(file.name().to_owned()).or_insert(file);
    }
}

/// A pool with the file declaring `symbol` and everything it imports.
pub(crate) async fn pool_for_symbol(
    channel: &Channel,
    symbol: &str,
) -> Result<DescriptorPool, Failure> {
    let request = MessageRequest::FileContainingSymbol(symbol.to_owned());
    pool_from(channel, request, symbol).await
}

/// A pool with the file named `name` and everything it imports.
pub(crate) async fn pool_for_file(
    channel: &Channel,
    name: &str,
) -> Result<DescriptorPool, Failure> {
    pool_from(
        channel,
        MessageRequest::FileByFilename(name.to_owned()),
        name,
    )
    .await
}

/// The files `first` answers with, and everything they import; `symbol` names what was asked.
async fn pool_from(
    channel: &Channel,
    first: MessageRequest,
    symbol: &str,
) -> Result<DescriptorPool, Failure> {
    let first = ask(channel, first).await?;
    let mut files: HashMap<String, FileDescriptorProto> = HashMap::new();
    let mut missing = VecDeque::new();
    add(&mut files, decode_files(first)?, &mut missing);
    while let Some(name) = missing.pop_front() {
        if files.contains_key(&name) {
            continue;
        }
        if files.len() >= MAX_FILES {
            return Err(Failure::Status(Status::resource_exhausted(format!(
                "{symbol} needs more than {MAX_FILES} files"
            ))));
        }
        let found = decode_files(ask(channel, MessageRequest::FileByFilename(name)).await?)?;
        add(&mut files, found, &mut missing);
    }
    let mut pool = DescriptorPool::new();
    pool.add_file_descriptor_protos(files.into_values())
        .map_err(|err| {
            Failure::Status(Status::internal(format!(
                "the server's descriptors do not build: {err}"
            )))
        })?;
    Ok(pool)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sockrpc_reflection::pb::{ErrorResponse, FileDescriptorResponse};

    #[test]
    fn a_wrong_answer_is_one_line_not_a_dump() {
        let files = MessageResponse::FileDescriptorResponse(FileDescriptorResponse {
            file_descriptor_proto: vec![vec![0x0a; 50]],
        });
        let message = unexpected(files, "a service list").to_string();
        assert_eq!(
            message,
            "status Internal (13): reflection answered with files where a service list was \
             asked for"
        );
        let error = MessageResponse::ErrorResponse(ErrorResponse {
            error_code: Code::NotFound as i32,
            error_message: "no symbol x.Y".to_owned(),
        });
        let failure = unexpected(error, "files");
        assert_eq!(failure.code(), 5);
        assert!(failure.to_string().ends_with("no symbol x.Y"), "{failure}");
    }
}
