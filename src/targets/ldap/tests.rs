//! Pure tests of the LDAP target: DNs, the index of entries.

use super::entries::*;
use super::*;

#[test]
fn dn_parts_respect_escapes() {
    assert_eq!(dn_parent("ou=R\\2cD,ou=Corp,dc=x"), "ou=Corp,dc=x");
    assert_eq!(dn_parent("ou=R\\,D,dc=x"), "dc=x");
    assert_eq!(rdn_value("ou=R\\2cD,ou=Corp,dc=x"), "R,D");
    assert_eq!(rdn_value("ou=R\\,D,dc=x"), "R,D");
    assert_eq!(rdn_value(&rdn("cn", " #Team, \"A\"+B ")), " #Team, \"A\"+B ");
    assert_eq!(dn_parent("dc=x"), "");
}

#[test]
fn a_rename_moves_the_subtree_and_nothing_else() {
    let mut i = Index::default();
    let ids: Vec<TargetId> = (0..4).map(|n| TargetId(n.to_string())).collect();
    i.dn.insert(ids[0].clone(), "ou=Sales,ou=D,dc=x".into());
    i.dn.insert(ids[1].clone(), "uid=a,ou=Sales,ou=D,dc=x".into());
    i.dn.insert(ids[2].clone(), "ou=Emea,OU=Sales, ou=D,dc=x".into());
    i.dn.insert(ids[3].clone(), "uid=b,ou=PreSales,ou=D,dc=x".into());
    i.renamed(&ids[0], "ou=Sales,ou=D,dc=x", "ou=Revenue,ou=D,dc=x", true);
    assert_eq!(i.dn[&ids[0]], "ou=Revenue,ou=D,dc=x");
    assert_eq!(i.dn[&ids[1]], "uid=a,ou=Revenue,ou=D,dc=x");
    assert_eq!(i.dn[&ids[2]], "ou=Emea,ou=Revenue,ou=D,dc=x");
    assert_eq!(i.dn[&ids[3]], "uid=b,ou=PreSales,ou=D,dc=x");
}

#[test]
fn under_compares_without_case_or_spaces() {
    assert!(is_under("uid=a,OU=People, dc=x", "ou=people,dc=x"));
    assert!(is_under("ou=people,dc=x", "ou=people,dc=x"));
    assert!(!is_under("ou=xpeople,dc=x", "ou=people,dc=x"));
}
