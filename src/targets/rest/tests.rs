//! Pure tests of the REST target: templates and JSONPath.

use super::template::*;

#[test]
fn syntax_errors_say_line_and_column_and_filters_reshape() {
    let mut b = Builder::default();
    let e = b.add("users.create.body", "{\n  \"name\": {{ user.name | tojson }},\n  \"x\": {{ user.name | }}\n}").unwrap_err();
    assert!(e.to_string().starts_with("template error at line 3, column"), "{e}");
    b.add("ok", "{{ user.mobile | strip_prefix('+86') | tojson }} {{ params.realm }}").unwrap();
    let t = b.build();
    let out = t.render("ok", &serde_json::json!({"user": {"mobile": "+86 138 0000"}, "params": {"realm": "r"}})).unwrap();
    assert_eq!(out, "\"138 0000\" r");
    assert_eq!(t.render("ok", &serde_json::json!({"user": {"mobile": null}, "params": {"realm": "r"}})).unwrap(), "null r");
}

#[test]
fn a_missing_parent_renders_as_null() {
    let mut b = Builder::default();
    b.add("p", "{{ parent_id | tojson }}|{% if parent %}{{ parent.id }}{% endif %}").unwrap();
    let t = b.build();
    assert_eq!(t.render("p", &serde_json::json!({"parent": null, "parent_id": null})).unwrap(), "null|");
    assert_eq!(t.render("p", &serde_json::json!({"parent": {"id": "g1"}, "parent_id": "g1"})).unwrap(), "\"g1\"|g1");
}

#[test]
fn paths_read_text_and_refuse_bad_syntax() {
    let v = serde_json::json!({"id": 7, "attributes": {"mobile": ["+86 1"]}, "enabled": false, "x": null});
    assert_eq!(Path::parse("$.id").unwrap().text(&v).as_deref(), Some("7"));
    assert_eq!(Path::parse("$.attributes.mobile[0]").unwrap().text(&v).as_deref(), Some("+86 1"));
    assert_eq!(Path::parse("$.attributes.mobile").unwrap().text(&v).as_deref(), Some("+86 1"));
    assert_eq!(Path::parse("$.enabled").unwrap().text(&v).as_deref(), Some("false"));
    assert_eq!(Path::parse("$.x").unwrap().text(&v), None);
    assert!(Path::parse("$.[").unwrap_err().to_string().starts_with("not a JSONPath"));
}
