use super::*;
use crate::config::Secret;
use crate::sources::saas::HttpSettings;
use crate::sources::saas::wire::item;
use std::time::Duration;

fn rules() -> DingTalkSource {
    let http = HttpSettings {
        base_url: DINGTALK_BASE.into(),
        timeout: Duration::from_secs(1),
        rate_limit: 1,
        max_retries: 0,
        token_margin: Duration::ZERO,
    };
    DingTalkSource::new(DingTalkConfig {
        app_key: "ding_x".into(),
        app_secret: Secret::new("s"),
        agent_id: None,
        http,
        roots: vec![1],
        user_id_type: "userid".into(),
        concurrency: 1,
        events: None,
    })
}

#[test]
fn the_envelope_is_checked_before_the_payload() {
    let r = rules();
    let h = HeaderMap::new();
    assert!(matches!(r.check(200, &h, br#"{"errcode":0,"errmsg":"ok","result":{}}"#), Verdict::Ok(_)));
    // Recorded token errors: errcode 88 with sub_code 40014, and 40014 directly.
    let v = r.check(200, &h, r#"{"errcode":88,"sub_code":"40014","sub_msg":"不合法的access_token","errmsg":"ding talk error[subcode=40014,submsg=不合法的access_token]","request_id":"x"}"#.as_bytes());
    assert!(matches!(&v, Verdict::TokenInvalid { code, message } if code == "40014" && message == "不合法的access_token"), "{v:?}");
    assert!(matches!(r.check(200, &h, br#"{"errcode":40014,"errmsg":"invalid access_token"}"#), Verdict::TokenInvalid { .. }));
    for code in ["90002", "90018", "90019"] {
        let body = format!(r#"{{"errcode":{code},"errmsg":"qps"}}"#);
        assert!(matches!(r.check(200, &h, body.as_bytes()), Verdict::Throttled { .. }), "{code}");
    }
    assert!(matches!(r.check(200, &h, br#"{"errcode":-1,"errmsg":"busy"}"#), Verdict::Transient { .. }));
    let v = r.check(200, &h, br#"{"errcode":88,"sub_code":"60011","sub_msg":"no permission","errmsg":"x"}"#);
    assert!(matches!(&v, Verdict::Fatal { code, .. } if code == "60011"), "{v:?}");
    let v = r.check(200, &h, br#"{"status":1111,"wait":5,"source":"x5","punish":"deny","uuid":"u"}"#);
    assert!(matches!(&v, Verdict::Fatal { code, message } if code == "1111" && message.contains("5 minutes")), "{v:?}");
    assert!(matches!(r.check(404, &h, b"<html>404</html>"), Verdict::Fatal { message, .. } if message.contains("not JSON")));
    assert!(matches!(r.check(502, &h, b"bad gateway"), Verdict::Transient { .. }));
}

#[test]
fn a_listed_user_maps_with_departments_by_order_and_int64_ids() {
    let u = json!({"userid": "zhangsan", "unionid": "z21H", "name": "张三", "state_code": "86", "mobile": "18513027676",
        "job_number": "4", "title": "技术总监", "email": "p@x.test", "org_email": "test@xxx.com",
        "dept_id_list": [1, 9007199254740993_i64, 3], "active": false});
    let order: HashMap<&str, i64> = [("9007199254740993", 5), ("3", 1)].into_iter().collect();
    let got = mapping::user(item(u.clone()), "userid", &order, &Default::default()).unwrap();
    assert_eq!(got.source_id.0, "zhangsan");
    assert_eq!(got.email.as_deref(), Some("test@xxx.com"), "the organisation email first");
    assert_eq!(got.mobile.as_deref(), Some("+86 18513027676"));
    let ids: Vec<&str> = got.department_ids.iter().map(|d| d.0.as_str()).collect();
    assert_eq!(ids, ["3", "9007199254740993", "1"], "by department order, exact int64, the root last");
    assert!(got.active, "`active` is app activation, not employment");
    assert_eq!(mapping::user(item(u), "unionid", &order, &Default::default()).unwrap().source_id.0, "z21H");
}

#[test]
fn records_that_do_not_map_are_reported_by_id_where_they_have_one() {
    let order = HashMap::new();
    let e = mapping::user(item(json!({"unionid": "z", "name": "Zed"})), "userid", &order, &Default::default()).unwrap_err();
    assert!(e.source_id.is_none() && e.message.contains("without userid") && e.message.contains("Zed"), "{e:?}");
    let e = mapping::user(item(json!({"userid": "u1", "dept_id_list": [true]})), "userid", &order, &Default::default()).unwrap_err();
    assert_eq!(e.source_id.as_ref().map(|s| s.0.as_str()), Some("u1"));
    assert!(e.message.contains("dept_id_list[0] is a boolean, not text"), "{e:?}");
    let e = mapping::department(7, None, item(json!({"name": {"zh": "x"}})), &Default::default()).unwrap_err();
    assert!(e.message.contains("department 7: name is a table"), "{e:?}");
}
