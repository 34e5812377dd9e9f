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
