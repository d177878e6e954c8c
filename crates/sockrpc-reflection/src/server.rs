//! tonic-reflection's builder, by its names, so a tonic server's reflection setup carries over
//! unchanged: `server::Builder::configure().register_encoded_file_descriptor_set(SET)
//! .build_v1()?`, then `add_service`. It makes the same [`Reflection`] service
//! [`ReflectionExt::add_reflection`](crate::ReflectionExt::add_reflection) mounts, over one
//! version's descriptors: `build_v1` serves and lists reflection as
//! `grpc.reflection.v1.ServerReflection` only, `build_v1alpha` as its v1alpha name only, as
//! tonic's do (`add_reflection` mounts both and lists both).

use crate::index::{DescriptorIndex, IndexError};
use crate::service::Reflection;
use crate::v1alpha::V1Alpha;
use prost::Message;
use prost_types::FileDescriptorSet;

pub use crate::pb::server_reflection_server::{ServerReflection, ServerReflectionServer};

/// What building fails with: a registered set that does not decode (tonic's `server::Error`).
pub type Error = IndexError;

/// tonic-reflection's `Builder`: the descriptor sets to reflect, and which services to list.
#[derive(Debug, Clone)]
pub struct Builder<'b> {
    encoded: Vec<&'b [u8]>,
    /// Sets given decoded, encoded again when built.
    decoded: Vec<FileDescriptorSet>,
    include_reflection_service: bool,
    /// The services listed when any was named (`with_service_name`); otherwise every one.
    service_names: Vec<String>,
}

impl<'b> Builder<'b> {
    /// A builder with nothing registered, that reflects reflection's own descriptors.
    pub fn configure() -> Builder<'b> {
        Builder {
            encoded: Vec::new(),
            decoded: Vec::new(),
            include_reflection_service: true,
            service_names: Vec::new(),
        }
    }

    /// Registers an encoded `FileDescriptorSet`, such as a generated package's
    /// `FILE_DESCRIPTOR_SET` or what `include_file_descriptor_set!` reads.
    pub fn register_encoded_file_descriptor_set(mut self, set: &'b [u8]) -> Builder<'b> {
        self.encoded.push(set);
        self
    }

    /// Registers a decoded `FileDescriptorSet`.
    pub fn register_file_descriptor_set(mut self, set: FileDescriptorSet) -> Builder<'b> {
        self.decoded.push(set);
        self
    }

    /// Whether reflection's own descriptor is reflected (and, when every service is listed,
    /// listed): `true` by default.
    pub fn include_reflection_service(mut self, include: bool) -> Builder<'b> {
        self.include_reflection_service = include;
        self
    }

    /// Lists `name` among the services; once any is named, only those named are listed, in the
    /// order given (by default every service of the registered sets is).
    pub fn with_service_name(mut self, name: impl Into<String>) -> Builder<'b> {
        self.service_names.push(name.into());
        self
    }

    /// The service as `grpc.reflection.v1.ServerReflection`, to mount with `add_service`.
    pub fn build_v1(self) -> Result<ServerReflectionServer<Reflection>, Error> {
        let include = self.include_reflection_service;
        let reflection = self.reflection(|index| {
            if include {
                index.add_encoded_set(crate::pb::FILE_DESCRIPTOR_SET)?;
            }
            Ok(())
        })?;
        Ok(reflection.v1())
    }

    /// The service as `grpc.reflection.v1alpha.ServerReflection`, to mount with
    /// `add_service`.
    pub fn build_v1alpha(self) -> Result<V1Alpha, Error> {
        let include = self.include_reflection_service;
        let reflection = self.reflection(|index| {
            if include {
                index.add_file(crate::v1alpha::file_descriptor()?);
            }
            Ok(())
        })?;
        Ok(reflection.v1alpha())
    }

    /// The service over reflection's own descriptor (as `own` adds it) and the sets given.
    fn reflection(
        self,
        own: impl FnOnce(&mut DescriptorIndex) -> Result<(), Error>,
    ) -> Result<Reflection, Error> {
        let mut index = DescriptorIndex::new();
        own(&mut index)?;
        for set in self.encoded {
            index.add_encoded_set(set)?;
        }
        for set in self.decoded {
            index.add_encoded_set(&set.encode_to_vec())?;
        }
        let reflection = Reflection::from_index(index);
        Ok(if self.service_names.is_empty() {
            reflection
        } else {
            reflection.listing_only(self.service_names)
        })
    }
}
