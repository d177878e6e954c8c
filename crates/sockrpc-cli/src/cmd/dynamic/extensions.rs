//! Extensions declared in files the method's own files do not import. A proto2 message with
//! `extensions 100 to 199;` may be extended anywhere, and reflection's file lookups only hand
//! out a file and what it imports, so JSON naming such an extension (`"[pkg.ext]": ...`) would
//! be an unknown field and an answer carrying one could not show it. As grpcurl does, the
//! client asks for every extendable message type the method reaches (request and response,
//! through their fields) `all_extension_numbers_of_type`, then the file of each extension it
//! does not know yet (`file_containing_extension`), and adds those files to the pool. `call`
//! and `bench --call` do this for a method; `describe` for the message it shows, so that the
//! extensions declared elsewhere are written with it.
//!
//! This is best effort for servers that predate these requests: NOT_FOUND or UNIMPLEMENTED
//! means "no extensions", never a failed call. Everything a server can make the client fetch
//! is bounded: the message types asked about, the requests, the files and their bytes.

use super::exit::Failure;
use super::reflect::{ask, decode_files};
use super::served::{self, ServedFile};
use prost_reflect::{DescriptorPool, Kind, MessageDescriptor, MethodDescriptor};
use sockrpc::{Channel, Code, Status};
use sockrpc_reflection::pb::server_reflection_request::MessageRequest;
use sockrpc_reflection::pb::server_reflection_response::MessageResponse;
use sockrpc_reflection::pb::ExtensionRequest;
use std::collections::{HashSet, VecDeque};

/// Most extendable message types asked about; past it the walk stops (the call goes on with
/// the extensions found so far).
const MAX_TYPES: usize = 256;

/// Most reflection requests one lookup's extensions (a method's, a message's) may take.
const MAX_REQUESTS: usize = 1024;

/// Most files the extensions may add to the pool (with the imports they need).
const MAX_FILES: usize = 256;

/// Most bytes of encoded files the extensions may add.
const MAX_BYTES: usize = 16 << 20;

/// What is left of the bounds above.
pub(super) struct Budget {
    requests: usize,
    files: usize,
    bytes: usize,
}

impl Budget {
    /// The bounds in full.
    pub(super) fn new() -> Budget {
        Budget {
            requests: MAX_REQUESTS,
            files: MAX_FILES,
            bytes: MAX_BYTES,
        }
    }

    /// One more request, or the error that says the server asked for too many.
    pub(super) fn request(&mut self, what: &str) -> Result<(), Failure> {
        self.requests = self.requests.checked_sub(1).ok_or_else(|| {
            exhausted(format!(
                "{what}'s extensions need more than {MAX_REQUESTS} reflection requests"
            ))
        })?;
        Ok(())
    }

    /// `answer`'s files, counted against the file and byte bounds.
    pub(super) fn files(
        &mut self,
        answer: MessageResponse,
        what: &str,
    ) -> Result<Vec<ServedFile>, Failure> {
        if let MessageResponse::FileDescriptorResponse(files) = &answer {
            let bytes: usize = files.file_descriptor_proto.iter().map(Vec::len).sum();
            self.bytes = self.bytes.checked_sub(bytes).ok_or_else(|| {
                exhausted(format!(
                    "{what}'s extensions need more than {MAX_BYTES} bytes of descriptors"
                ))
            })?;
        }
        let files = decode_files(answer)?;
        self.files = self.files.checked_sub(files.len()).ok_or_else(|| {
            exhausted(format!(
                "{what}'s extensions need more than {MAX_FILES} files"
            ))
        })?;
        Ok(files)
    }
}

fn exhausted(message: String) -> Failure {
    Failure::Status(Status::resource_exhausted(message))
}

/// Whether `failure` is how a server without these requests (or without the type) answers.
pub(super) fn absent(failure: &Failure) -> bool {
    matches!(failure, Failure::Status(status)
        if matches!(status.code(), Code::NotFound | Code::Unimplemented))
}

/// `method` in a pool that also holds the extensions, declared in any file the server has, of
/// every extendable message type its request and response reach.
pub(crate) async fn with_extensions(
    channel: &Channel,
    method: MethodDescriptor,
) -> Result<MethodDescriptor, Failure> {
    let name = method.full_name().to_owned();
    let roots = vec![method.input(), method.output()];
    let pool = extended_pool(channel, roots, Reach::Deep, &name).await?;
    let found = pool
        .get_service_by_name(method.parent_service().full_name())
        .and_then(|service| service.methods().find(|m| m.name() == method.name()));
    Ok(found.unwrap_or(method))
}

/// Which message types [`extended_pool`] asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// The roots only (`describe` of a message shows its own extensions).
    Roots,
    /// The roots and every message type their fields and extensions reach (what a call's JSON
    /// may name).
    Deep,
}

/// The pool of `roots` (all from one pool), with the files declaring the extensions of the
/// extendable message types `reach` takes in, as far as the bounds allow; `what` names what
/// they are for in errors.
pub(crate) async fn extended_pool(
    channel: &Channel,
    roots: Vec<MessageDescriptor>,
    reach: Reach,
    what: &str,
) -> Result<DescriptorPool, Failure> {
    let Some(first) = roots.first() else {
        return Ok(DescriptorPool::new());
    };
    let mut pool = first.parent_pool().clone();
    let mut budget = Budget::new();
    let mut queue: VecDeque<MessageDescriptor> = roots.into();
    let mut seen: HashSet<String> = HashSet::new();
    let mut asked = 0;
    while let Some(message) = queue.pop_front() {
        if !seen.insert(message.full_name().to_owned()) {
            continue;
        }
        if message.extension_ranges().next().is_some() {
            if asked == MAX_TYPES {
                break;
            }
            asked += 1;
            fetch_extensions(channel, &mut pool, message.full_name(), &mut budget, what).await?;
        }
        if reach == Reach::Roots {
            continue;
        }
        // Read again from the pool, which may now know more extensions of it.
        let message = pool
            .get_message_by_name(message.full_name())
            .unwrap_or(message);
        let fields = message.fields().map(|f| f.kind());
        let extensions = message.extensions().map(|e| e.kind());
        for kind in fields.chain(extensions) {
            if let Kind::Message(inner) = kind {
                queue.push_back(inner);
            }
        }
    }
    Ok(pool)
}

/// Adds to `pool` the files declaring the extensions of `message` it does not know yet.
async fn fetch_extensions(
    channel: &Channel,
    pool: &mut DescriptorPool,
    message: &str,
    budget: &mut Budget,
    what: &str,
) -> Result<(), Failure> {
    budget.request(what)?;
    let numbers = match ask(
        channel,
        MessageRequest::AllExtensionNumbersOfType(message.to_owned()),
    )
    .await
    {
        Ok(MessageResponse::AllExtensionNumbersResponse(answer)) => answer.extension_number,
        Ok(MessageResponse::ErrorResponse(error))
            if [Code::NotFound as i32, Code::Unimplemented as i32].contains(&error.error_code) =>
        {
            return Ok(())
        }
        Ok(other) => return Err(super::reflect::unexpected(other, "extension numbers")),
        Err(failure) if absent(&failure) => return Ok(()),
        Err(failure) => return Err(failure),
    };
    for number in numbers {
        let Ok(wire) = u32::try_from(number) else {
            continue;
        };
        let known = pool
            .get_message_by_name(message)
            .is_some_and(|m| m.get_extension(wire).is_some());
        if known {
            continue;
        }
        budget.request(what)?;
        let request = MessageRequest::FileContainingExtension(ExtensionRequest {
            containing_type: message.to_owned(),
            extension_number: number,
        });
        let files = match ask(channel, request).await {
            Ok(answer) => match budget.files(answer, what) {
                Ok(files) => files,
                Err(failure) if absent(&failure) => continue,
                Err(failure) => return Err(failure),
            },
            Err(failure) if absent(&failure) => continue,
            Err(failure) => return Err(failure),
        };
        add_files(channel, pool, files, budget, what).await?;
    }
    Ok(())
}

/// Adds `found` to `pool`, with the imports of theirs it lacks (asked for by name); files the
/// pool already has are kept as they are.
pub(super) async fn add_files(
    channel: &Channel,
    pool: &mut DescriptorPool,
    found: Vec<ServedFile>,
    budget: &mut Budget,
    what: &str,
) -> Result<(), Failure> {
    let mut batch: Vec<ServedFile> = Vec::new();
    let mut missing: VecDeque<ServedFile> = found.into();
    let mut wanted: VecDeque<String> = VecDeque::new();
    loop {
        while let Some(file) = missing.pop_front() {
            let name = file.name();
            if pool.get_file_by_name(name).is_some() || batch.iter().any(|f| f.name() == name) {
                continue;
            }
            wanted.extend(file.proto.dependency.iter().cloned());
            batch.push(file);
        }
        let Some(name) = wanted.pop_front() else {
            break;
        };
        if pool.get_file_by_name(&name).is_some() || batch.iter().any(|f| f.name() == name) {
            continue;
        }
        budget.request(what)?;
        let answer = ask(channel, MessageRequest::FileByFilename(name)).await?;
        missing.extend(budget.files(answer, what)?);
    }
    if batch.is_empty() {
        return Ok(());
    }
    served::add_to_pool(pool, batch).map_err(|err| {
        Failure::Status(Status::internal(format!(
            "the server's descriptors of {what}'s extensions do not build: {err}"
        )))
    })
}
