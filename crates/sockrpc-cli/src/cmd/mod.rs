//! The subcommands.

pub(crate) mod bench;
pub(crate) mod call;
pub(crate) mod describe;
pub(crate) mod dynamic;
pub(crate) mod health;
pub(crate) mod interop;
pub(crate) mod list;
pub(crate) mod serve;
