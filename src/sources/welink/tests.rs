use super::*;
use crate::config::Secret;
use crate::model::UserField;
use crate::sources::saas::HttpSettings;
use crate::sources::saas::wire::item;

fn rules() -> WeLinkSource {
    let http = HttpSettings {
        base_url: WELINK_BASE.into(),
        timeout: std::time::Duration::from_secs(1),
        rate_limit: 1,
        max_retries: 0,
        token_margin: std::time::Duration::ZERO,
    };
    WeLinkSource::new(WeLinkConfig {
        client_id: "c".into(),
        client_secret: Secret::new("s"),
        http,
        roots: vec!["0".into()],
        concurrency: 1,
        events: None,
    })
}

#[test]
fn the_envelope_is_judged_before_the_payload_with_string_or_integer_codes() {
    let r = rules();
    let h = HeaderMap::new();
    assert!(matches!(r.check(200, &h, br#"{"code":"0","message":"OK","departmentInfo":[]}"#), Verdict::Ok(_)));
    assert!(matches!(r.check(200, &h, br#"{"code":0,"message":"OK","data":[]}"#), Verdict::Ok(_)), "an integer code on user lists");
    assert!(matches!(r.check(200, &h, br#"{"code":"48503","message":"too many requests"}"#), Verdict::Throttled { .. }));
    assert!(matches!(r.check(200, &h, br#"{"code":"47101","message":"token format error"}"#), Verdict::TokenInvalid { .. }));
    assert!(matches!(r.check(200, &h, br#"{"code":41500,"message":"token error"}"#), Verdict::TokenInvalid { .. }));
    for code in ["41403", "10007", "47000"] {
        let body = format!(r#"{{"code":"{code}","message":"x"}}"#);
        assert!(matches!(r.check(200, &h, body.as_bytes()), Verdict::Fatal { .. }), "{code} is final");
    }
    assert!(matches!(r.check(501, &h, "第三方接口无权限".as_bytes()), Verdict::Fatal { code, .. } if code == "501"));
    assert!(matches!(r.check(200, &h, r#"{"code":"501","message":"第三方接口无权限"}"#.as_bytes()), Verdict::Fatal { .. }));
    assert!(matches!(r.check(502, &h, b"<html>bad gateway</html>"), Verdict::Transient { .. }));
    assert!(r.hint("10007").unwrap().contains("source.client_secret"));
    assert!(r.hint("41403").unwrap().contains("not retried"));
}

#[test]
fn a_user_maps_with_its_own_department_first_a_normalised_mobile_and_its_status() {
    let u = json!({"userStatus": "3", "userId": "zhangsan1@welink", "deptCode": "10001", "deptNameCn": "测试部门",
        "mobileNumber": "+86-15811847236", "phoneNumber": "+86-15811847236", "landlineNumber": "0755-88888888",
        "userNameCn": "张三", "userNameEn": "zhangshan", "sex": "M", "corpUserId": "36188", "userEmail": "zhangshan4@126.com"});
    let got = mapping::user(item(u.clone()), "10002", &Default::default()).unwrap();
    assert_eq!((got.source_id.as_str(), got.username.as_deref()), ("zhangsan1@welink", Some("zhangsan1@welink")));
    assert_eq!(got.name.as_deref(), Some("张三"));
    assert_eq!(got.mobile.as_deref(), Some("+8615811847236"));
    assert_eq!(got.employee_no.as_deref(), Some("36188"));
    assert_eq!(got.department_ids.iter().map(|d| d.as_str()).collect::<Vec<_>>(), ["10001", "10002"]);
    assert!(got.active);
    assert!(got.is_absent(UserField::Title), "no position in the list");
    for status in ["1", "2", "4"] {
        let mut u = u.clone();
        u["userStatus"] = json!(status);
        assert!(!mapping::user(item(u), "10001", &Default::default()).unwrap().active, "status {status}");
    }
    let e = mapping::user(item(json!({"userNameCn": "无名", "corpUserId": "9"})), "1", &Default::default()).unwrap_err();
    assert!(e.source_id.is_none() && e.message.contains("without userId") && e.message.contains("无名"), "{e:?}");
    let e = mapping::user(item(json!({"userId": "a@t", "userEmail": ["x"]})), "1", &Default::default()).unwrap_err();
    assert_eq!(e.source_id.as_ref().map(|s| s.as_str()), Some("a@t"));
}

#[test]
fn departments_map_with_string_codes_and_roots_as_no_parent() {
    let roots = vec!["0".to_owned()];
    let d =
        json!({"deptCode": "1", "deptNameCn": "产品销售部", "deptNameEn": "Sales Dept", "fatherCode": "0", "deptLevel": "2", "orderNo": 1});
    let got = mapping::department(item(d), &roots, &Default::default()).unwrap();
    assert_eq!((got.source_id.as_str(), got.name.as_str(), got.parent_id, got.order), ("1", "产品销售部", None, 1));
    let child = mapping::department(
        item(json!({"deptCode": "11", "deptNameEn": "Sub", "fatherCode": "1", "orderNo": "2"})),
        &roots,
        &Default::default(),
    )
    .unwrap();
    assert_eq!((child.name.as_str(), child.parent_id.as_ref().map(|p| p.as_str()), child.order), ("Sub", Some("1"), 2));
    assert!(
        mapping::department(item(json!({"deptCode": "12", "fatherCode": "1"})), &roots, &Default::default())
            .unwrap_err()
            .message
            .contains("12: no name")
    );
}

#[test]
fn mobiles_become_e164() {
    assert_eq!(mapping::mobile("+86-15811847236"), "+8615811847236");
    assert_eq!(mapping::mobile("+1 (415) 555-0100"), "+14155550100");
    assert_eq!(mapping::mobile("15811847236"), "15811847236");
}
