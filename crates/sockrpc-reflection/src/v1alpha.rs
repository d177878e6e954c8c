//! Reflection under its v1alpha name. gRPC renamed the package from `v1alpha` to `v1` without
//! changing a message, so the v1 service answers v1alpha calls unchanged: only the name the
//! router mounts it under differs (generated servers dispatch on the method name alone).
//!
//! Its descriptor, [`file_descriptor`], is v1's renamed, so reflection lists the v1alpha service
//! too (as grpc-go and tonic do) and can hand out its file.

use crate::index::IndexError;
use crate::pb::server_reflection_server::ServerReflectionServer;
use crate::service::Reflection;
use prost::Message;
use prost_types::{DescriptorProto, FileDescriptorProto, FileDescriptorSet};
use sockrpc::codegen::{Body, BoxFuture, Call, NamedService, Response, Service, Status};
use std::task::{Context, Poll};

/// The v1 file the v1alpha descriptor is derived from.
const V1_FILE: &str = "grpc/reflection/v1/reflection.proto";
/// The v1alpha file's name, as gRPC's own copy has it.
pub const FILE_NAME: &str = "grpc/reflection/v1alpha/reflection.proto";
const V1_PACKAGE: &str = "grpc.reflection.v1";
const PACKAGE: &str = "grpc.reflection.v1alpha";

/// The descriptor of `grpc/reflection/v1alpha/reflection.proto`: v1's file (from the generated
/// `FILE_DESCRIPTOR_SET`) in package `grpc.reflection.v1alpha`, every type it names renamed to
/// match, its options those of gRPC's v1alpha file (deprecated, its Go and Java packages).
pub fn file_descriptor() -> Result<FileDescriptorProto, IndexError> {
    let set = FileDescriptorSet::decode(crate::pb::FILE_DESCRIPTOR_SET).map_err(|err| {
        IndexError::new(format!("reflection's own descriptors do not decode: {err}"))
    })?;
    let v1 = set
        .file
        .into_iter()
        .find(|file| file.name() == V1_FILE)
        .ok_or_else(|| IndexError::new(format!("reflection's own descriptors lack {V1_FILE}")))?;
    Ok(rename(v1))
}

/// `v1` with its package, its types' references and its options made v1alpha's.
fn rename(mut file: FileDescriptorProto) -> FileDescriptorProto {
    file.name = Some(FILE_NAME.to_owned());
    file.package = Some(PACKAGE.to_owned());
    for message in &mut file.message_type {
        rename_message(message);
    }
    for service in &mut file.service {
        for method in &mut service.method {
            rename_type(&mut method.input_type);
            rename_type(&mut method.output_type);
        }
    }
    let options = file.options.get_or_insert_with(Default::default);
    options.deprecated = Some(true);
    options.go_package =
        Some("google.golang.org/grpc/reflection/grpc_reflection_v1alpha".to_owned());
    options.java_package = Some("io.grpc.reflection.v1alpha".to_owned());
    file
}

fn rename_message(message: &mut DescriptorProto) {
    for field in message.field.iter_mut().chain(&mut message.extension) {
        rename_type(&mut field.type_name);
        rename_type(&mut field.extendee);
    }
    for nested in &mut message.nested_type {
        rename_message(nested);
    }
}

/// `.grpc.reflection.v1.X` → `.grpc.reflection.v1alpha.X`; other names are left alone.
fn rename_type(name: &mut Option<String>) {
    let renamed = name
        .as_deref()
        .and_then(|name| name.strip_prefix('.'))
        .and_then(|name| name.strip_prefix(V1_PACKAGE))
        .and_then(|rest| rest.strip_prefix('.'))
        .map(|rest| format!(".{PACKAGE}.{rest}"));
    if let Some(renamed) = renamed {
        *name = Some(renamed);
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_v1_name_becomes_v1alpha() {
        let file = file_descriptor().expect("derived");
        assert_eq!(file.name(), FILE_NAME);
        assert_eq!(file.package(), PACKAGE);
        let service = &file.service[0];
        assert_eq!(service.name(), "ServerReflection");
        let method = &service.method[0];
        assert_eq!(
            method.input_type(),
            ".grpc.reflection.v1alpha.ServerReflectionRequest"
        );
        assert_eq!(
            method.output_type(),
            ".grpc.reflection.v1alpha.ServerReflectionResponse"
        );
        let encoded = file.encode_to_vec();
        let text = String::from_utf8_lossy(&encoded);
        assert!(!text.contains(".grpc.reflection.v1."), "{file:#?}");
        assert_eq!(
            file.options.as_ref().and_then(|options| options.deprecated),
            Some(true)
        );
    }

    #[test]
    fn names_outside_v1_are_kept() {
        for kept in [".google.protobuf.Any", ".grpc.reflection.v1x.A", "X"] {
            let mut name = Some(kept.to_owned());
            rename_type(&mut name);
            assert_eq!(name.as_deref(), Some(kept));
        }
        let mut name = Some(".grpc.reflection.v1.A.B".to_owned());
        rename_type(&mut name);
        assert_eq!(name.as_deref(), Some(".grpc.reflection.v1alpha.A.B"));
    }
}
