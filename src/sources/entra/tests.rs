use super::*;
use crate::config::Secret;
use crate::sources::saas::HttpSettings;
use crate::sources::saas::wire::item;
use serde_json::json;

fn rules(from: DepartmentsFrom) -> EntraSource {
    let http = HttpSettings {
        base_url: GRAPH_HOST.into(),
        timeout: std::time::Duration::from_secs(1),
        rate_limit: 1,
        max_retries: 0,
        token_margin: std::time::Duration::ZERO,
    };
    EntraSource::new(EntraConfig {
        tenant: "contoso.onmicrosoft.com".into(),
        client_id: "app".into(),
        client_secret: Secret::new("s"),
        authority_host: AUTHORITY_HOST.into(),
        http,
        departments_from: from,
        group_filter: None,
        delta: true,
        full_every: std::time::Duration::from_secs(86_400),
        concurrency: 1,
        user_properties: Vec::new(),
    })
}

#[test]
fn oauth_and_graph_errors_are_judged_by_their_codes() {
    let r = rules(DepartmentsFrom::Groups);
    let h = HeaderMap::new();
    let oauth = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x","error_codes":[7000215],"timestamp":"t","trace_id":"x","correlation_id":"y"}"#;
    let v = r.check(401, &h, oauth);
    assert!(matches!(&v, Verdict::Fatal { code, message } if code == "AADSTS7000215" && !message.contains("Trace")), "{v:?}");
    assert!(r.hint("AADSTS7000215").unwrap().contains("source.client_secret"));
    let expired = br#"{"error":{"code":"InvalidAuthenticationToken","message":"Lifetime validation failed, the token is expired."}}"#;
    assert!(matches!(r.check(401, &h, expired), Verdict::TokenInvalid { .. }));
    let denied = br#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation."}}"#;
    assert!(matches!(r.check(403, &h, denied), Verdict::Fatal { code, .. } if code == "Authorization_RequestDenied"));
    let stale = br#"{"error":{"code":"syncStateNotFound","message":"The sync state generation is not found."}}"#;
    assert!(matches!(r.check(400, &h, stale), Verdict::Fatal { code, .. } if code == "syncStateNotFound"));
    // Every documented "start again" answer is one the fetch falls back on.
    for (status, body) in [
        (400, &stale[..]),
        (400, br#"{"error":{"code":"syncStateInvalid","message":"Invalid sync state."}}"#),
        (410, br#"{"error":{"code":"resyncRequired","message":"Resync required."}}"#),
        (410, b""),
    ] {
        let Verdict::Fatal { code, message } = r.check(status, &h, body) else { panic!("{status}: not fatal") };
        let e = crate::sources::saas::api_error(&r, "/v1.0/users/delta", &code, &message);
        assert!(is_stale_delta(&e), "{status} {code}: {e}");
    }
    let other = br#"{"error":{"code":"badRequest","message":"Invalid delta token."}}"#;
    let Verdict::Fatal { code, message } = r.check(400, &h, other) else { panic!("not fatal") };
    assert!(!is_stale_delta(&crate::sources::saas::api_error(&r, "/v1.0/users/delta", &code, &message)));
    assert!(matches!(r.check(429, &h, br#"{"error":{"code":"TooManyRequests","message":"x"}}"#), Verdict::Throttled { .. }));
    assert!(matches!(r.check(503, &h, b"<html>busy</html>"), Verdict::Transient { .. }));
    assert!(matches!(r.check(200, &h, br#"{"value":[]}"#), Verdict::Ok(_)));
}

fn full_state() -> State {
    let mut s = State::default();
    for u in [
        json!({"id": "u1", "userPrincipalName": "adele@contoso.com", "mail": "adele@contoso.com", "displayName": "Adele Vance",
               "mobilePhone": null, "businessPhones": ["+1 425 555 0109"], "employeeId": "1001", "department": "Retail",
               "jobTitle": "Retail Manager", "accountEnabled": true}),
        json!({"id": "u2", "userPrincipalName": "bob@contoso.com", "mail": null, "displayName": "Bob", "mobilePhone": "+1 555",
               "businessPhones": [], "employeeId": null, "department": "Sales", "jobTitle": null, "accountEnabled": true}),
    ] {
        assert_eq!(mapping::apply_user(&mut s, item(u)), None);
    }
    s
}

#[test]
fn a_delta_round_merges_partial_records_and_both_removals() {
    let mut s = full_state();
    mapping::apply_user(&mut s, item(json!({"id": "u1", "displayName": "Adele Smith"})));
    mapping::apply_user(&mut s, item(json!({"id": "u2", "@removed": {"reason": "changed"}})));
    mapping::apply_user(
        &mut s,
        item(json!({"id": "u3", "userPrincipalName": "new@contoso.com", "displayName": "New", "accountEnabled": true})),
    );
    let snap = mapping::snapshot(&s, DepartmentsFrom::DepartmentAttribute, vec![], &Default::default());
    let by = |id: &str| snap.users.iter().find(|u| u.source_id.as_str() == id).unwrap();
    assert_eq!(by("u1").name.as_deref(), Some("Adele Smith"));
    assert_eq!(by("u1").email.as_deref(), Some("adele@contoso.com"), "what the partial record left out is kept");
    assert_eq!(by("u1").mobile.as_deref(), Some("+1 425 555 0109"), "a business phone when there is no mobile");
    assert!(!by("u2").active, "soft-deleted: inactive");
    assert!(by("u3").active && by("u3").is_absent(crate::model::UserField::EmployeeNo), "a new user; what it lacks is absent");
    assert_eq!(snap.departments.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["Retail", "Sales"]);
    mapping::apply_user(&mut s, item(json!({"id": "u2", "@removed": {"reason": "deleted"}})));
    mapping::apply_user(&mut s, item(json!({"id": "u1", "accountEnabled": false})));
    let snap = mapping::snapshot(&s, DepartmentsFrom::DepartmentAttribute, vec![], &Default::default());
    assert_eq!(snap.users.len(), 2, "a hard-deleted user is gone");
    assert!(!snap.users[0].active, "disabled");
    // What is kept survives a round trip through the mirror.
    let again: State = serde_json::from_slice(&serde_json::to_vec(&s).unwrap()).unwrap();
    assert_eq!(again, s);
}

#[test]
fn nested_groups_are_a_tree_and_a_group_under_two_is_invalid() {
    let mut s = full_state();
    for g in [
        json!({"id": "g1", "displayName": "Company", "securityEnabled": true,
               "members@delta": [{"@odata.type": "#microsoft.graph.group", "id": "g2"}, {"@odata.type": "#microsoft.graph.group", "id": "g3"}]}),
        json!({"id": "g2", "displayName": "Retail", "securityEnabled": true,
               "members@delta": [{"@odata.type": "#microsoft.graph.user", "id": "u1"}, {"@odata.type": "#microsoft.graph.group", "id": "g4"}]}),
        json!({"id": "g3", "displayName": "Sales", "securityEnabled": true, "members@delta": [{"@odata.type": "#microsoft.graph.group", "id": "g4"}]}),
        json!({"id": "g4", "displayName": "Shared", "securityEnabled": true, "members@delta": [{"@odata.type": "#microsoft.graph.user", "id": "u2"}]}),
        json!({"id": "m1", "displayName": "A mail list", "securityEnabled": false, "members@delta": [{"@odata.type": "#microsoft.graph.user", "id": "u2"}]}),
    ] {
        assert_eq!(mapping::apply_group(&mut s, item(g)), None);
    }
    let snap = mapping::snapshot(&s, DepartmentsFrom::Groups, vec![], &Default::default());
    let ids: Vec<&str> = snap.departments.iter().map(|d| d.source_id.as_str()).collect();
    assert_eq!(ids, ["g1", "g2", "g3"], "no mail-only group; g4 is under two");
    assert_eq!(snap.departments[1].parent_id.as_ref().map(|p| p.as_str()), Some("g1"));
    assert!(snap.unreadable.iter().any(|u| u.message.contains("g4") && u.message.contains("several department groups")));
    let u1 = snap.users.iter().find(|u| u.source_id.as_str() == "u1").unwrap();
    assert_eq!(u1.department_ids.iter().map(|d| d.as_str()).collect::<Vec<_>>(), ["g2"]);
    // A member leaves, a group goes.
    mapping::apply_group(
        &mut s,
        item(
            json!({"id": "g2", "members@delta": [{"@odata.type": "#microsoft.graph.user", "id": "u1", "@removed": {"reason": "deleted"}}]}),
        ),
    );
    mapping::apply_group(&mut s, item(json!({"id": "g3", "@removed": {"reason": "deleted"}})));
    let snap = mapping::snapshot(&s, DepartmentsFrom::Groups, vec![], &Default::default());
    assert!(snap.users.iter().all(|u| u.department_ids.iter().all(|d| d.as_str() != "g2")));
    assert!(snap.departments.iter().any(|d| d.source_id.as_str() == "g4"), "g4 has one parent now");
}
