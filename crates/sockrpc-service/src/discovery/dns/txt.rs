//! A service config in DNS (gRFC A2, as grpc-go's `dns` resolver reads it): the TXT record
//! `_grpc_config.NAME`, whose text (a record's strings joined) starts `grpc_config=` and goes
//! on with a JSON list of choices; the first choice that matches this client gives the config.
//!
//! ```text
//!  _grpc_config.svc.example. TXT "grpc_config=[{\"clientLanguage\": [\"rust\"],"
//!                                " \"percentage\": 20, \"serviceConfig\": {...}}, ...]"
//! ```
//!
//! A choice matches when each of its criteria does, as grpc-go's `canaryingSC` reads them (one
//! absent or `null` matches all; an empty list matches no client, as grpc-go's and C-core's):
//! `clientLanguage` names `rust` or `sockrpc` (case-insensitively, as A2 says; grpc-go matches
//! `go`), `clientHostname` names this machine, and `percentage` is at least this client's draw
//! (1–100, drawn once per discovery, so one client does not flap between two choices; grpc-go
//! draws again at each lookup): any whole number, so one over 100 always matches and one under 1
//! never does, as in grpc-go. A matching choice without `serviceConfig` is passed over, as
//! grpc-go does. Unknown fields are ignored, as grpc-go and C-core do (A2 would refuse them).
//! Keys are matched in any case, as grpc-go's JSON decoder matches them: its own spelling is
//! `clientHostName`, and a record written for it must not apply to every host here; a key given
//! twice (in one case or two) takes the value written last, as Go's decoder does. No record, no
//! `grpc_config=` record, or no matching choice: no config (the user's default applies). A list
//! that is not JSON, or a criterion of the wrong type (a `percentage` that is not a whole
//! number), is malformed: the discovery keeps the last good config and says why, once.

use super::connected::DnsResolver;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::ResolveError;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::marker::PhantomData;

/// The prefix of the record that holds the config.
const ATTRIBUTE: &str = "grpc_config=";

/// The languages a `clientLanguage` list may name for this client.
const LANGUAGES: [&str; 2] = ["rust", "sockrpc"];

/// What this client is, for choosing.
#[derive(Debug, Clone)]
pub(super) struct Client {
    /// The machine's host name, when known (a choice naming hosts is passed over without it).
    pub(super) hostname: Option<String>,
    /// This client's draw, 1–100: a choice with `percentage` ≥ draw applies.
    pub(super) draw: u32,
}

impl Client {
    /// This machine, with a draw from the clock (no random crate for one number).
    pub(super) fn this_machine() -> Client {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        Client {
            hostname,
            draw: nanos % 100 + 1,
        }
    }
}

/// What the TXT lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Txt {
    /// The chosen service config's JSON, or `None`: there is none for this client.
    Config(Option<String>),
    /// A `grpc_config=` record that is not a valid choice list: the last config stands.
    Malformed(String),
    /// The lookup failed (SERVFAIL, a timeout): the last config stands.
    Failed(String),
}

/// Looks up the service config in DNS, when asked for, and publishes it (or keeps the last
/// one: see [`super::DnsDiscovery::service_config`]).
pub(super) async fn follow(
    config: &super::DnsDiscovery,
    resolver: &DnsResolver,
    logged: &mut Option<String>,
) {
    let (Some((feed, client)), super::Query::Ip { name, .. }) =
        (&config.service_config, &config.query)
    else {
        return;
    };
    if super::literal(name).is_some() {
        return;
    }
    match lookup(resolver, name, client).await {
        Txt::Config(chosen) => {
            feed.publish(chosen.as_deref());
            *logged = None;
        }
        Txt::Malformed(why) => {
            if logged.as_ref() != Some(&why) {
                tracing::warn!(%why, "DNS service config is malformed; keeping the last one");
                *logged = Some(why);
            }
        }
        Txt::Failed(why) => {
            tracing::debug!(%why, "DNS service config lookup failed; keeping the last one");
        }
    }
}

/// Looks up `_grpc_config.NAME` and chooses from its config.
pub(super) async fn lookup(resolver: &DnsResolver, name: &str, client: &Client) -> Txt {
    let name = format!("{ATTRIBUTE_NAME}{name}");
    match resolver.txt_lookup(name.as_str()).await {
        Ok(found) => {
            let texts: Vec<Vec<u8>> = found
                .as_lookup()
                .records()
                .iter()
                .filter_map(|r| match r.data() {
                    RData::TXT(txt) => Some(txt.txt_data().concat()),
                    _ => None,
                })
                .collect();
            match choose_from_records(&texts, client) {
                Ok(config) => Txt::Config(config),
                Err(why) => Txt::Malformed(format!("TXT {name}: {why}")),
            }
        }
        Err(error) if absent(&error) => Txt::Config(None),
        Err(error) => Txt::Failed(format!("TXT {name}: {error}")),
    }
}

/// The owner name's prefix.
const ATTRIBUTE_NAME: &str = "_grpc_config.";

/// NXDOMAIN, or NOERROR with no TXT record: no config.
fn absent(error: &ResolveError) -> bool {
    use hickory_resolver::proto::op::ResponseCode;
    use hickory_resolver::proto::ProtoErrorKind;
    matches!(
        error.proto().map(|p| p.kind()),
        Some(ProtoErrorKind::NoRecordsFound {
            response_code: ResponseCode::NoError | ResponseCode::NXDomain,
            ..
        })
    )
}

/// The config for `client` from a name's TXT records (each one's strings joined): the one
/// record starting `grpc_config=` (others are not ours), its choices read.
pub(super) fn choose_from_records(
    texts: &[Vec<u8>],
    client: &Client,
) -> Result<Option<String>, String> {
    let ours: Vec<&[u8]> = texts
        .iter()
        .filter_map(|t| t.strip_prefix(ATTRIBUTE.as_bytes()))
        .collect();
    match ours.as_slice() {
        [] => Ok(None),
        [one] => {
            let text = std::str::from_utf8(one).map_err(|_| "the config is not UTF-8")?;
            choose(text, client)
        }
        more => Err(format!(
            "{} records start with {ATTRIBUTE}, one may",
            more.len()
        )),
    }
}

/// The first of the choices (`json`, a JSON list) that matches `client`: its `serviceConfig`.
pub(super) fn choose(json: &str, client: &Client) -> Result<Option<String>, String> {
    let list: Shape<Shape<IgnoredAny>> =
        serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
    let Shape::List(items) = list else {
        return Err("not a JSON list of choices".to_owned());
    };
    // Every choice is checked, also those after the one taken: a typo in a later choice is
    // found before the choices in front of it are removed.
    let mut chosen = None;
    for (n, item) in items.iter().enumerate() {
        let Shape::Object(entries) = item else {
            return Err(format!("choice {n}: not a JSON object"));
        };
        let choice = Choice(entries);
        let matched = matches(&choice, client).map_err(|why| format!("choice {n}: {why}"))?;
        if chosen.is_none() && matched {
            chosen = choice.get("serviceConfig").map(Value::to_string);
        }
    }
    Ok(chosen)
}

/// Whether `choice` applies to `client`; `Err` when a criterion is malformed.
fn matches(choice: &Choice<'_>, client: &Client) -> Result<bool, String> {
    let languages = strings(choice.get("clientLanguage"), "clientLanguage")?;
    let hosts = strings(choice.get("clientHostname"), "clientHostname")?;
    let percentage = match choice.get("percentage") {
        None | Some(Value::Null) => None,
        // Any whole number, as grpc-go's `*int` takes it: over 100 always, under 1 never.
        Some(value) => match value.as_i64() {
            Some(p) => Some(p),
            None => return Err(format!("percentage {value} is not a whole number")),
        },
    };
    match choice.get("serviceConfig") {
        None | Some(Value::Null | Value::Object(_)) => {}
        Some(_) => return Err("serviceConfig is not a JSON object".to_owned()),
    }
    let language = languages.is_none_or(|languages| {
        languages
            .iter()
            .any(|l| LANGUAGES.iter().any(|ours| l.eq_ignore_ascii_case(ours)))
    });
    let host = hosts.is_none_or(|hosts| {
        client
            .hostname
            .as_ref()
            .is_some_and(|h| hosts.iter().any(|l| l == h))
    });
    let share = percentage.is_none_or(|p| i64::from(client.draw) <= p);
    Ok(language && host && share)
}

/// A JSON value read for its shape: a list of `T`, an object's entries in the order the text
/// wrote them (a key given twice kept twice, where `serde_json`'s map sorts its keys and keeps
/// one value of each), or anything else (skipped whole). The list of choices is a
/// `Shape<Shape<IgnoredAny>>`: its items are choices when they are objects, and what else they
/// are is told with their place in the list, which serde's own error would not say.
enum Shape<T> {
    List(Vec<T>),
    Object(Vec<(String, Value)>),
    Other,
}

/// A choice's entries, in the order written, to which Go's decoding rules apply ([`get`]).
///
/// [`get`]: Choice::get
struct Choice<'a>(&'a [(String, Value)]);

impl<'a> Choice<'a> {
    /// The value of the field `name`, its key in any case: grpc-go reads the choices with Go's
    /// JSON decoder, which matches keys regardless of case, so a record written for it with
    /// `clientHostName` (grpc-go's own spelling) limits the choice to those hosts there. Read
    /// strictly, the key would be an unknown field, ignored, and the choice would apply to every
    /// host. A key given twice (in two cases or one) gives the value written last, as Go's
    /// decoder keeps it. `null` reads as absent, as Go's decoder leaves a pointer nil.
    fn get(&self, name: &str) -> Option<&'a Value> {
        self.0
            .iter()
            .rev()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
            .filter(|value| !value.is_null())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Shape<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Shape<T>, D::Error> {
        deserializer.deserialize_any(ShapeVisitor(PhantomData))
    }
}

/// Reads a [`Shape`]: a list item by item ([`SeqAccess`]), an object entry by entry, in order
/// ([`MapAccess`]), any other value as [`Shape::Other`].
struct ShapeVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ShapeVisitor<T> {
    type Value = Shape<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape<T>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Shape::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape<T>, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry::<String, Value>()? {
            entries.push(entry);
        }
        Ok(Shape::Object(entries))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Shape<T>, E> {
        Ok(Shape::Other)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Shape<T>, E> {
        Ok(Shape::Other)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Shape<T>, E> {
        Ok(Shape::Other)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Shape<T>, E> {
        Ok(Shape::Other)
    }

    fn visit_str<E>(self, _: &str) -> Result<Shape<T>, E> {
        Ok(Shape::Other)
    }

    fn visit_unit<E>(self) -> Result<Shape<T>, E> {
        Ok(Shape::Other)
    }
}

/// A list of strings; `None` when absent (or `null`), which matches every client, where an
/// empty list matches none.
fn strings<'a>(value: Option<&'a Value>, field: &str) -> Result<Option<Vec<&'a str>>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .ok_or_else(|| format!("{field} lists a non-string"))
            })
            .collect::<Result<_, _>>()
            .map(Some),
        Some(_) => Err(format!("{field} is not a list")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(draw: u32) -> Client {
        Client {
            hostname: Some("box1".to_owned()),
            draw,
        }
    }

    #[test]
    fn the_first_matching_choice_wins_and_other_languages_are_skipped() {
        let json = r#"[{"clientLanguage": ["go", "java"], "serviceConfig": {"a": 1}},
                       {"clientLanguage": ["RUST"], "serviceConfig": {"b": 2}},
                       {"serviceConfig": {"c": 3}}]"#;
        assert_eq!(choose(json, &client(50)), Ok(Some(r#"{"b":2}"#.to_owned())));
        let json = r#"[{"clientLanguage": ["go"], "serviceConfig": {"a": 1}},
                       {"clientLanguage": ["Sockrpc"], "serviceConfig": {"b": 2}}]"#;
        assert_eq!(choose(json, &client(50)), Ok(Some(r#"{"b":2}"#.to_owned())));
        let json = r#"[{"clientLanguage": ["go"], "serviceConfig": {"a": 1}}]"#;
        assert_eq!(choose(json, &client(50)), Ok(None));
    }

    #[test]
    fn percentage_and_hostname_select() {
        let json = r#"[{"percentage": 30, "serviceConfig": {"canary": 1}},
                       {"clientHostname": ["box2"], "serviceConfig": {"box2": 1}},
                       {"clientHostname": ["box1"], "serviceConfig": {"box1": 1}}]"#;
        assert_eq!(
            choose(json, &client(30)),
            Ok(Some(r#"{"canary":1}"#.to_owned()))
        );
        assert_eq!(
            choose(json, &client(31)),
            Ok(Some(r#"{"box1":1}"#.to_owned()))
        );
        let nameless = Client {
            hostname: None,
            draw: 100,
        };
        assert_eq!(choose(json, &nameless), Ok(None));
        // 0 %: never; 100 %: always.
        let json = r#"[{"percentage": 0, "serviceConfig": {"x": 1}}]"#;
        assert_eq!(choose(json, &client(1)), Ok(None));
        let json = r#"[{"percentage": 100, "serviceConfig": {"x": 1}}]"#;
        assert_eq!(
            choose(json, &client(100)),
            Ok(Some(r#"{"x":1}"#.to_owned()))
        );
    }

    #[test]
    fn keys_are_read_in_any_case_as_grpc_go_reads_them() {
        // grpc-go's spelling of the host criterion: it limits the choice to `box2`.
        let json = r#"[{"clientHostName": ["box2"], "serviceConfig": {"box2": 1}},
                       {"CLIENTLANGUAGE": ["go"], "ServiceConfig": {"go": 1}},
                       {"Percentage": 0, "serviceConfig": {"never": 1}},
                       {"clientlanguage": ["rust"], "serviceconfig": {"rust": 1}}]"#;
        assert_eq!(
            choose(json, &client(50)),
            Ok(Some(r#"{"rust":1}"#.to_owned()))
        );
        let json = r#"[{"clientHostName": ["box1"], "serviceConfig": {"box1": 1}}]"#;
        assert_eq!(
            choose(json, &client(50)),
            Ok(Some(r#"{"box1":1}"#.to_owned()))
        );
        // A key twice, in two cases or one: the value written last, as Go's decoder keeps it
        // (sorted, `clientHostName` comes first: the order written is what counts).
        let json = r#"[{"clientHostname": ["box1"], "clientHostName": ["box2"],
                        "serviceConfig": {"box2": 1}},
                       {"clientHostName": ["box2"], "clientHostname": ["box1"],
                        "serviceConfig": {"box1": 1}}]"#;
        assert_eq!(
            choose(json, &client(50)),
            Ok(Some(r#"{"box1":1}"#.to_owned()))
        );
        let json = r#"[{"percentage": 100, "Percentage": 0, "serviceConfig": {"x": 1}},
                       {"clientLanguage": ["go"], "ClientLanguage": null,
                        "serviceConfig": {"y": 1}}]"#;
        assert_eq!(choose(json, &client(1)), Ok(Some(r#"{"y":1}"#.to_owned())));
        // Keys inside a config, and strings that look like keys, are not a choice's keys.
        let json = r#"[{"serviceConfig": {"percentage": 0, "a": "x,\"percentage\":0"},
                        "clientLanguage": ["rust", "{\"y\":["]}]"#;
        assert_eq!(
            choose(json, &client(50)),
            Ok(Some(
                r#"{"a":"x,\"percentage\":0","percentage":0}"#.to_owned()
            ))
        );
    }

    #[test]
    fn criteria_as_grpc_go_reads_them() {
        // An empty list matches no client; `null` matches every one, as absent.
        let json = r#"[{"clientLanguage": [], "serviceConfig": {"none": 1}},
                       {"clientHostname": [], "serviceConfig": {"none": 2}},
                       {"clientLanguage": null, "clientHostname": null,
                        "serviceConfig": {"all": 1}}]"#;
        assert_eq!(
            choose(json, &client(50)),
            Ok(Some(r#"{"all":1}"#.to_owned()))
        );
        // Any whole percentage: under 1 never, over 100 always.
        let json = r#"[{"percentage": -5, "serviceConfig": {"never": 1}},
                       {"percentage": 150, "serviceConfig": {"always": 1}}]"#;
        for draw in [1, 100] {
            assert_eq!(
                choose(json, &client(draw)),
                Ok(Some(r#"{"always":1}"#.to_owned()))
            );
        }
        // A `null` config: passed over, as one absent.
        let json = r#"[{"serviceConfig": null}, {"serviceConfig": {"z": 1}}]"#;
        assert_eq!(choose(json, &client(1)), Ok(Some(r#"{"z":1}"#.to_owned())));
    }

    #[test]
    fn a_matching_choice_without_a_config_is_passed_over() {
        let json = r#"[{"clientLanguage": ["rust"]}, {"serviceConfig": {"y": 1}}]"#;
        assert_eq!(choose(json, &client(1)), Ok(Some(r#"{"y":1}"#.to_owned())));
    }

    #[test]
    fn malformed_choices_are_refused_with_the_reason() {
        for (json, says) in [
            ("{", "not JSON"),
            (r#"{"serviceConfig": {}}"#, "not a JSON list"),
            (r#"[1]"#, "choice 0: not a JSON object"),
            (
                r#"[{}, [{"serviceConfig": {}}]]"#,
                "choice 1: not a JSON object",
            ),
            (r#"[{"serviceConfig": {}}] ["#, "not JSON"),
            (r#"{"a": 1, "a": [}"#, "not JSON"),
            (r#"[{"percentage": 1.5}]"#, "not a whole number"),
            (r#"[{"percentage": "50"}]"#, "not a whole number"),
            (r#"[{"percentage": 1e30}]"#, "not a whole number"),
            (
                r#"[{"clientLanguage": "rust"}]"#,
                "clientLanguage is not a list",
            ),
            (r#"[{"clientHostname": [1]}]"#, "non-string"),
            (r#"[{"serviceConfig": []}]"#, "not a JSON object"),
            (
                r#"[{"serviceConfig": {}}, {"percentage": 0.5}]"#,
                "choice 1: percentage",
            ),
        ] {
            let error = choose(json, &client(1)).expect_err(json);
            assert!(error.contains(says), "{json}: {error}");
        }
    }

    #[test]
    fn only_the_grpc_config_record_counts() {
        let ours = br#"grpc_config=[{"serviceConfig": {"z": 1}}]"#.to_vec();
        let other = b"v=spf1 -all".to_vec();
        assert_eq!(
            choose_from_records(&[other.clone(), ours.clone()], &client(1)),
            Ok(Some(r#"{"z":1}"#.to_owned()))
        );
        assert_eq!(choose_from_records(&[other], &client(1)), Ok(None));
        let error = choose_from_records(&[ours.clone(), ours], &client(1)).expect_err("two");
        assert!(error.contains("2 records"), "{error}");
    }
}
