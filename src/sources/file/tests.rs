//! Unit tests of `api.rs`.

use super::api::parse;

#[test]
fn a_utf8_byte_order_mark_is_accepted() {
    let s = parse(b"\xEF\xBB\xBF{\"users\":[{\"id\":\"u1\"}]}").unwrap();
    assert_eq!(s.users.len(), 1);
}

#[test]
fn integer_and_string_ids_both_parse_and_active_defaults_to_true() {
    let s = parse(br#"{"departments":[{"id":1,"name":"HQ"}],"users":[{"id":"u1","department_ids":[1]}]}"#).unwrap();
    assert_eq!(s.departments[0].source_id.as_str(), "1");
    assert_eq!(s.users[0].department_ids[0].as_str(), "1");
    assert!(s.users[0].active);
}

#[test]
fn duplicate_ids_fail_the_document_naming_both_entries() {
    let e = parse(br#"{"users":[{"id":"u1"},{"id":"u2"},{"id":"u1"}]}"#).unwrap_err();
    assert_eq!(e.to_string(), r#"users[2].id "u1" duplicates users[0].id"#);
    assert!(matches!(e, super::FormatError::DuplicateId { index: 2, first: 0, .. }));
}

#[test]
fn malformed_json_and_an_unknown_top_level_key_fail_the_document() {
    assert!(parse(br#"{"users":[{"id":"u1""#).is_err());
    assert!(parse(br#"{"usres":[{"id":"u1"}]}"#).unwrap_err().to_string().contains("unknown field `usres`"));
}

#[test]
fn a_record_that_cannot_be_read_is_reported_by_id_and_the_rest_is_read() {
    let s = parse(
        br#"{"departments":[{"id":"d1","name":"HQ"},{"id":"d2"},{"id":"d3","name":7}],
             "users":[{"id":"u1","emial":"x"},{"id":"u2","active":"no"},{"name":"No Id"},{"id":""},{"id":"u5"}]}"#,
    )
    .unwrap();
    assert_eq!(s.departments.iter().map(|d| d.source_id.as_str()).collect::<Vec<_>>(), ["d1"]);
    assert_eq!(s.users.iter().map(|u| u.source_id.as_str()).collect::<Vec<_>>(), ["u5"]);
    let got: Vec<(Option<&str>, &str)> =
        s.unreadable.iter().map(|u| (u.source_id.as_ref().map(|i| i.as_str()), u.message.as_str())).collect();
    assert_eq!(got.len(), 6, "{got:#?}");
    assert!(
        got[0].0 == Some("d2") && got[0].1.contains("departments[1] (id \"d2\")") && got[0].1.contains("missing field `name`"),
        "{got:?}"
    );
    assert!(got[1].0 == Some("d3") && got[1].1.contains("invalid type"), "{got:?}");
    assert!(got[2].0 == Some("u1") && got[2].1.contains("unknown field `emial`"), "{got:?}");
    assert!(got[3].0 == Some("u2") && got[3].1.contains("users[1]"), "{got:?}");
    assert!(got[4].0.is_none() && got[4].1.contains("missing field `id`"), "{got:?}");
    assert!(got[5].0.is_none() && got[5].1.contains("users[3].id is empty"), "{got:?}");
    assert!(!got.iter().any(|(_, m)| m.contains(" at line ")), "positions within a record mislead: {got:?}");
}

#[test]
fn a_list_given_twice_or_not_a_list_fails_the_document() {
    let twice = parse(br#"{"users":[{"id":"u1"}],"users":[]}"#).unwrap_err().to_string();
    assert!(twice.contains("duplicate field `users`"), "{twice}");
    assert!(parse(br#"{"users":{"id":"u1"}}"#).is_err());
    assert!(parse(br#"[{"id":"u1"}]"#).is_err());
    assert!(parse(br#"{"users":[]} trailing"#).is_err(), "text after the document");
    let none = parse(br#"{}"#).unwrap();
    assert!(none.users.is_empty() && none.departments.is_empty());
}

/// Read as it is parsed, from a reader handing out a few bytes at a time:
/// the same records, the same checks.
#[test]
fn a_document_read_in_pieces_parses_the_same() {
    struct Trickle<'a>(std::io::Cursor<&'a [u8]>);
    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(3);
            self.0.read(&mut buf[..n])
        }
    }
    impl std::io::Seek for Trickle<'_> {
        fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
            self.0.seek(to)
        }
    }
    let trickle = |b: &'static [u8]| Trickle(std::io::Cursor::new(b));
    let doc =
        "\u{FEFF}{\"users\":[{\"id\":\"u1\",\"name\":\"张三\"},{\"id\":\"u2\",\"emial\":1}],\"departments\":[{\"id\":7,\"name\":\"HQ\"}]}";
    let s = super::api::parse_reader(trickle(doc.as_bytes()), &crate::mapping::Mapping::default()).unwrap();
    assert_eq!(s, parse(doc.as_bytes()).unwrap());
    assert_eq!(s.users[0].name.as_deref(), Some("张三"));
    assert_eq!(s.departments[0].source_id.as_str(), "7");
    assert_eq!(s.unreadable.len(), 1);
    let e = super::api::parse_reader(trickle(br#"{"users":[{"id":"u1"},{"id":"u1"}]}"#), &crate::mapping::Mapping::default()).unwrap_err();
    assert!(matches!(e, super::FormatError::DuplicateId { index: 1, first: 0, .. }), "{e}");
}

/// A value a record's field may hold in an export, right or wrong.
fn field_value() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
    use proptest::prelude::*;
    use serde_json::json;
    prop_oneof![
        "[a-c1-2\"\\\\ ,\\]}]{0,3}".prop_map(serde_json::Value::from),
        (0i64..3).prop_map(serde_json::Value::from),
        Just(json!(null)),
        Just(json!(true)),
        Just(json!(["d1", 2])),
        Just(json!({"cost_center": "x"})),
    ]
}

proptest::proptest! {
    /// The fast read (`json_lists`) and serde_json's reader give the same
    /// snapshot, or the same error, for any document: good, with records
    /// that cannot be read, with ids twice, or broken at one byte.
    #[test]
    fn the_fast_read_answers_as_serde_json_does(
        lists in proptest::collection::vec(
            (proptest::sample::select(vec!["users", "departments", "usres"]),
             proptest::collection::vec(proptest::collection::btree_map(
                 proptest::sample::select(vec!["id", "name", "parent_id", "department_ids", "active", "attributes", "emial", "manager_id"]),
                 field_value(), 0..5), 0..4)),
            0..3),
        pretty: bool,
        bom: bool,
        broken in proptest::option::of((proptest::prelude::any::<proptest::sample::Index>(), proptest::sample::select(vec![b'"', b'\\', b']', b'}', b',', b' ', b'x']))),
    ) {
        let mut text = if bom { b"\xEF\xBB\xBF".to_vec() } else { Vec::new() };
        text.push(b'{');
        for (n, (key, records)) in lists.iter().enumerate() {
            let list = serde_json::Value::Array(records.iter().map(|r| serde_json::Value::Object(r.clone().into_iter().map(|(k, v)| (k.to_owned(), v)).collect())).collect());
            let list = if pretty { serde_json::to_string_pretty(&list).unwrap() } else { list.to_string() };
            text.extend(format!("{}\"{key}\": {list}", if n > 0 { "," } else { "" }).bytes());
        }
        text.push(b'}');
        if let Some((at, with)) = broken {
            let i = at.index(text.len());
            text[i] = with;
        }
        let fast = parse(&text).map_err(|e| e.to_string());
        let reference = super::api::parse_reference(&text).map_err(|e| e.to_string());
        proptest::prop_assert_eq!(fast, reference, "{}", String::from_utf8_lossy(&text));
    }
}

/// A record that is not UTF-8 (an export saved as Windows-1252) fails the
/// document, as serde_json's reader says: it is not one unreadable record.
#[test]
fn a_document_that_is_not_utf8_fails_whole() {
    let doc = b"{\"users\":[{\"id\":\"1\",\"name\":\"Jos\xE9\"},{\"id\":\"2\"}]}";
    let e = parse(doc).unwrap_err().to_string();
    assert_eq!(Err(e.clone()), super::api::parse_reference(doc).map_err(|e| e.to_string()));
    assert!(e.contains("unicode"), "{e}");
}
