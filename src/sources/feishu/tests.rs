use super::*;
use crate::config::Secret;
use crate::sources::saas::HttpSettings;
use crate::sources::saas::wire::item;
use std::time::Duration;

fn rules() -> FeishuSource {
    let http = HttpSettings {
        base_url: FEISHU_BASE.into(),
        timeout: Duration::from_secs(1),
        rate_limit: 1,
        max_retries: 0,
        token_margin: Duration::ZERO,
    };
    FeishuSource::new(FeishuConfig {
        vendor: "Feishu",
        app_id: "cli_x".into(),
        app_secret: Secret::new("s"),
        http,
        roots: vec!["0".into()],
        department_id_type: "open_department_id".into(),
        user_id_type: "union_id".into(),
        concurrency: 1,
        events: None,
    })
}

#[test]
fn the_envelope_is_checked_before_the_payload() {
    let r = rules();
    let h = HeaderMap::new();
    assert!(matches!(r.check(200, &h, br#"{"code":0,"msg":"ok","data":{}}"#), Verdict::Ok(_)));
    // Business errors behind HTTP 200.
    assert!(
        matches!(r.check(200, &h, br#"{"code":10003,"data":{},"msg":"invalid param"}"#), Verdict::Fatal { code, .. } if code == "10003")
    );
    assert!(matches!(r.check(400, &h, br#"{"code":99991663,"msg":"Invalid access token"}"#), Verdict::TokenInvalid { .. }));
    assert!(matches!(r.check(404, &h, b"404 page not found"), Verdict::Fatal { message, .. } if message.contains("not JSON")));
    assert!(matches!(r.check(502, &h, b"<html>bad gateway</html>"), Verdict::Transient { .. }));
    let mut h = HeaderMap::new();
    h.insert("x-ogw-ratelimit-reset", "3".parse().unwrap());
    let v = r.check(429, &h, br#"{"code":99991400,"msg":"request trigger frequency limit"}"#);
    assert!(matches!(v, Verdict::Throttled { wait: Some(d), .. } if d == Duration::from_secs(3)), "{v:?}");
}

#[test]
fn users_in_several_departments_are_one_user_with_the_primary_first() {
    let a = json!({"union_id": "on_1", "name": "Ann", "department_ids": ["od-a", "od-b"],
        "orders": [{"department_id": "od-a", "is_primary_dept": false}, {"department_id": "od-b", "is_primary_dept": true}],
        "status": {"is_frozen": false, "is_resigned": false}});
    let a_again = json!({"union_id": "on_1", "name": "Ann", "department_ids": ["od-c"], "status": {}});
    let frozen = json!({"union_id": "on_2", "department_ids": [], "status": {"is_frozen": true}});
    let resigned = json!({"union_id": "on_3", "department_ids": [], "status": {"is_resigned": true}});
    let (users, unreadable) = merge_users([a, a_again, frozen, resigned].map(item), "union_id", &Default::default());
    assert_eq!(unreadable, []);
    assert_eq!(users.len(), 3);
    let ids: Vec<&str> = users[0].department_ids.iter().map(|d| d.0.as_str()).collect();
    assert_eq!(ids, ["od-b", "od-a", "od-c"]);
    assert!(users[0].active && !users[1].active && !users[2].active);
}

#[test]
fn records_that_do_not_map_are_reported_by_id_where_they_have_one() {
    let no_id = json!({"open_id": "ou_9", "name": "Nobody", "department_ids": []});
    let wrong = json!({"union_id": "on_5", "email": ["a@x"], "department_ids": []});
    let wrong_status = json!({"union_id": "on_6", "status": {"is_frozen": "yes"}});
    let (users, unreadable) = merge_users([no_id, wrong, wrong_status].map(item), "union_id", &Default::default());
    assert!(users.is_empty());
    let ids: Vec<Option<&str>> = unreadable.iter().map(|u| u.source_id.as_ref().map(|s| s.0.as_str())).collect();
    assert_eq!(ids, [None, Some("on_5"), Some("on_6")]);
    assert!(unreadable[0].message.contains("without union_id") && unreadable[0].message.contains("ou_9"), "{}", unreadable[0].message);
    assert!(unreadable[1].message.contains("email is a list, not text"), "{}", unreadable[1].message);
    assert!(unreadable[2].message.contains("status.is_frozen"), "{}", unreadable[2].message);
    let unnamed = mapping::department(
        item(json!({"open_department_id": "od-1", "parent_department_id": "0"})),
        "open_department_id",
        "0",
        &Default::default(),
    );
    assert!(unnamed.unwrap_err().message.contains("od-1: no name"));
    let top = mapping::department(
        item(json!({"open_department_id": "od-2", "name": "R&D", "parent_department_id": "0", "order": "5"})),
        "open_department_id",
        "0",
        &Default::default(),
    );
    let top = top.unwrap();
    assert_eq!((top.parent_id, top.order), (None, 5));
}
