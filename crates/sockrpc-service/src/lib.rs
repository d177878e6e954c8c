//! sockrpc-service
