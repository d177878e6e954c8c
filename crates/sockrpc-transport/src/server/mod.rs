//! The server end of a connection: accept sockets, run one task per connection, hand each call
//! to the layer above through [`Dispatch`](crate::Dispatch).
//!
//! ```text
//!  Listener ──accept──▶ Connection task (conn.rs) ──IncomingCall──▶ Dispatch (service layer)
//!     │ at the cap: accept, GOAWAY, close          ◀── answer ─────┘
//! ```
//!
//! The service crate's `Server` builds the dispatcher (router + middleware) and calls
//! [`serve`]; everything about sockets, frames, limits and timeouts lives here.

mod aborted;
mod accepted;
mod age;
mod announced;
mod answer_window;
mod call;
pub(crate) mod config;
mod conn;
mod deadlines;
mod evict;
mod frames;
mod handshakes;
mod held;
mod linger;
mod listener;
mod local;
mod open;
mod ping;
mod pump;
mod reissued;
mod respond;
mod room;
mod timers;
mod uncounted;

pub use config::ServerConfig;
pub use listener::{serve, serve_connection, Accept, Accepted, AcceptedIo, BoxIo, Io};
pub use ping::PingPolicy;
pub use respond::CallReceiver;
