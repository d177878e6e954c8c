//! The `ServerReflectionInfo` stream: every request gets one answer, in order, on the same
//! stream, as gRPC's reflection protocol has it; a file's imports go once per stream. What is not found is an `ErrorResponse` on the
//! stream (code `NOT_FOUND`), not the end of the call.

use crate::index::{DescriptorIndex, IndexError, SentFiles};
use crate::pb::server_reflection_request::MessageRequest;
use crate::pb::server_reflection_response::MessageResponse;
use crate::pb::server_reflection_server::{ServerReflection, ServerReflectionServer};
use crate::pb::{
    ErrorResponse, ExtensionNumberResponse, FileDescriptorResponse, ListServiceResponse,
    ServerReflectionRequest, ServerReflectionResponse, ServiceResponse,
};
use bytes::Bytes;
use futures_util::StreamExt;
use sockrpc::{BoxStream, Code, Request, Response, Status, Streaming};
use std::sync::Arc;

/// The reflection service over a [`DescriptorIndex`]; cloning shares the index.
#[derive(Debug, Clone)]
pub struct Reflection {
    index: Arc<Result<DescriptorIndex, IndexError>>,
    /// The services `list_services` names when set (tonic's `with_service_name`); otherwise
    /// every service the index declares.
    listed: Option<Arc<[String]>>,
}

impl Reflection {
    /// Reflection over `sets` (encoded `FileDescriptorSet`s) and over reflection's own
    /// descriptors, v1's and v1alpha's (see [`crate::v1alpha::file_descriptor`]), so it lists
    /// itself under both names as grpc-go and tonic do. A set that does not decode is kept as
    /// the error every call then fails with (`Internal`).
    pub fn from_sets(sets: &[&[u8]]) -> Reflection {
        let mut index = DescriptorIndex::new();
        let built = index
            .add_encoded_set(crate::pb::FILE_DESCRIPTOR_SET)
            .and_then(|()| crate::v1alpha::file_descriptor())
            .map(|v1alpha| index.add_file(v1alpha))
            .and_then(|()| sets.iter().try_for_each(|set| index.add_encoded_set(set)))
            .map(|()| index);
        Reflection {
            index: Arc::new(built),
            listed: None,
        }
    }

    /// Reflection over an index built by hand.
    pub fn from_index(index: DescriptorIndex) -> Reflection {
        Reflection {
            index: Arc::new(Ok(index)),
            listed: None,
        }
    }

    /// The same service, whose `list_services` names `services`, in that order, instead of
    /// every service the descriptors declare (tonic's `Builder::with_service_name`): a
    /// package's set declares its services whether this server serves them or not. Lookups
    /// by symbol and file are unchanged.
    pub fn listing_only(mut self, services: Vec<String>) -> Reflection {
        self.listed = Some(services.into());
        self
    }

    /// The service as `grpc.reflection.v1.ServerReflection`, to mount with `add_service`.
    pub fn v1(&self) -> ServerReflectionServer<Reflection> {
        ServerReflectionServer::new(self.clone())
    }

    /// The service as `grpc.reflection.v1alpha.ServerReflection`.
    pub fn v1alpha(&self) -> crate::v1alpha::V1Alpha {
        crate::v1alpha::V1Alpha::new(self.v1())
    }

    /// The answer to one request of a stream that has sent `sent` so far (see [`SentFiles`]).
    /// It carries the request back (`original_request`, and its host as `valid_host`), each of
    /// the client's strings cut at 1 KiB (`ECHOED`).
    pub fn answer(
        &self,
        index: &DescriptorIndex,
        request: ServerReflectionRequest,
        sent: &mut SentFiles,
    ) -> ServerReflectionResponse {
        let files = |found: Option<Vec<Bytes>>, what: String| match found {
            Some(files) => MessageResponse::FileDescriptorResponse(FileDescriptorResponse {
                file_descriptor_proto: files.into_iter().map(Vec::from).collect(),
            }),
            None => not_found(what),
        };
        let response = match &request.message_request {
            Some(MessageRequest::FileByFilename(name)) => files(
                index.file_by_name(name, sent),
                format!("no file named {}", Quoted(name)),
            ),
            Some(MessageRequest::FileContainingSymbol(symbol)) => files(
                index.file_containing_symbol(symbol, sent),
                format!("no symbol {}", Quoted(symbol)),
            ),
            Some(MessageRequest::FileContainingExtension(ext)) => files(
                index.file_containing_extension(&ext.containing_type, ext.extension_number, sent),
                format!(
                    "no extension {} of {}",
                    ext.extension_number,
                    Quoted(&ext.containing_type)
                ),
            ),
            Some(MessageRequest::AllExtensionNumbersOfType(message)) => {
                match index.extension_numbers(message) {
                    // Named as the index knows it: the lookup skips leading dots, and a name
                    // padded with them to the message limit, named back whole beside the
                    // request carried back, made an answer over the send limit
                    // (`tests/hostile/reflection_names.rs`).
                    Some(numbers) => {
                        MessageResponse::AllExtensionNumbersResponse(ExtensionNumberResponse {
                            base_type_name: message.trim_start_matches('.').to_owned(),
                            extension_number: numbers,
                        })
                    }
                    None => not_found(format!("no message {}", Quoted(message))),
                }
            }
            Some(MessageRequest::ListServices(_)) => {
                let service = match &self.listed {
                    Some(listed) => listed
                        .iter()
                        .map(|name| ServiceResponse { name: name.clone() })
                        .collect(),
                    None => index
                        .services()
                        .map(|name| ServiceResponse {
                            name: name.to_owned(),
                        })
                        .collect(),
                };
                MessageResponse::ListServicesResponse(ListServiceResponse { service })
            }
            None => MessageResponse::ErrorResponse(ErrorResponse {
                error_code: Code::InvalidArgument as i32,
                error_message: "the request names nothing to look up".to_owned(),
            }),
        };
        let request = echoed(request);
        ServerReflectionResponse {
            valid_host: request.host.clone(),
            original_request: Some(request),
            message_response: Some(response),
        }
    }
}

/// The most of each of a client's strings (its host, the name it looks up, a `list_services`
/// field) an answer carries back, in bytes: more than any real host or protobuf name.
///
/// An answer carries its request back (`original_request`, as grpc-go's does) and the host
/// once more (`valid_host`): whole, a request at the message limit made an answer over the
/// server's send limit (the same 4 MiB by default), and the whole stream failed
/// `RESOURCE_EXHAUSTED` instead of answering — a name filling the request by a few hundred
/// bytes of error beside it, a 3 MiB host by its second copy
/// (`tests/hostile/reflection_names.rs`).
const ECHOED: usize = 1024;

/// `request` as its answer carries it back: each string cut at [`ECHOED`] bytes (at a
/// character boundary), so an answer is never more than a few KiB beside what it found.
fn echoed(mut request: ServerReflectionRequest) -> ServerReflectionRequest {
    cut(&mut request.host);
    match &mut request.message_request {
        Some(
            MessageRequest::FileByFilename(name)
            | MessageRequest::FileContainingSymbol(name)
            | MessageRequest::AllExtensionNumbersOfType(name)
            | MessageRequest::ListServices(name),
        ) => cut(name),
        Some(MessageRequest::FileContainingExtension(ext)) => cut(&mut ext.containing_type),
        None => {}
    }
    request
}

/// Cuts `text` to at most [`ECHOED`] bytes, at a character boundary.
fn cut(text: &mut String) {
    if text.len() > ECHOED {
        let mut end = ECHOED;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.shrink_to_fit();
    }
}

/// The most of a client's name an error quotes, in bytes. The name may be as long as the
/// message limit (4 MiB), and the answer carries the request back (`original_request`, cut at
/// [`ECHOED`] now): quoted whole as well, a 3 MiB name made a 6 MiB answer, over the
/// server's send limit, and the whole stream failed `RESOURCE_EXHAUSTED` instead of answering
/// `NOT_FOUND` (`tests/hostile/reflection_names.rs`).
const QUOTED_NAME: usize = 256;

/// A client's name in an error: whole up to [`QUOTED_NAME`] bytes; longer, cut there at a
/// character boundary, with its length.
struct Quoted<'a>(&'a str);

impl std::fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self.0;
        if name.len() <= QUOTED_NAME {
            return f.write_str(name);
        }
        let mut end = QUOTED_NAME;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        write!(f, "{}… ({} bytes)", &name[..end], name.len())
    }
}

fn not_found(message: String) -> MessageResponse {
    MessageResponse::ErrorResponse(ErrorResponse {
        error_code: Code::NotFound as i32,
        error_message: message,
    })
}

impl ServerReflection for Reflection {
    type ServerReflectionInfoStream = BoxStream<ServerReflectionResponse>;

    async fn server_reflection_info(
        &self,
        request: Request<Streaming<ServerReflectionRequest>>,
    ) -> Result<Response<Self::ServerReflectionInfoStream>, Status> {
        if let Err(err) = self.index.as_ref() {
            return Err(Status::internal(format!("reflection: {err}")));
        }
        let this = self.clone();
        // What this stream has sent: later answers leave those imports out.
        let mut sent = SentFiles::default();
        let answers = request.into_inner().map(move |request| {
            let request = request?;
            match this.index.as_ref() {
                Ok(index) => Ok(this.answer(index, request, &mut sent)),
                Err(err) => Err(Status::internal(format!("reflection: {err}"))),
            }
        });
        Ok(Response::new(answers.boxed()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every way a name of 1- to 4-byte characters can straddle the cuts: each result is a
    /// prefix of the name ending on a character boundary, within its bound and at most one
    /// character short of it (a cut inside a character must neither panic nor split it).
    #[test]
    fn cuts_land_on_character_boundaries_whatever_straddles_them() {
        for ch in ['a', 'é', '€', '😀'] {
            for shift in 0..4 {
                for len in [QUOTED_NAME, ECHOED] {
                    for extra in 0..8 {
                        let name: String = "a".repeat(shift)
                            + &ch.to_string().repeat((len + extra) / ch.len_utf8() + 1);
                        let mut echoed = name.clone();
                        cut(&mut echoed);
                        assert!(name.starts_with(&echoed));
                        assert!(
                            echoed.len() <= ECHOED && echoed.len() + 4 > ECHOED.min(name.len())
                        );
                        let quoted = Quoted(&name).to_string();
                        let kept = quoted.split('…').next().unwrap_or_default();
                        assert!(name.starts_with(kept));
                        let whole = name.len() <= QUOTED_NAME;
                        assert_eq!(quoted == name, whole, "{ch:?} {shift} {len} {extra}");
                        if !whole {
                            assert!(kept.len() <= QUOTED_NAME && kept.len() + 4 > QUOTED_NAME);
                            assert!(quoted.ends_with(&format!("({} bytes)", name.len())));
                        }
                    }
                }
            }
        }
    }
}
