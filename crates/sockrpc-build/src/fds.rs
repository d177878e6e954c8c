//! Code generated from a descriptor set made beforehand, not from `.proto` files:
//! `compile_fds` (a set in hand) and `skip_protoc_run` (a set in a file).
//!
//! The set may come from `protoc`, `buf build` or an earlier build's
//! [`file_descriptor_set_path`](crate::Builder::file_descriptor_set_path); nothing here parses
//! `.proto` text, so what the set lacks (source info, imported files) the output lacks too.

use std::io;

use crate::{Builder, Encoded};

impl Builder {
    /// Generates the Rust code for `fds`, a descriptor set built already (by `protoc
    /// --include_imports --include_source_info -o`, by protox, or read back from a
    /// [`file_descriptor_set_path`](Self::file_descriptor_set_path)), without reading any
    /// `.proto` file: everything [`compile_protos`](Self::compile_protos) writes, for every file
    /// in the set. Comments become docs only if the set carries source info; messages of
    /// imported files are generated only if the set holds those files. The descriptor sets it
    /// writes are encoded from `fds`, so options `prost_types` cannot hold (extension options
    /// such as `google.api.http`) are not in them, as with tonic's `compile_fds`.
    ///
    /// # Errors
    ///
    /// A file using protobuf editions, generated names that collide, and failures writing the
    /// output.
    pub fn compile_fds(self, fds: prost_types::FileDescriptorSet) -> io::Result<()> {
        self.compile_fds_on(None, fds)
    }

    /// [`compile_fds`](Self::compile_fds), prost-build's settings from `base` when given.
    pub(crate) fn compile_fds_on(
        self,
        base: Option<prost_build::Config>,
        fds: prost_types::FileDescriptorSet,
    ) -> io::Result<()> {
        if let Some(file) = fds.file.iter().find(|file| file.syntax() == "editions") {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{}: protobuf editions are not supported (sockrpc-build generates proto2 \
                     and proto3 files only)",
                    file.name()
                ),
            ));
        }
        self.generate(fds, Encoded::default(), base)
    }

    /// `skip_protoc_run`'s compile: the set at `file_descriptor_set_path`, generated.
    pub(crate) fn compile_set_file(mut self, base: Option<prost_build::Config>) -> io::Result<()> {
        let Some(path) = self.file_descriptor_set_path.take() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "skip_protoc_run() reads the descriptor set at file_descriptor_set_path(..), \
                 which is not set",
            ));
        };
        let bytes = std::fs::read(&path).map_err(|err| {
            io::Error::new(
                err.kind(),
                format!("skip_protoc_run(): reading {}: {err}", path.display()),
            )
        })?;
        let fds = prost::Message::decode(bytes.as_slice()).map_err(|err| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "skip_protoc_run(): {} is not a descriptor set: {err}",
                    path.display()
                ),
            )
        })?;
        if self.emit_rerun_if_changed {
            println!("cargo:rerun-if-changed={}", path.display());
        }
        self.compile_fds_on(base, fds)
    }
}
