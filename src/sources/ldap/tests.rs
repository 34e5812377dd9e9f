//! Unit tests of `mapping.rs`.

use super::mapping::*;
use crate::model::SourceId;
use std::collections::BTreeSet;

fn entry(dn: &str, attrs: &[(&str, &str)]) -> Entry {
    let mut e = Entry { dn: dn.into(), ..Entry::default() };
    for (k, v) in attrs {
        e.attrs.entry((*k).to_owned()).or_default().push((*v).to_owned());
    }
    e
}

#[test]
fn object_guid_text_form_has_its_first_three_fields_little_endian() {
    let bytes = [0x90, 0x39, 0x5F, 0x19, 0x1A, 0xB5, 0x1B, 0x4A, 0x9E, 0x96, 0x86, 0xC6, 0x6C, 0xB1, 0x8D, 0x11];
    assert_eq!(guid(&bytes).as_deref(), Some("195f3990-b51a-4a1b-9e96-86c66cb18d11"));
    assert_eq!(guid(&bytes[..15]), None);
}

proptest::proptest! {
    /// The filter that finds an AD entry by its id escapes the very bytes
    /// the id was made from; an OpenLDAP id is escaped as text.
    #[test]
    fn an_id_filter_finds_the_bytes_its_guid_came_from(bytes in proptest::array::uniform16(proptest::num::u8::ANY)) {
        let id = guid(&bytes).unwrap();
        let escaped: String = bytes.iter().map(|b| format!("\\{b:02x}")).collect();
        proptest::prop_assert_eq!(id_filter(Flavor::ActiveDirectory, &id), Some(format!("(objectGUID={escaped})")));
        proptest::prop_assert_eq!(id_filter(Flavor::ActiveDirectory, &id.to_uppercase()), Some(format!("(objectGUID={escaped})")));
    }
}

#[test]
fn an_id_filter_escapes_text_ids_and_refuses_what_is_no_guid() {
    assert_eq!(id_filter(Flavor::OpenLdap, "a*b)(uid=x").as_deref(), Some("(entryUUID=a\\2ab\\29\\28uid=x)"));
    assert_eq!(id_filter(Flavor::ActiveDirectory, "not-a-guid"), None);
    assert_eq!(id_filter(Flavor::ActiveDirectory, "195f3990-b51a-4a1b-9e96-86c66cb18d1é"), None);
}

#[test]
fn account_expires_zero_and_max_mean_never() {
    let now = 1_795_000_000; // 2026-11
    assert!(!account_expired("0", now));
    assert!(!account_expired("9223372036854775807", now));
    // 2020-01-01 in ticks since 1601.
    assert!(account_expired("132223104000000000", now));
    // 2030-01-01.
    assert!(!account_expired("142689600000000000", now));
}

#[test]
fn ad_disabled_or_expired_users_are_inactive() {
    let mut e = entry("CN=A,OU=X,DC=ex,DC=test", &[("userAccountControl", "514")]);
    e.bin_attrs.insert("objectGUID".into(), vec![vec![1; 16]]);
    assert!(!active(&e, Flavor::ActiveDirectory, 1_795_000_000));
    e.attrs.insert("userAccountControl".into(), vec!["512".into()]);
    assert!(active(&e, Flavor::ActiveDirectory, 1_795_000_000));
    e.attrs.insert("accountExpires".into(), vec!["132223104000000000".into()]);
    assert!(!active(&e, Flavor::ActiveDirectory, 1_795_000_000));
}

#[test]
fn ds389_locked_accounts_are_inactive_and_the_id_is_ns_unique_id() {
    let mut e = entry("uid=a,ou=People,dc=ex", &[("nsUniqueId", "6C4B8A01-1DD211B2-8E6DA0C2-7D3C0000"), ("nsAccountLock", "TRUE")]);
    assert!(!active(&e, Flavor::Ds389, 0), "nsAccountLock: TRUE locks");
    assert!(active(&e, Flavor::OpenLdap, 0), "OpenLDAP has no such attribute in its rules");
    e.attrs.insert("nsAccountLock".into(), vec!["false".into()]);
    assert!(active(&e, Flavor::Ds389, 0));
    e.attrs.insert("pwdAccountLockedTime".into(), vec!["000001010000Z".into()]);
    assert!(!active(&e, Flavor::Ds389, 0), "a ppolicy lock counts too");
    assert_eq!(e.stable_id(Flavor::Ds389).unwrap().as_str(), "6c4b8a01-1dd211b2-8e6da0c2-7d3c0000");
    assert!(e.stable_id(Flavor::OpenLdap).unwrap_err().to_string().contains("no entryUUID"));
}

#[test]
fn parent_dn_skips_escaped_commas() {
    assert_eq!(parent_dn("cn=Doe\\, Jane,ou=Sales, dc=Ex").as_deref(), Some("ou=sales,dc=ex"));
    assert_eq!(parent_dn("dc=ex"), None);
}

#[test]
fn ou_tree_gives_parents_from_dns_and_users_their_ou() {
    let ous = [
        entry("ou=Corp,dc=ex", &[("ou", "Corp"), ("entryUUID", "A")]),
        entry("ou=Sales,ou=Corp,dc=ex", &[("ou", "Sales"), ("entryUUID", "B")]),
    ];
    let users = [entry("uid=jd,ou=Sales,ou=Corp,dc=ex", &[("uid", "jd"), ("cn", "J D"), ("entryUUID", "C"), ("mail", "jd@ex")])];
    let s = snapshot(&ous, &users, Flavor::OpenLdap, &Flavor::OpenLdap.default_attributes(), &Departments::OuTree, 0, &Default::default())
        .unwrap();
    assert_eq!(s.departments[0].parent_id, None);
    assert_eq!(s.departments[1].parent_id, Some(SourceId("a".into())));
    assert_eq!(s.users[0].department_ids, vec![SourceId("b".into())]);
    assert_eq!(s.users[0].username.as_deref(), Some("jd"));
    assert!(s.users[0].active);
}

#[test]
fn a_user_entry_without_a_stable_id_is_unreadable_and_a_department_entry_fails_the_fetch() {
    let users = [entry("uid=x,dc=ex", &[("uid", "x")]), entry("uid=y,dc=ex", &[("uid", "y"), ("entryUUID", "B1")])];
    let s = snapshot(&[], &users, Flavor::OpenLdap, &Flavor::OpenLdap.default_attributes(), &Departments::OuTree, 0, &Default::default())
        .unwrap();
    assert_eq!(s.users.len(), 1);
    assert_eq!(s.unreadable.len(), 1);
    assert_eq!(s.unreadable[0].source_id, None, "no id: it holds back every disable and delete");
    assert!(s.unreadable[0].message.contains("uid=x,dc=ex: no entryUUID"), "{}", s.unreadable[0].message);
    let ous = [entry("ou=a,dc=ex", &[("ou", "a")])];
    let err = snapshot(&ous, &[], Flavor::OpenLdap, &Flavor::OpenLdap.default_attributes(), &Departments::OuTree, 0, &Default::default())
        .unwrap_err();
    assert!(err.to_string().contains("ou=a,dc=ex: no entryUUID"), "{err}");
}

#[test]
fn attribute_departments_are_flat_and_distinct() {
    let users = [
        entry("uid=a,dc=ex", &[("entryUUID", "1"), ("departmentNumber", "R&D")]),
        entry("uid=b,dc=ex", &[("entryUUID", "2"), ("departmentNumber", "R&D")]),
        entry("uid=c,dc=ex", &[("entryUUID", "3"), ("departmentNumber", "Ops")]),
    ];
    let deps = Departments::Attribute("departmentNumber".into());
    let s = snapshot(&[], &users, Flavor::OpenLdap, &Flavor::OpenLdap.default_attributes(), &deps, 0, &Default::default()).unwrap();
    let names: Vec<&str> = s.departments.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, vec!["Ops", "R&D"]);
    assert_eq!(s.users[2].department_ids, vec![SourceId("Ops".into())]);
}

fn group(dn: &str, guid_byte: u8, members: &[&str]) -> Entry {
    let mut e = entry(dn, &[("cn", dn.split(',').next().unwrap().trim_start_matches("CN=").trim_start_matches("cn="))]);
    e.bin_attrs.insert("objectGUID".into(), vec![vec![guid_byte; 16]]);
    e.attrs.insert("member".into(), members.iter().map(|m| (*m).to_owned()).collect());
    e
}

fn ad_user(dn: &str, guid_byte: u8) -> Entry {
    let mut e = entry(dn, &[("sAMAccountName", dn), ("userAccountControl", "512")]);
    e.bin_attrs.insert("objectGUID".into(), vec![vec![guid_byte; 16]]);
    e
}

#[test]
fn groups_nest_through_member_dns_and_users_get_every_group_listing_them() {
    let groups = [
        group("CN=Eng,OU=Depts,DC=ex", 1, &["CN=Platform,OU=Depts,DC=ex", "CN=Ann,OU=People,DC=ex"]),
        // Member DNs compare case- and space-insensitively.
        group("CN=Platform,OU=Depts,DC=ex", 2, &["cn=bob, ou=people, dc=ex", "CN=Ann,OU=People,DC=ex"]),
        group("CN=Sales,OU=Depts,DC=ex", 3, &["CN=Sales,OU=Depts,DC=ex"]),
    ];
    let users = [ad_user("CN=Ann,OU=People,DC=ex", 10), ad_user("CN=Bob,OU=People,DC=ex", 11), ad_user("CN=Cid,OU=People,DC=ex", 12)];
    let deps = Departments::Groups { base_dn: None, filter: "(objectClass=group)".into() };
    let f = Flavor::ActiveDirectory;
    let s = snapshot(&groups, &users, f, &f.default_attributes(), &deps, 0, &Default::default()).unwrap();
    let id = |b: u8| SourceId(guid(&[b; 16]).unwrap());
    let parents: Vec<(&str, Option<SourceId>)> = s.departments.iter().map(|d| (d.name.as_str(), d.parent_id.clone())).collect();
    assert_eq!(parents, vec![("Eng", None), ("Platform", Some(id(1))), ("Sales", None)]);
    let mut ann = s.users[0].department_ids.clone();
    ann.sort();
    let mut want = vec![id(1), id(2)];
    want.sort();
    assert_eq!(ann, want);
    assert_eq!(s.users[1].department_ids, vec![id(2)]);
    assert!(s.users[2].department_ids.is_empty());
}

#[test]
fn unique_member_values_with_a_uid_suffix_still_match() {
    let mut g = entry("cn=Ops,ou=Groups,dc=ex", &[("cn", "Ops"), ("entryUUID", "G")]);
    g.attrs.insert("uniqueMember".into(), vec!["uid=a,dc=ex#'0101'B".into()]);
    let users = [entry("uid=a,dc=ex", &[("entryUUID", "U")])];
    let deps = Departments::Groups { base_dn: None, filter: "(cn=*)".into() };
    let f = Flavor::OpenLdap;
    let s = snapshot(&[g], &users, f, &f.default_attributes(), &deps, 0, &Default::default()).unwrap();
    assert_eq!(s.users[0].department_ids, vec![SourceId("g".into())]);
}

/// As AD answers a group with 3,200 members (MaxValRange 1,500).
fn ranged(dn: &str, lo: usize, hi: Option<usize>, total: usize) -> Entry {
    let end = hi.map_or(total - 1, |h| h);
    let name = format!("member;range={lo}-{}", hi.map_or("*".to_owned(), |h| h.to_string()));
    let mut e = Entry { dn: dn.into(), ..Entry::default() };
    e.attrs.insert(name, (lo..=end).map(|i| format!("CN=U{i},DC=ex")).collect());
    e
}

#[test]
fn large_member_values_are_read_range_by_range_until_the_star() {
    let dn = "CN=All,DC=ex";
    let mut r = RangedValues::new(&ranged(dn, 0, Some(1499), 3200), "member").unwrap();
    assert_eq!(r.next_request().as_deref(), Some("member;range=1500-*"));
    r.absorb(&ranged(dn, 1500, Some(2999), 3200)).unwrap();
    assert_eq!(r.next_request().as_deref(), Some("member;range=3000-*"));
    r.absorb(&ranged(dn, 3000, None, 3200)).unwrap();
    assert_eq!(r.next_request(), None);
    let v = r.finish();
    assert_eq!(v.len(), 3200);
    assert_eq!(v.iter().collect::<BTreeSet<_>>().len(), 3200, "no value twice");
    assert_eq!(v[3199], "CN=U3199,DC=ex");
}

#[test]
fn a_plain_member_attribute_needs_no_more_requests_and_an_empty_range_is_an_error() {
    let g = group("CN=Small,DC=ex", 1, &["CN=A,DC=ex"]);
    let r = RangedValues::new(&g, "member").unwrap();
    assert_eq!(r.next_request(), None);
    assert_eq!(r.finish(), vec!["CN=A,DC=ex".to_owned()]);

    let mut r = RangedValues::new(&ranged("CN=All,DC=ex", 0, Some(1499), 3200), "Member").unwrap();
    let err = r.absorb(&Entry { dn: "CN=All,DC=ex".into(), ..Entry::default() }).unwrap_err();
    assert!(err.to_string().contains("no Member values from 1500 on"), "{err}");
    let mut bad = Entry { dn: "CN=X".into(), ..Entry::default() };
    bad.attrs.insert("member;range=0-abc".into(), vec!["x".into()]);
    assert!(RangedValues::new(&bad, "member").unwrap_err().to_string().contains("unreadable range"));
}

#[test]
fn credential_attributes_never_reach_explain_or_an_expression() {
    let e = entry(
        "uid=a,ou=Corp,dc=x",
        &[("uid", "a"), ("userPassword", "{SSHA}secret"), ("sambaNTPassword", "ABC"), ("unicodePwd;binary", "x"), ("sn", "A")],
    );
    for record in [e.as_json(), e.as_record()] {
        let text = record.to_string();
        assert!(!text.contains("secret") && !text.contains("ABC") && !text.to_lowercase().contains("unicodepwd"), "{text}");
        assert_eq!(record["sn"], if record["sn"].is_array() { serde_json::json!(["A"]) } else { serde_json::json!("A") });
    }
}
