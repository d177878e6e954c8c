//! sockrpc-transport
