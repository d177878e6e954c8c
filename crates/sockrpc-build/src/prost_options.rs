//! Builder options tonic-build users expect that prost-build (or the build itself) carries out
//! as they are: `BTreeMap` maps, boxed fields, the encoded `FileDescriptorSet` written to a
//! file, and whether each package carries its own as a constant.

use std::path::Path;

use crate::{Builder, ProtoPaths};

impl Builder {
    /// Generates `BTreeMap` instead of `HashMap` for the map fields matching `paths` (`"."` or
    /// `["."]` for all, `".pkg.Msg.field"` for one: [`ProtoPaths`]); see
    /// [`prost_build::Config::btree_map`].
    pub fn btree_map(mut self, paths: impl ProtoPaths) -> Self {
        self.btree_maps.extend(paths.into_paths());
        self
    }

    /// Generates the message fields matching `path` (`".pkg.Msg.field"`) as `Box<T>`, as a
    /// recursive message needs; see [`prost_build::Config::boxed`].
    pub fn boxed(mut self, path: impl AsRef<str>) -> Self {
        self.boxed.push(path.as_ref().to_owned());
        self
    }

    /// Also writes the encoded `FileDescriptorSet` of everything compiled to `path`: every
    /// file and the files it imports, with source info, as `protoc --include_imports
    /// --include_source_info -o` writes it (for `prost-reflect`, reflection services, or a later
    /// [`compile_fds`](Self::compile_fds)). Each generated package also carries its own set as
    /// `FILE_DESCRIPTOR_SET`, without source info.
    pub fn file_descriptor_set_path(mut self, path: impl AsRef<Path>) -> Self {
        self.file_descriptor_set_path = Some(path.as_ref().to_owned());
        self
    }

    /// Whether each generated package file ends with the package's `FILE_DESCRIPTOR_SET`
    /// (default `true`; `sockrpc-reflection` registers it). Turn it off to include two
    /// packages into one module, or to keep a module's own `FILE_DESCRIPTOR_SET`, as tonic
    /// users declare one with `include_file_descriptor_set!` (sockrpc has that macro too, for
    /// the file [`file_descriptor_set_path`](Self::file_descriptor_set_path) writes): either
    /// way the constant would be declared twice.
    pub fn file_descriptor_set_const(mut self, enable: bool) -> Self {
        self.descriptor_set_consts = enable;
        self
    }

    /// Hands the options prost-build carries out to `config`.
    pub(crate) fn apply_prost_options(&self, config: &mut prost_build::Config) {
        if !self.btree_maps.is_empty() {
            config.btree_map(&self.btree_maps);
        }
        for path in &self.boxed {
            config.boxed(path);
        }
    }
}
