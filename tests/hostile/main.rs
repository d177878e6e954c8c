//! Issue 2, must show 5 and 6: hostile bytes from raw `TcpStream`s close only their own
//! connection (with a GOAWAY reason where one is sent), never panic the server, never make it
//! allocate what a peer merely announces, while a well-behaved generated client keeps being
//! served; and a client whose server is gone fails with `Unavailable`, never hangs.

mod answer_probe;
mod answer_window_abandoned;
mod answer_window_ignored;
mod answer_window_skipped;
mod answer_window_turns;
mod answer_window_wakes;
mod compressed_retried;
mod compressed_running;
mod control_limit;
mod edges;
mod ended_sender_turns;
mod fold;
mod folded_request;
mod goaway_sequence;
mod late_unary_credit;
mod linger;
mod memory;
mod metadata_limit;
mod panic_log;
mod parked_handlers;
mod parked_wakes;
mod pending_memory;
mod pieces;
mod pieces_abandon_answer;
mod pieces_cancel;
mod pieces_cross;
mod pieces_rate;
mod pieces_wait;
mod pinned_streams;
mod probe;
mod raw;
mod reset;
mod sender_wakes;
mod server_gone;
mod server_probe;
mod server_probe_io;
mod server_probe_meta;
mod settings_again;
mod silent;
mod stream_after_end;
mod stream_memory;
mod stream_reset;
mod stream_wakes;
mod streaming_metadata;
mod streaming_ready_metadata;
mod support;
mod unread;
mod unread_answers;
mod unread_waiting_answers;
mod window_credit;
mod window_ignored;
mod wire;
