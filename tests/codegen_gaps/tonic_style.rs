//! Code generated as a tonic user's build script asks (`tests/build.rs`: `.bytes(".")` and
//! `.btree_map(".")` with one path, `protoc_arg`, `emit_package(false)`, `proto_path`,
//! `compile_with_config`, `file_descriptor_set_const(false)`): two packages included
//! into one module beside a `FILE_DESCRIPTOR_SET` the module declares itself with
//! `include_file_descriptor_set!`, as tonic's reflection examples do. Both constants in one
//! module would not compile.

use sockrpc::codegen::prost_types::FileDescriptorSet;
use sockrpc::{Request, Response, Status};
use std::collections::BTreeMap;

use crate::{bounded, serve};

#[allow(unreachable_pub, missing_docs, clippy::all)]
mod pb {
    sockrpc::include_proto!("tstyle");
    sockrpc::include_proto!("tstyle_two");
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        sockrpc::include_file_descriptor_set!("tstyle_descriptor");
}

use pb::echo_client::EchoClient;
use pb::echo_server::{Echo, EchoServer};
use pb::notes_client::NotesClient;
use pb::notes_server::{Notes, NotesServer};
use pb::{Note, Words};

struct Both;

impl Echo for Both {
    async fn say(&self, request: Request<Words>) -> Result<Response<Words>, Status> {
        let mut words = request.into_inner();
        words.counts.insert("said".to_owned(), 1);
        Ok(Response::new(words))
    }
}

impl Notes for Both {
    async fn keep(&self, request: Request<Note>) -> Result<Response<Note>, Status> {
        Ok(Response::new(request.into_inner()))
    }
}

#[test]
fn the_modules_own_descriptor_set_holds_both_files() {
    let set: FileDescriptorSet =
        prost::Message::decode(pb::FILE_DESCRIPTOR_SET).expect("a descriptor set");
    let mut names: Vec<&str> = set.file.iter().map(|file| file.name()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["sockrpc/gaps/tstyle.proto", "sockrpc/gaps/tstyle_two.proto"]
    );
}

#[tokio::test]
async fn both_packages_of_one_module_serve() {
    let builder = sockrpc::Server::builder()
        .add_service(EchoServer::new(Both))
        .add_service(NotesServer::new(Both));
    // `emit_package(false)`: named on the wire without the package.
    assert_eq!(
        <EchoServer<Both> as sockrpc::codegen::NamedService>::NAME,
        "Echo"
    );
    let (_server, channel) = serve(builder).await;
    // `bytes` and `btree_map` took their one path: `Bytes` and `BTreeMap` fields.
    let words = Words {
        text: "hi".to_owned(),
        blob: bytes::Bytes::from_static(b"blob"),
        counts: BTreeMap::from([("asked".to_owned(), 2)]),
    };
    let answer = bounded("say", EchoClient::new(channel.clone()).say(words.clone()))
        .await
        .expect("say")
        .into_inner();
    assert_eq!(answer.blob, words.blob);
    assert_eq!(
        answer.counts.into_iter().collect::<Vec<_>>(),
        [("asked".to_owned(), 2), ("said".to_owned(), 1)]
    );
    let note = Note {
        text: "kept".to_owned(),
    };
    let kept = bounded("keep", NotesClient::new(channel).keep(note.clone()))
        .await
        .expect("keep");
    // `compile_with_config`'s `Config` gave `Note` `PartialOrd`, which prost does not derive.
    let later = Note {
        text: "later".to_owned(),
    };
    assert!(kept.into_inner() < later);
}
