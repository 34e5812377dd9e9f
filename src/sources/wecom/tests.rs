use super::*;
use crate::config::Secret;
use crate::sources::saas::HttpSettings;
use crate::sources::saas::wire::item;

fn rules() -> WeComSource {
    let http = HttpSettings {
        base_url: WECOM_BASE.into(),
        timeout: std::time::Duration::from_secs(1),
        rate_limit: 1,
        max_retries: 0,
        token_margin: std::time::Duration::ZERO,
    };
    WeComSource::new(WeComConfig {
        corp_id: "ww1".into(),
        corp_secret: Secret::new("s"),
        http,
        api: Api::Simplelist,
        roots: vec![1],
        page_size: 10000,
        concurrency: 1,
        events: None,
    })
}

#[test]
fn the_envelope_is_checked_before_the_payload() {
    let r = rules();
    let h = HeaderMap::new();
    assert!(matches!(r.check(200, &h, br#"{"errcode":0,"errmsg":"ok","userlist":[]}"#), Verdict::Ok(_)));
    for code in ["40014", "42001"] {
        let body = format!(r#"{{"errcode":{code},"errmsg":"invalid access_token"}}"#);
        assert!(matches!(r.check(200, &h, body.as_bytes()), Verdict::TokenInvalid { .. }), "{code}");
    }
    for code in ["45009", "45033"] {
        let body = format!(r#"{{"errcode":{code},"errmsg":"api freq out of limit"}}"#);
        assert!(matches!(r.check(200, &h, body.as_bytes()), Verdict::Throttled { .. }), "{code}");
    }
    assert!(matches!(r.check(200, &h, br#"{"errcode":-1,"errmsg":"system busy"}"#), Verdict::Transient { .. }));
    let v = r.check(200, &h, br#"{"errcode":60020,"errmsg":"not allow to access from your ip, hint: [x], from ip: 10.0.0.1"}"#);
    assert!(matches!(&v, Verdict::Fatal { code, .. } if code == "60020"), "{v:?}");
    assert!(r.hint("60020").unwrap().contains("IP is not trusted"));
    assert!(matches!(r.check(502, &h, b"<html>bad gateway</html>"), Verdict::Transient { .. }));
}

#[test]
fn a_user_maps_with_the_main_department_first_and_status() {
    let u = json!({"userid": "zhangsan", "name": "李四", "department": [1, 2], "order": [1, 2], "position": "后台工程师",
        "mobile": "13800000000", "gender": "1", "email": "", "biz_mail": "zhangsan@qyycs2.wecom.work", "is_leader_in_dept": [1, 0],
        "alias": "jackzhang", "status": 1, "main_department": 2});
    let got = mapping::user(item(u.clone()), &Default::default()).unwrap();
    assert_eq!(got.username.as_deref(), Some("zhangsan"));
    assert_eq!(got.email.as_deref(), Some("zhangsan@qyycs2.wecom.work"), "an empty email falls back to biz_mail");
    let ids: Vec<&str> = got.department_ids.iter().map(|d| d.0.as_str()).collect();
    assert_eq!(ids, ["2", "1"]);
    assert!(got.active);
    for status in [2, 4, 5] {
        let mut u = u.clone();
        u["status"] = status.into();
        assert!(!mapping::user(item(u.clone()), &Default::default()).unwrap().active, "status {status}");
    }
    // Apps created after 2022-06-20 get neither email nor mobile.
    let bare = mapping::user(item(json!({"userid": "u2", "name": "N", "department": [3], "status": 1})), &Default::default()).unwrap();
    assert_eq!((bare.email, bare.mobile), (None, None));
}

#[test]
fn records_that_do_not_map_are_reported_by_id_where_they_have_one() {
    let e = mapping::user(item(json!({"name": "N", "status": 1})), &Default::default()).unwrap_err();
    assert!(e.source_id.is_none() && e.message.contains("without userid"), "{e:?}");
    let e = mapping::user(item(json!({"userid": "u1", "status": "active"})), &Default::default()).unwrap_err();
    assert_eq!(e.source_id.as_ref().map(|s| s.0.as_str()), Some("u1"));
    let roots = HashSet::from([1]);
    let d =
        mapping::department(5, item(json!({"id": 5, "parentid": 1, "name": "R&D", "order": 100})), &roots, &Default::default()).unwrap();
    assert_eq!((d.parent_id, d.order), (None, -100));
    assert!(
        mapping::department(6, item(json!({"id": 6, "parentid": 1})), &roots, &Default::default())
            .unwrap_err()
            .message
            .contains("6: no name")
    );
}
