//! Issue 5: streaming calls end to end over loopback TCP.
//!
//! - backpressure: a slow reader bounds how far the server's producer runs ahead, and a unary
//!   call on the same connection completes while the stream is stalled (must show 2);
//! - cancellation: dropping the client's stream cancels the server's side, and the connection
//!   carries later calls (must show 3);
//! - bidi ping-pong: 10,000 round trips on one stream, one message in flight, payloads matched
//!   (must show 4);
//! - half-close and trailers, a deadline ending both sides, a server error mid-stream;
//! - fairness: a stream that wakes itself on every poll (streams are polled on their
//!   connection's task) does not hold up a unary call on the same connection;
//! - the server's call limit: a stream past it waits for room on the client, up to its deadline.
//! - pieces: a unary answer passes a large message that goes out in pieces; a cancelled split
//!   message gives its connection credit back.
//!
//! Every loop is bounded in count and every wait in time; nothing asserts speed.

mod abandoned_credit;
mod answer_window;
mod backpressure;
mod cancel;
mod connection_window;
mod fairness;
mod limit;
mod pieces;
mod pieces_order;
mod retry;
mod service;
mod shapes;
mod support;
