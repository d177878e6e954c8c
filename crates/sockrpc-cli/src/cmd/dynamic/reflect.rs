//! The reflection client: which services a server serves, and the descriptors of one symbol's
//! file with everything it imports, asked for file by file until nothing is missing.

use super::exit::Failure;
use prost::Message;
use prost_reflect::DescriptorPool;
use sockrpc::codegen::prost_types::FileDescriptorProto;
use sockrpc::{Channel, Code, Request, Status};
use sockrpc_reflection::pb::server_reflection_client::ServerReflectionClient;
use sockrpc_reflection::pb::server_reflection_request::MessageRequest;
use sockrpc_reflection::pb::server_reflection_response::MessageResponse;
use sockrpc_reflection::pb::ServerReflectionRequest;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// Most files one lookup fetches (a symbol's file and its imports): a bound on a server that
/// keeps naming new imports.
const MAX_FILES: usize = 1000;

/// How long one reflection request may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(10);

/// Asks one question on a stream of its own and returns the answer.
async fn ask(channel: &Channel, request: MessageRequest) -> Result<MessageResponse, Failure> {
    let mut client = ServerReflectionClient::new(channel.clone());
    let mut call = Request::new(futures_util::stream::iter([ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    }]));
    call.set_timeout(ASK_TIMEOUT);
    let mut answers = client
        .server_reflection_info(call)
        .await
        .map_err(explain)?
        .into_inner();
    let answer = futures_util::StreamExt::next(&mut answers)
        .await
        .ok_or_else(|| Status::internal("reflection ended without an answer"))?
        .map_err(explain)?;
    answer
        .message_response
        .ok_or_else(|| Failure::Status(Status::internal("reflection sent an empty answer")))
}

/// A reflection failure, with what to do about an absent reflection service.
fn explain(status: Status) -> Failure {
    if status.code() == Code::Unimplemented {
        return Failure::Status(Status::unimplemented(format!(
            "the server has no reflection service ({}); pass the service's --proto files",
            status.message()
        )));
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
        other => Err(unexpected(other)),
    }
}

fn unexpected(answer: MessageResponse) -> Failure {
    match answer {
        MessageResponse::ErrorResponse(error) => Failure::Status(Status::new(
            Code::from_u32(u32::try_from(error.error_code).unwrap_or(2)),
            error.error_message,
        )),
        other => Failure::Status(Status::internal(format!(
            "reflection answered something else: {other:?}"
        ))),
    }
}

fn decode_files(answer: MessageResponse) -> Result<Vec<FileDescriptorProto>, Failure> {
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
        other => Err(unexpected(other)),
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
    let first = ask(
        channel,
        MessageRequest::FileContainingSymbol(symbol.to_owned()),
    )
    .await?;
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
