//! The reflection client: which services a server serves, and the descriptors of one symbol's
//! file with everything it imports, asked for file by file until nothing is missing. It asks
//! `grpc.reflection.v1`, then `v1alpha` when the server has only that (older servers).
//!
//! A lookup is bounded whatever the server answers: each question must bring the file it asked
//! for (a server answering with files already kept, each naming new imports, had the client ask
//! for ever), so there are at most [`MAX_FILES`] questions; the files together are at most
//! [`MAX_BYTES`]; and the whole lookup at most [`LOOKUP_TIMEOUT`].

use super::exit::Failure;
use super::served::{self, ServedFile};
use prost_reflect::DescriptorPool;
use sockrpc::{Channel, Code, Request, Status};
use sockrpc_reflection::pb::server_reflection_request::MessageRequest;
use sockrpc_reflection::pb::server_reflection_response::MessageResponse;
use sockrpc_reflection::pb::{ServerReflectionRequest, ServerReflectionResponse};
use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::time::Duration;

/// Most files one lookup fetches (a symbol's file and its imports): a bound on a server that
/// keeps naming new imports.
const MAX_FILES: usize = 1000;

/// How long one reflection request may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(10);

/// Most bytes of encoded descriptors one lookup takes in: with [`MAX_FILES`], what a server
/// sending large files can make the client hold (real descriptor sets are a few MB at most).
const MAX_BYTES: usize = 64 * 1024 * 1024;

/// How long one lookup (a symbol's file and all it imports) may take in all.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(60);

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

/// The files of a `FileDescriptorResponse`, decoded and kept as they came (custom options
/// included: [`served`]); any other answer is its error.
pub(super) fn decode_files(answer: MessageResponse) -> Result<Vec<ServedFile>, Failure> {
    match answer {
        MessageResponse::FileDescriptorResponse(files) => files
            .file_descriptor_proto
            .into_iter()
            .map(|bytes| {
                ServedFile::decode(bytes).map_err(|err| {
                    Failure::Status(Status::internal(format!(
                        "reflection sent a file that does not decode: {err}"
                    )))
                })
            })
            .collect(),
        other => Err(unexpected(other, "files")),
    }
}

/// The files a lookup has, and the imports it still has to ask for.
#[derive(Default)]
struct Lookup {
    files: HashMap<String, ServedFile>,
    missing: VecDeque<String>,
    /// Every name ever queued: a name is asked for once, however many files import it.
    queued: HashSet<String>,
    /// Encoded bytes of every file received.
    bytes: usize,
}

impl Lookup {
    /// Takes in an answer's files (the first copy of each), queues the imports they name, and
    /// counts their bytes against [`MAX_BYTES`].
    fn add(&mut self, answer: MessageResponse, symbol: &str) -> Result<Vec<String>, Failure> {
        if let MessageResponse::FileDescriptorResponse(files) = &answer {
            self.bytes += files
                .file_descriptor_proto
                .iter()
                .map(Vec::len)
                .sum::<usize>();
            if self.bytes > MAX_BYTES {
                return Err(Failure::Status(Status::resource_exhausted(format!(
                    "{symbol} needs more than {MAX_BYTES} bytes of descriptors"
                ))));
            }
        }
        let mut names = Vec::new();
        for file in decode_files(answer)? {
            for import in &file.proto.dependency {
                if !self.files.contains_key(import) && self.queued.insert(import.clone()) {
                    self.missing.push_back(import.clone());
                }
            }
            names.push(file.name().to_owned());
            self.files.entry(file.name().to_owned()).or_insert(file);
        }
        Ok(names)
    }
}

/// The files `first`'s answer holds, and everything they import, asked for one by one with
/// `ask`; `symbol` names what was asked.
async fn fetch<A, F>(
    mut ask: A,
    first: MessageRequest,
    symbol: &str,
) -> Result<HashMap<String, ServedFile>, Failure>
where
    A: FnMut(MessageRequest) -> F,
    F: Future<Output = Result<MessageResponse, Failure>>,
{
    let mut lookup = Lookup::default();
    lookup.add(ask(first).await?, symbol)?;
    while let Some(name) = lookup.missing.pop_front() {
        if lookup.files.contains_key(&name) {
            continue;
        }
        if lookup.files.len() >= MAX_FILES {
            return Err(Failure::Status(Status::resource_exhausted(format!(
                "{symbol} needs more than {MAX_FILES} files"
            ))));
        }
        let answer = ask(MessageRequest::FileByFilename(name.clone())).await?;
        if !lookup.add(answer, symbol)?.contains(&name) {
            return Err(Failure::Status(Status::internal(format!(
                "reflection was asked for {name} (imported by {symbol}'s files) and did not \
                 send it"
            ))));
        }
    }
    Ok(lookup.files)
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
    let fetched = fetch(|request| ask(channel, request), first, symbol);
    let files = tokio::time::timeout(LOOKUP_TIMEOUT, fetched)
        .await
        .map_err(|_| {
            Failure::Status(Status::deadline_exceeded(format!(
                "reflection did not send {symbol}'s files within {}s",
                LOOKUP_TIMEOUT.as_secs()
            )))
        })??;
    let mut pool = DescriptorPool::new();
    served::add_to_pool(&mut pool, files.into_values()).map_err(|err| {
        Failure::Status(Status::internal(format!(
            "the server's descriptors do not build: {err}"
        )))
    })?;
    Ok(pool)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use sockrpc::codegen::prost_types::FileDescriptorProto;
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

    /// An answer with one file, `name`, importing `imports`.
    fn file(name: &str, imports: &[&str]) -> MessageResponse {
        let proto = FileDescriptorProto {
            name: Some(name.to_owned()),
            dependency: imports.iter().map(|i| (*i).to_owned()).collect(),
            ..FileDescriptorProto::default()
        };
        MessageResponse::FileDescriptorResponse(FileDescriptorResponse {
            file_descriptor_proto: vec![proto.encode_to_vec()],
        })
    }

    fn asked_name(request: &MessageRequest) -> String {
        match request {
            MessageRequest::FileByFilename(name) => name.clone(),
            other => format!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn each_file_is_asked_for_once_however_many_import_it() {
        // a imports b and c, b imports c and d, c imports d.
        let mut asked = Vec::new();
        let files = fetch(
            |request| {
                let name = asked_name(&request);
                asked.push(name.clone());
                std::future::ready(Ok(match name.as_str() {
                    "b.proto" => file("b.proto", &["c.proto", "d.proto"]),
                    "c.proto" => file("c.proto", &["d.proto"]),
                    "d.proto" => file("d.proto", &[]),
                    _ => file("a.proto", &["b.proto", "c.proto"]),
                }))
            },
            MessageRequest::FileContainingSymbol("x.A".to_owned()),
            "x.A",
        )
        .await
        .map_err(|f| f.to_string())
        .expect("fetched");
        let mut names: Vec<&String> = files.keys().collect();
        names.sort();
        assert_eq!(names, ["a.proto", "b.proto", "c.proto", "d.proto"]);
        assert_eq!(asked.len(), 4, "{asked:?}");
    }

    #[tokio::test]
    async fn a_server_that_never_sends_the_file_asked_for_ends_the_lookup() {
        // Every answer is a.proto again, naming one more import: the client used to ask for
        // ever, its queue growing.
        let mut asked = 0u32;
        let failure = fetch(
            |_| {
                asked += 1;
                let import = format!("dep{asked}.proto");
                std::future::ready(Ok(file("a.proto", &[import.as_str()])))
            },
            MessageRequest::FileContainingSymbol("x.A".to_owned()),
            "x.A",
        )
        .await
        .expect_err("refused");
        assert_eq!(failure.code(), Code::Internal as u8, "{failure}");
        assert!(
            failure.to_string().contains("asked for dep1.proto"),
            "{failure}"
        );
        assert_eq!(asked, 2);
    }

    #[tokio::test]
    async fn descriptors_past_the_byte_budget_are_refused_before_decoding() {
        let failure = fetch(
            |_| {
                std::future::ready(Ok(MessageResponse::FileDescriptorResponse(
                    FileDescriptorResponse {
                        file_descriptor_proto: vec![
                            vec![0; MAX_BYTES / 2],
                            vec![0; MAX_BYTES / 2 + 1],
                        ],
                    },
                )))
            },
            MessageRequest::FileContainingSymbol("x.A".to_owned()),
            "x.A",
        )
        .await
        .expect_err("refused");
        assert_eq!(failure.code(), Code::ResourceExhausted as u8, "{failure}");
    }
}
