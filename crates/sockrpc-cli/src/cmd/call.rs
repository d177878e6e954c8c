//! `sockrpc call ADDR pkg.Svc/Method -d '{json}'`: one call of any shape to any service, the
//! request as JSON and every answer as one line of JSON on stdout, the status on stderr, the
//! status code as the exit code (see [`exit`](super::dynamic::exit)).
//!
//! Requests: `-d TEXT`, `-d @FILE` or `-d @-` (stdin). A unary or server-streaming method takes
//! one JSON object (`{}` without `-d`, and an empty request for empty input, as grpcurl sends);
//! a client- or bidirectional-streaming method takes any number, one after another in any
//! layout (stdin without `-d`), each sent as soon as it is read, so a bidirectional call can be
//! driven line by line. `-d @` reads stdin too, as in grpcurl.

use super::dynamic::conn::{within, ConnArgs};
use super::dynamic::exit::{finish, Failure};
use super::dynamic::invoke::{next_message, Outgoing};
use super::dynamic::{any, json, source};
use bytes::Bytes;
use clap::Args;
use prost_reflect::{MessageDescriptor, MethodDescriptor};
use sockrpc::{Channel, Status};
use std::io::BufRead;
use std::sync::{Arc, Mutex};

/// Largest request text `-d @FILE` or one request on stdin may hold (sockrpc's default message
/// limit): checked before it is read into memory.
const MAX_INPUT: u64 = 4 * 1024 * 1024;

/// `sockrpc call` flags.
#[derive(Debug, Args)]
pub(crate) struct CallArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// The method: package.Service/Method.
    #[arg(value_name = "METHOD")]
    method: String,
    /// The request as JSON; `@FILE` reads a file, `@-` (or `@`) stdin. Streaming requests: JSON
    /// objects one after another [default: `{}`, or stdin for client and bidirectional
    /// streams]. A value may start with `-` (`-d -5` for an `Int32Value`).
    #[arg(
        short = 'd',
        long = "data",
        value_name = "JSON|@FILE|@-",
        allow_hyphen_values = true
    )]
    data: Option<String>,
    /// Also print the answer's headers and trailers, and an error status's details and
    /// metadata, to stderr (`-bin` values as base64), as grpcurl's `-v` does.
    #[arg(short = 'v', long)]
    verbose: bool,
}

/// Where the requests come from.
enum Input {
    /// All of them, encoded before the call.
    Ready(Vec<Bytes>),
    /// Stdin, line by line, as the call runs.
    Stdin,
}

/// Reads `-d @FILE` (bounded) or takes `-d TEXT`; `None` for stdin.
pub(crate) fn read_data(data: Option<&str>) -> Result<Option<String>, Failure> {
    match data {
        None | Some("@-" | "@") => Ok(None),
        Some(text) => match text.strip_prefix('@') {
            Some(path) => {
                let size = std::fs::metadata(path)
                    .map_err(|err| Failure::Input(format!("-d @{path}: {err}")))?
                    .len();
                if size > MAX_INPUT {
                    return Err(Failure::Input(format!(
                        "-d @{path}: {size} bytes is over the {MAX_INPUT}-byte limit"
                    )));
                }
                std::fs::read_to_string(path)
                    .map(Some)
                    .map_err(|err| Failure::Input(format!("-d @{path}: {err}")))
            }
            None => Ok(Some(text.to_owned())),
        },
    }
}

/// Reads all of stdin, bounded.
fn read_stdin() -> Result<String, Failure> {
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut std::io::Read::take(std::io::stdin().lock(), MAX_INPUT + 1),
        &mut text,
    )
    .map_err(|err| Failure::Input(format!("cannot read stdin: {err}")))?;
    if text.len() as u64 > MAX_INPUT {
        return Err(Failure::Input(format!(
            "stdin holds more than {MAX_INPUT} bytes"
        )));
    }
    Ok(text)
}

/// The one request of a unary or server-streaming method.
pub(crate) fn single_request(
    desc: &MessageDescriptor,
    data: Option<&str>,
) -> Result<Bytes, Failure> {
    single_from(desc, &request_text(data)?)
}

/// The request text of a unary or server-streaming method: `-d`'s, the file's, stdin's, or
/// `{}` without `-d`.
fn request_text(data: Option<&str>) -> Result<String, Failure> {
    Ok(match (data, read_data(data)?) {
        (_, Some(text)) => text,
        (Some("@-" | "@"), None) => read_stdin()?,
        (_, None) => "{}".to_owned(),
    })
}

/// `desc`, or through `reflection` the same type in a pool that also describes the `Any` types
/// `text` names (`"@type"`) outside the method's files.
async fn input_for(
    reflection: Option<&Channel>,
    desc: MessageDescriptor,
    text: &str,
) -> Result<MessageDescriptor, Failure> {
    match reflection {
        Some(channel) if text.contains("@type") => Ok(any::for_request(channel, &desc, text)
            .await?
            .unwrap_or(desc)),
        _ => Ok(desc),
    }
}

/// The one request `text` holds, as a `desc` message.
fn single_from(desc: &MessageDescriptor, text: &str) -> Result<Bytes, Failure> {
    let mut messages = json::encode_all(desc, text)?;
    match messages.len() {
        1 => Ok(messages.remove(0)),
        // No input at all: an empty request, as grpcurl sends one.
        0 => Ok(Bytes::new()),
        n => Err(Failure::Input(format!(
            "{n} requests given, but this method takes one"
        ))),
    }
}

/// Runs `sockrpc call`.
pub(crate) fn run(args: CallArgs) -> std::process::ExitCode {
    finish(call(args))
}

async fn call(args: CallArgs) -> Result<(), Failure> {
    // --timeout bounds the command: connecting and reflection count against it.
    let deadline = args.conn.timeout.map(|t| tokio::time::Instant::now() + t);
    let metadata = args.conn.metadata()?;
    let found = async {
        // With --proto, bad input is found before connecting.
        if args.conn.proto.is_empty() {
            let channel = args.conn.connect().await?;
            let method = source::resolve_method(&args.conn, &channel, &args.method).await?;
            Ok((channel, method))
        } else {
            let pool = source::compile(&args.conn.proto, &args.conn.import_path)?;
            let (service, name) = source::split_method(&args.method)?;
            let method = source::find_method(&pool, &service, &name)?;
            // Parse the requests before connecting too.
            if !method.is_client_streaming() {
                single_request(&method.input(), args.data.as_deref())?;
            }
            Ok((args.conn.connect().await?, method))
        }
    };
    let (channel, method) = within(args.conn.timeout, found).await?;
    let outgoing = Outgoing {
        path: format!("/{}/{}", method.parent_service().full_name(), method.name()),
        metadata,
        // What is left (none left: the call fails DEADLINE_EXCEEDED unsent).
        timeout: deadline.map(|d| d.saturating_duration_since(tokio::time::Instant::now())),
        streaming_response: method.is_server_streaming(),
    };
    // Through reflection, `Any` types outside the method's files are asked for as needed.
    let reflection = args.conn.proto.is_empty().then_some(&channel);
    let result = send(
        &channel,
        reflection,
        &method,
        &outgoing,
        args.data.as_deref(),
        args.verbose,
    )
    .await;
    if result.is_ok() {
        crate::out::errln!("status OK (0)");
    }
    result
}

async fn send(
    channel: &Channel,
    reflection: Option<&Channel>,
    method: &MethodDescriptor,
    outgoing: &Outgoing,
    data: Option<&str>,
    verbose: bool,
) -> Result<(), Failure> {
    let output = method.output();
    let cut = Arc::new(Mutex::new(None::<String>));
    let response = if method.is_client_streaming() {
        let input = match read_data(data)? {
            Some(text) => {
                let desc = input_for(reflection, method.input(), &text).await?;
                Input::Ready(json::encode_all(&desc, &text)?)
            }
            None => Input::Stdin,
        };
        match input {
            Input::Ready(messages) => {
                let stream = futures_util::stream::iter(messages.into_iter().map(Ok));
                outgoing.stream(channel, stream).await
            }
            Input::Stdin => {
                let stream = stdin_requests(method.input(), Arc::clone(&cut));
                outgoing.stream(channel, stream).await
            }
        }
    } else {
        let text = request_text(data)?;
        let desc = input_for(reflection, method.input(), &text).await?;
        outgoing.once(channel, single_from(&desc, &text)?).await
    };
    let result = print_answers(response, output, reflection, verbose).await;
    // A bad stdin line cancels the call: that, not the status it caused, is the error.
    let cut = cut.lock().map(|mut slot| slot.take()).unwrap_or_default();
    if let Some(message) = cut {
        return Err(Failure::Input(message));
    }
    result
}

/// Prints every answer as a JSON line as it arrives; `verbose`: the headers before them and the
/// trailers after, or an error's details and metadata, on stderr. An answer holding an `Any`
/// whose type `output`'s pool lacks has the type asked of `reflection`, when given.
async fn print_answers(
    response: Result<sockrpc::Response<sockrpc::Body>, Status>,
    mut output: MessageDescriptor,
    reflection: Option<&Channel>,
    verbose: bool,
) -> Result<(), Failure> {
    let response = response.inspect_err(|status| print_status(status, verbose))?;
    let (metadata, mut body, trailers) = response.into_parts();
    if verbose {
        print_metadata("response headers", &metadata);
    }
    while let Some(message) = next_message(&mut body).await {
        let message = message.inspect_err(|status| print_status(status, verbose))?;
        // An answer that does not decode as the method's output is the server's fault, as a
        // generated client reports it: INTERNAL, not the usage error (64) of bad input.
        let line = match (json::decode(&output, message.clone()), reflection) {
            (Ok(line), _) => line,
            (Err(error), Some(channel)) => match any::for_answer(channel, &output, &message).await?
            {
                Some(wider) => {
                    output = wider;
                    json::decode(&output, message).map_err(Status::internal)?
                }
                None => return Err(Status::internal(error).into()),
            },
            (Err(error), None) => return Err(Status::internal(error).into()),
        };
        // A reader that left (`| head -1`) ends the command quietly with 141, as every command.
        crate::out::outln!("{line}");
    }
    if verbose {
        let mut all = trailers;
        // A streamed answer's trailers come at its end, inside the body.
        if let Some(late) = body.trailers() {
            all.extend(late.clone());
        }
        print_metadata("response trailers", &all);
    }
    Ok(())
}

/// An error status's details and metadata on stderr, when `verbose` (its code and message are
/// printed by every failure's report).
fn print_status(status: &Status, verbose: bool) {
    if !verbose {
        return;
    }
    if !status.details().is_empty() {
        crate::out::errln!("status details (base64): {}", base64(status.details()));
    }
    print_metadata("status metadata", status.metadata());
}

/// `title:` then one `key: value` line per entry on stderr (`-bin` values as base64).
fn print_metadata(title: &str, metadata: &sockrpc::MetadataMap) {
    crate::out::errln!("{title}: {}", metadata.len());
    for (key, value) in metadata.iter() {
        if key.ends_with("-bin") {
            crate::out::errln!("  {key}: {}", base64(value));
        } else {
            crate::out::errln!("  {key}: {}", String::from_utf8_lossy(value));
        }
    }
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The JSON values on stdin as encoded requests, each sent as soon as the line that ends it is
/// read (so a bidirectional call can be driven line by line); a value may span lines, and a
/// line may hold several, as grpcurl reads them. Lines are read on a thread as the call
/// consumes them. A value that is not a valid request ends the stream with an error (the call
/// is cancelled) and is kept in `cut` for the report, naming the line where it went wrong.
fn stdin_requests(
    desc: MessageDescriptor,
    cut: Arc<Mutex<Option<String>>>,
) -> impl futures_util::Stream<Item = Result<Bytes, Status>> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Value, String>>(16);
    std::thread::spawn(move || read_values(&tx));
    let state = (rx, desc, cut);
    futures_util::stream::unfold(state, |(mut rx, desc, cut)| async move {
        let encoded = rx.recv().await?.and_then(|read| {
            json::encode_at(&desc, &read.json, &read.text, read.start)
                .map_err(|err| format!("stdin line {}: {err}", read.line))
        });
        match encoded {
            Ok(bytes) => Some((Ok(bytes), (rx, desc, cut))),
            Err(message) => {
                if let Ok(mut slot) = cut.lock() {
                    *slot = Some(message.clone());
                }
                rx.close();
                Some((Err(Status::cancelled(message)), (rx, desc, cut)))
            }
        }
    })
}

/// One JSON value read from stdin.
struct Value {
    json: serde_json::Value,
    /// Its text, and where that starts on stdin: an error in it is said where it stands.
    text: String,
    start: json::Start,
    /// The line it ends on.
    line: usize,
}

/// Reads stdin line by line into `tx` as JSON values, until its end, an error, or nobody
/// listening. What is pending (a value not yet ended) is bounded by [`MAX_INPUT`], as each
/// line read is.
fn read_values(tx: &tokio::sync::mpsc::Sender<Result<Value, String>>) {
    let mut stdin = std::io::stdin().lock();
    let mut pending = String::new();
    // Where `pending` starts on stdin.
    let mut pending_start = json::Start::TOP;
    let mut number = 0usize;
    let mut depth = Depth::default();
    loop {
        let room = MAX_INPUT + 1 - pending.len() as u64;
        let before = pending.len();
        let read = std::io::Read::take(&mut stdin, room).read_line(&mut pending);
        number += 1;
        let failed = match read {
            Ok(0) if pending.trim().is_empty() => return,
            Ok(0) => Some(format!(
                "stdin line {number}: a JSON value is cut short by the end of input"
            )),
            Ok(_) if pending.len() as u64 > MAX_INPUT => Some(format!(
                "stdin line {number}: a request holds more than {MAX_INPUT} bytes"
            )),
            Ok(_) => None,
            Err(err) => Some(format!("cannot read stdin: {err}")),
        };
        if let Some(message) = failed {
            let _ = tx.blocking_send(Err(message));
            return;
        }
        // Parsed only once every bracket opened is closed: reading a long value line by line
        // costs its length once, not once per line.
        if !depth.feed(&pending[before..]) {
            continue;
        }
        let mut values =
            serde_json::Deserializer::from_str(&pending).into_iter::<serde_json::Value>();
        let mut taken = 0;
        loop {
            match values.next() {
                None => break,
                Some(Ok(json)) => {
                    let end = values.byte_offset();
                    let value = Value {
                        json,
                        text: pending[taken..end].to_owned(),
                        start: pending_start.after(&pending[..taken]),
                        line: number,
                    };
                    taken = end;
                    if tx.blocking_send(Ok(value)).is_err() {
                        return;
                    }
                }
                // The value goes on in the next line.
                Some(Err(err)) if err.is_eof() => break,
                Some(Err(err)) => {
                    let _ = tx.blocking_send(Err(format!("stdin line {number}: bad JSON: {err}")));
                    return;
                }
            }
        }
        pending_start = pending_start.after(&pending[..taken]);
        pending.drain(..taken);
    }
}

/// How deep in `{`/`[` the text fed so far stands, outside strings: a value that opened
/// brackets cannot have ended before they close. A line ends any string (JSON strings hold no
/// raw newline: the parser reports that one).
#[derive(Debug, Default)]
struct Depth {
    open: usize,
    in_string: bool,
    escaped: bool,
}

impl Depth {
    /// Takes in `line`; whether every bracket opened so far is closed.
    fn feed(&mut self, line: &str) -> bool {
        for byte in line.bytes() {
            match (self.in_string, self.escaped, byte) {
                (true, true, _) => self.escaped = false,
                (true, false, b'\\') => self.escaped = true,
                (true, false, b'"') => self.in_string = false,
                (true, false, _) => {}
                (false, _, b'"') => self.in_string = true,
                (false, _, b'{' | b'[') => self.open += 1,
                (false, _, b'}' | b']') => self.open = self.open.saturating_sub(1),
                (false, _, _) => {}
            }
        }
        self.in_string = false;
        self.escaped = false;
        self.open == 0
    }
}

#[cfg(test)]
mod tests {
    use super::Depth;

    #[test]
    fn depth_follows_brackets_outside_strings_across_lines() {
        let mut depth = Depth::default();
        assert!(!depth.feed("{\"a\": [1, {\n"));
        assert!(
            !depth.feed("  \"b}]\": \"\\\"}\"\n"),
            "brackets in strings do not count"
        );
        assert!(!depth.feed("}]\n"));
        assert!(depth.feed("}\n"));
        assert!(
            depth.feed("not json\n"),
            "no bracket: parsed, so its error is said"
        );
    }
}
