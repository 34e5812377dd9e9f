use super::*;
use crate::config::Secret;
use crate::config::notify::Language;

fn channel(on: &[Condition]) -> NotifyConfig {
    NotifyConfig {
        kind: NotifyKind::Webhook,
        url: Secret::new("https://hooks.example.test/x"),
        secret: None,
        on: on.to_vec(),
        min_interval: Duration::from_secs(3600),
        timeout: Duration::from_secs(1),
        language: Language::En,
    }
}

fn at(minutes: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + minutes * 60, 0).unwrap()
}

#[test]
fn a_condition_is_said_once_per_interval_a_change_at_once_and_a_recovery_after_a_problem() {
    let c = channel(&[Condition::Failed, Condition::Recovered, Condition::HeldBack]);
    let (say, last) = decide(&c, Some(Condition::Failed), None, at(0));
    assert_eq!(say, Some(Condition::Failed));
    assert_eq!(decide(&c, Some(Condition::Failed), last, at(30)).0, None, "within min_interval");
    assert_eq!(decide(&c, Some(Condition::Failed), last, at(61)).0, Some(Condition::Failed), "after it");
    assert_eq!(decide(&c, Some(Condition::HeldBack), last, at(5)).0, Some(Condition::HeldBack), "a change: at once");
    let (say, last) = decide(&c, None, last, at(10));
    assert_eq!(say, Some(Condition::Recovered));
    assert_eq!(decide(&c, None, last, at(11)).0, None, "recovered once");
    assert_eq!(decide(&c, Some(Condition::Partial), None, at(0)).0, None, "partial is not in `on`");
    assert_eq!(decide(&c, None, None, at(0)), (None, None), "a success with nothing before");
    // Recoveries not announced: the problem is still over.
    let quiet = channel(&[Condition::Failed]);
    let (_, last) = decide(&quiet, Some(Condition::Failed), None, at(0));
    assert_eq!(decide(&quiet, None, last, at(1)), (None, None));
}

#[test]
fn signatures_follow_the_vendors_documented_algorithms() {
    use base64::Engine as _;
    use hmac::Mac;
    // Feishu: key = timestamp + "\n" + secret, message empty.
    let mut mac = HmacSha256::new_from_slice(b"1700000000\nsecret").unwrap();
    mac.update(b"");
    assert_eq!(feishu_sign("secret", 1_700_000_000), base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()));
    // DingTalk: key = secret, message = timestamp_ms + "\n" + secret.
    let mut mac = HmacSha256::new_from_slice(b"SECabc").unwrap();
    mac.update(b"1700000000000\nSECabc");
    assert_eq!(dingtalk_sign("SECabc", 1_700_000_000_000), base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()));
    let mut ding = channel(&[]);
    ding.kind = NotifyKind::DingTalk;
    ding.url = Secret::new("https://oapi.dingtalk.com/robot/send?access_token=T");
    ding.secret = Some(Secret::new("SECabc"));
    let (url, body) = request(&ding, &Message::test("file"), at(0));
    assert!(url.starts_with("https://oapi.dingtalk.com/robot/send?access_token=T&timestamp=1800000000000&sign="), "{url}");
    assert_eq!(body["msgtype"], "text");
}

#[test]
fn vendor_answers_are_judged_by_their_codes() {
    assert!(judge(NotifyKind::Feishu, 200, br#"{"code":0,"msg":"success"}"#).is_ok());
    assert!(judge(NotifyKind::Feishu, 200, br#"{"StatusCode":0,"StatusMessage":"success"}"#).is_ok());
    let e =
        judge(NotifyKind::Feishu, 200, br#"{"code":19021,"msg":"sign match fail or timestamp is not within one hour from current time"}"#);
    assert!(e.unwrap_err().contains("19021"));
    assert!(
        judge(NotifyKind::DingTalk, 200, br#"{"errcode":310000,"errmsg":"keywords not in content"}"#).unwrap_err().contains("keywords")
    );
    assert!(judge(NotifyKind::WeCom, 200, br#"{"errcode":0,"errmsg":"ok"}"#).is_ok());
    assert_eq!(judge(NotifyKind::Webhook, 500, b"x").unwrap_err(), "HTTP 500");
}
