//! tonic-build calls that sockrpc-build carries out in its own terms: `build_transport`,
//! `emit_package` (`disable_package_emission`), `protoc_arg`, `skip_protoc_run`, `proto_path`,
//! `use_arc_self`, `compile_with_config` (`compile_protos_with_config`) and
//! `compile_fds_with_config`.
//!
//! Build scripts are copied from tonic projects, and these three appear in them often enough
//! that refusing to compile them would send users hunting. Each does here what it does there,
//! as far as sockrpc has the same thing: a client without `connect`, services named on the
//! wire without their package, and the one `protoc` flag that matters to protox (none), with
//! any other refused at build time rather than ignored.

use std::io;
use std::path::Path;

use crate::Builder;

/// The `protoc` flags that have nothing to do here: protox reads proto3 `optional` without one.
const NO_OP_PROTOC_ARGS: [&str; 1] = ["--experimental_allow_proto3_optional"];

impl Builder {
    /// Whether generated clients get `connect(dst)`, which makes a [`Channel`] itself (default
    /// `true`); without it, clients are made with `new(channel)` only (tonic-build's
    /// `build_transport`).
    ///
    /// [`Channel`]: https://docs.rs/sockrpc/latest/sockrpc/struct.Channel.html
    pub fn build_transport(mut self, enable: bool) -> Self {
        self.options.no_connect = !enable;
        self
    }

    /// Whether services are named on the wire with their package, `/pkg.Service/Method`
    /// (default `true`, as gRPC names them); `false` names them `/Service/Method`, for peers
    /// generated so (tonic-build's `emit_package`). Client and server agree when both are
    /// generated with the same setting.
    pub fn emit_package(mut self, enable: bool) -> Self {
        self.options.omit_package = !enable;
        self
    }

    /// A flag tonic-build hands `protoc`. sockrpc-build runs no `protoc` (protox compiles in
    /// process): `--experimental_allow_proto3_optional` is taken and needs nothing (protox
    /// reads proto3 `optional` as it is); any other flag fails
    /// [`compile_protos`](Self::compile_protos) naming it, since it cannot be carried out.
    pub fn protoc_arg(mut self, arg: impl AsRef<str>) -> Self {
        self.protoc_args.push(arg.as_ref().to_owned());
        self
    }

    /// Where generated clients and servers find the request and response types, instead of
    /// `super` (the package's module, one up from theirs): e.g. `"crate::pb"` when the
    /// messages are included elsewhere (tonic-build's `proto_path`). Types given absolute
    /// paths (well-known types, `extern_path`) are left as they are.
    pub fn proto_path(mut self, path: impl AsRef<str>) -> Self {
        self.options.proto_path = Some(path.as_ref().to_owned());
        self
    }

    /// Whether server trait methods take `self: Arc<Self>` instead of `&self` (default `false`;
    /// tonic-build's `use_arc_self`): a handler then owns a handle on its service, which it
    /// can move into a task it spawns or a response stream it returns, without the service
    /// keeping its state behind an `Arc` of its own. The server already holds the
    /// implementation in an `Arc` (`from_arc` shares one), so each call costs an `Arc` clone,
    /// as with `&self`. The trait-object twin (`Arc<dyn Dyn<Service>>`) takes the same
    /// receiver.
    pub fn use_arc_self(mut self, enable: bool) -> Self {
        self.options.use_arc_self = enable;
        self
    }

    /// [`compile_protos`](Self::compile_protos) with prost-build's settings starting from
    /// `config` (tonic-build's `compile_with_config`): what it sets that this builder has no
    /// call for reaches prost-build. The builder's own settings are applied over it, its
    /// service generator replaces any the config had, and the output directory is the
    /// builder's ([`out_dir`](Self::out_dir), else `$OUT_DIR`), not the config's.
    ///
    /// # Errors
    ///
    /// As [`compile_protos`](Self::compile_protos).
    pub fn compile_with_config(
        self,
        config: prost_build::Config,
        protos: &[impl AsRef<Path>],
        includes: &[impl AsRef<Path>],
    ) -> io::Result<()> {
        self.compile_on(Some(config), protos, includes)
    }

    /// tonic-build's newer name for [`compile_with_config`](Self::compile_with_config), with
    /// the same arguments.
    ///
    /// # Errors
    ///
    /// As [`compile_protos`](Self::compile_protos).
    pub fn compile_protos_with_config(
        self,
        config: prost_build::Config,
        protos: &[impl AsRef<Path>],
        includes: &[impl AsRef<Path>],
    ) -> io::Result<()> {
        self.compile_with_config(config, protos, includes)
    }

    /// [`compile_fds`](Self::compile_fds) with prost-build's settings starting from `config`,
    /// as [`compile_with_config`](Self::compile_with_config) takes them (tonic-build's
    /// `compile_fds_with_config`, its arguments in that order).
    ///
    /// # Errors
    ///
    /// As [`compile_fds`](Self::compile_fds).
    pub fn compile_fds_with_config(
        self,
        config: prost_build::Config,
        fds: prost_types::FileDescriptorSet,
    ) -> io::Result<()> {
        self.compile_fds_on(Some(config), fds)
    }

    /// Names services on the wire without their package, tonic-build's older name for
    /// [`emit_package(false)`](Self::emit_package).
    pub fn disable_package_emission(self) -> Self {
        self.emit_package(false)
    }

    /// Reads the descriptor set from [`file_descriptor_set_path`](Self::file_descriptor_set_path)
    /// instead of compiling the `.proto` files (tonic-build's and prost-build's
    /// `skip_protoc_run`, for a set made beforehand, e.g. by `buf build`): `compile_protos`
    /// then generates every file of that set, as [`compile_fds`](Self::compile_fds) does, and
    /// its `.proto` arguments are not read. The set file is read, never written.
    pub fn skip_protoc_run(mut self) -> Self {
        self.skip_protoc_run = true;
        self
    }

    /// Fails on a `protoc` flag nothing here carries out.
    pub(crate) fn check_protoc_args(&self) -> io::Result<()> {
        match self
            .protoc_args
            .iter()
            .find(|arg| !NO_OP_PROTOC_ARGS.contains(&arg.as_str()))
        {
            None => Ok(()),
            Some(arg) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "protoc_arg({arg:?}): sockrpc-build runs no protoc (protox compiles the \
                     files in process), so only {NO_OP_PROTOC_ARGS:?} is taken"
                ),
            )),
        }
    }
}
