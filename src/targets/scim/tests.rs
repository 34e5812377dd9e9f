//! Pure tests of the SCIM target: resources <-> the model.

use super::mapping::*;
use super::*;

#[test]
fn groups_carry_the_tree_and_user_membership() {
    let users = vec![json!({"id": "u1", "userName": "a", "emails": [{"value": "x@y", "type": "home"}, {"value": "a@y", "primary": true}]})];
    let groups = vec![
        json!({"id": "g1", "displayName": "Root", "members": [{"value": "g2", "type": "Group"}, {"value": "u1", "type": "User"}, {"value": "gone"}]}),
        json!({"id": "g2", "displayName": "Child", "externalId": "d2"}),
    ];
    let s = snapshot(&users, &groups).unwrap();
    assert_eq!(s.users[0].email.as_deref(), Some("a@y"));
    assert_eq!(s.users[0].departments, vec![TargetId::from("g1")]);
    assert!(s.users[0].active);
    assert_eq!(s.departments[1].parent, Some(TargetId::from("g1")));
    assert_eq!(s.departments[0].parent, None);
}

#[test]
fn a_member_is_a_user_or_a_group_by_type_or_ref_never_by_a_shared_id() {
    // django-scim2: users and groups share integer ids.
    let users = vec![json!({"id": "3", "userName": "u3"}), json!({"id": "4", "userName": "u4"})];
    let groups = vec![
        json!({"id": "1", "displayName": "Parent", "members": [
            {"value": "3"},
            {"value": "2", "$ref": "https://x/scim/v2/Groups/2"},
            {"value": "4", "$ref": "https://x/scim/v2/Users/4"}
        ]}),
        json!({"id": "2", "displayName": "Child"}),
        json!({"id": "3", "displayName": "Also 3"}),
    ];
    let s = snapshot(&users, &groups).unwrap();
    assert_eq!(s.departments[1].parent, Some(TargetId::from("1")), "by $ref");
    assert_eq!(s.departments[2].parent, None, "3 is both a user and a group: not read as either");
    assert!(s.users[0].departments.is_empty());
    assert_eq!(s.users[1].departments, vec![TargetId::from("1")], "by $ref");
    let lower = vec![json!({"id": "3", "displayName": "G", "members": [{"value": "3", "type": "user"}]})];
    assert_eq!(snapshot(&users, &lower).unwrap().users[0].departments, vec![TargetId::from("3")], "type, any case");
}

#[test]
fn a_patch_names_only_changed_fields_and_removes_emptied_ones() {
    let spec = UserSpec { external_id: "s1".into(), name: Some("N".into()), title: None, ..Default::default() };
    let ops = user_patch(&spec, &[Field::Name, Field::Title], FieldSet::default(), &[], None);
    assert_eq!(ops.len(), 3);
    assert_eq!((ops[1].0, &ops[1].1["path"]), (Field::Name, &json!("name.formatted")));
    assert_eq!(ops[2], (Field::Title, json!({"op": "remove", "path": "title"})));
}

#[test]
fn a_create_body_carries_the_enterprise_extension_where_the_server_offers_it() {
    let spec = UserSpec {
        external_id: "s1".into(),
        username: Some("alice".into()),
        employee_no: Some("E1".into()),
        department: Some("Eng".into()),
        active: true,
        ..Default::default()
    };
    let b = user_body(&spec, FieldSet::default(), &[], None);
    assert_eq!(b[ENTERPRISE]["employeeNumber"], "E1");
    assert_eq!(b[ENTERPRISE]["department"], "Eng");
    assert_eq!(b["userName"], "alice");
    assert!(b.get("title").is_none());
    let b = user_body(&spec, FieldSet::default().with(Field::EmployeeNo).with(Field::Department), &[], None);
    assert!(b.get(ENTERPRISE).is_none(), "{b}");
    assert_eq!(b["schemas"], json!([USER]));
}

#[test]
fn a_value_is_found_without_a_filter() {
    let u = json!({"userName": "Alice", "externalId": "s1", "emails": [{"value": "A@x.test"}], ENTERPRISE: {"employeeNumber": "7"}});
    assert!(has_value(&u, "userName", "alice"), "case-insensitive");
    assert!(has_value(&u, "emails.value", "a@x.test"));
    assert!(has_value(&u, "externalId", "s1") && !has_value(&u, "externalId", "S1"));
    assert!(has_value(&u, EMPLOYEE_NUMBER, "7"));
    assert!(!has_value(&u, "phoneNumbers.value", "7"));
}
