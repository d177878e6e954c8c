//! Tests of `metadata_entry.rs`: entries over a map whose keys' values lie among others'.

use super::*;

/// `x-a: 1`, `x-b-bin: \0`, `x-a: 2`, `x-c: 3`, `x-a: 4`.
fn scattered() -> MetadataMap {
    let mut map = MetadataMap::new();
    map.append_str("x-a", "1").expect("valid");
    map.append_bin("x-b-bin", b"\0".into()).expect("valid");
    map.append_str("x-a", "2").expect("valid");
    map.append_str("x-c", "3").expect("valid");
    map.append_str("x-a", "4").expect("valid");
    map
}

fn keys(map: &MetadataMap) -> Vec<&str> {
    map.iter().map(|(key, _)| key).collect()
}

#[test]
fn keys_of_the_other_kind_reserved_or_invalid_are_errors_not_panics() {
    let mut map = scattered();
    assert!(map.entry("x-b-bin").is_err(), "binary key as text");
    assert!(map.entry_bin("x-a").is_err(), "text key as binary");
    assert!(map.entry("sockrpc-x").is_err(), "reserved");
    assert!(map.entry("a{}b").is_err());
    assert!(map.entry("").is_err());
    assert!(map.entry("k".repeat(256)).is_err());
    assert_eq!(map, scattered(), "nothing changed");
}

#[test]
fn an_occupied_entry_reads_and_replaces_its_key_values_only() {
    let mut map = scattered();
    let Ok(Entry::Occupied(mut entry)) = map.entry("X-A") else {
        panic!("x-a has values");
    };
    assert_eq!(entry.key(), "x-a", "folded to lowercase");
    assert_eq!(entry.get(), "1");
    let values: Vec<_> = entry.iter().collect();
    assert_eq!(values, ["1", "2", "4"]);
    let backwards: Vec<_> = entry.iter().rev().collect();
    assert_eq!(backwards, ["4", "2", "1"]);
    for value in entry.iter_mut() {
        value.set_sensitive(true);
    }
    let old: Vec<_> = entry
        .insert_mult(MetadataValue::from_static("one"))
        .collect();
    assert_eq!(old, ["1", "2", "4"]);
    assert!(!entry.get().is_sensitive(), "the new value is as made");
    entry.append(MetadataValue::from_static("two"));
    assert_eq!(entry.insert(MetadataValue::from_static("only")), "one");
    assert_eq!(keys(&map), ["x-a", "x-b-bin", "x-c"], "first place kept");
    assert_eq!(map.get_all("x-a").collect::<Vec<_>>(), [b"only"]);
}

#[test]
fn removing_an_entry_takes_every_value_and_leaves_the_rest_in_order() {
    let mut map = scattered();
    let Ok(Entry::Occupied(entry)) = map.entry("x-a") else {
        panic!("x-a has values");
    };
    let (key, values) = entry.remove_entry_mult();
    assert_eq!(key, "x-a");
    assert_eq!(values.collect::<Vec<_>>(), ["1", "2", "4"]);
    assert_eq!(keys(&map), ["x-b-bin", "x-c"]);

    let mut map = scattered();
    let Ok(Entry::Occupied(entry)) = map.entry_bin("x-b-bin") else {
        panic!("x-b-bin has a value");
    };
    assert_eq!(entry.remove(), &b"\0"[..]);
    assert_eq!(keys(&map), ["x-a", "x-a", "x-c", "x-a"]);
}

#[test]
fn a_vacant_entry_adds_at_the_end_and_or_insert_adds_only_once() {
    let mut map = scattered();
    let entry = map.entry("x-new").expect("valid");
    assert!(matches!(entry, Entry::Vacant(_)));
    *entry.or_insert(MetadataValue::from_static("a")) = MetadataValue::from_static("b");
    let again = map
        .entry("x-new")
        .expect("valid")
        .or_insert_with(|| MetadataValue::from_static("never"));
    assert_eq!(again, "b");
    let Ok(Entry::Vacant(vacant)) = map.entry_bin("x-new-bin") else {
        panic!("no such key");
    };
    let mut occupied = vacant.insert_entry(MetadataValue::from_bytes(b"\xff"));
    occupied.append(MetadataValue::from_bytes(b"\xfe"));
    assert_eq!(occupied.iter().count(), 2);
    assert_eq!(
        keys(&map),
        [
            "x-a",
            "x-b-bin",
            "x-a",
            "x-c",
            "x-a",
            "x-new",
            "x-new-bin",
            "x-new-bin"
        ]
    );
    let Ok(Entry::Vacant(vacant)) = map.entry(String::from("x-gone")) else {
        panic!("no such key");
    };
    assert_eq!(vacant.into_key().as_str(), "x-gone");
    assert!(
        !map.contains_key("x-gone"),
        "a vacant entry left alone adds nothing"
    );
}
