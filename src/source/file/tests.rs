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
fn duplicate_ids_are_rejected_naming_both_entries() {
    let e = parse(br#"{"users":[{"id":"u1"},{"id":"u2"},{"id":"u1"}]}"#).unwrap_err();
    assert_eq!(e.to_string(), r#"users[2].id "u1" duplicates users[0].id"#);
    assert!(matches!(e, super::FormatError::DuplicateId { index: 2, first: 0, .. }));
}

#[test]
fn unknown_fields_and_malformed_json_are_rejected() {
    assert!(parse(br#"{"users":[{"id":"u1","emial":"x"}]}"#).unwrap_err().to_string().contains("unknown field `emial`"));
    assert!(parse(br#"{"users":[{"id":"u1""#).is_err());
}
