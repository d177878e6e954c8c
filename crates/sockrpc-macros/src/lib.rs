//! Attribute macros re-exported by `sockrpc`.
//!
//! Why a crate of its own: attribute macros must live in a `proc-macro` crate. The one macro
//! here exists so that code written for tonic compiles unchanged: tonic's generated server
//! traits are `#[async_trait]` traits, so every tonic service implementation carries
//! `#[tonic::async_trait]` on its `impl` block, and a port keeps it as `#[sockrpc::async_trait]`.

use proc_macro::TokenStream;

/// tonic's `#[async_trait]`, for an `impl` of a trait `sockrpc-build` generated: it leaves the
/// item as it is.
///
/// sockrpc's generated server traits declare their methods as returning
/// `impl Future<Output = ..> + Send` (no box per call), which a plain `async fn` in the `impl`
/// already implements; the `async_trait` crate's rewrite (boxed futures with lifetimes of their
/// own) would not match them. So this attribute does nothing, and an implementation ported
/// from tonic with `#[sockrpc::async_trait]` on it compiles as written.
///
/// It is not the `async_trait` crate: on a trait of your own it does not make the trait
/// object-safe nor its futures `Send`; use that crate there.
#[proc_macro_attribute]
pub fn async_trait(_attr: TokenStream, item: TokenStream) -> TokenStream {
    item
}
