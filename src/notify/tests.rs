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
    let (url, body) = request(&ding, &Message::test("file", "sync-01"), at(0));
    assert!(url.starts_with("https://oapi.dingtalk.com/robot/send?access_token=T&timestamp=1800000000000&sign="), "{url}");
    assert_eq!(body["msgtype"], "text");
}

#[test]
fn vendor_answers_are_judged_by_their_codes() {
    assert!(judge(NotifyKind::Feishu, 200, br#"{"code":0,"msg":"success"}"#).is_ok());
    assert!(judge(NotifyKind::Feishu, 200, br#"{"StatusCode":0,"StatusMessage":"success"}"#).is_ok());
    let e =
        judge(NotifyKind::Feishu, 200, br#"{"code":19021,"msg":"sign match fail or timestamp is not within one hour from current time"}"#);
    assert!(e.unwrap_err().message.contains("19021"));
    let e = judge(NotifyKind::DingTalk, 200, br#"{"errcode":310000,"errmsg":"keywords not in content"}"#).unwrap_err();
    assert!(e.message.contains("keywords") && !e.transient, "a wrong signature or keyword is not retried: {e:?}");
    assert!(judge(NotifyKind::WeCom, 200, br#"{"errcode":0,"errmsg":"ok"}"#).is_ok());
    assert_eq!(judge(NotifyKind::Webhook, 500, b"x").unwrap_err(), SendError { message: "HTTP 500".into(), transient: true });
    // Rate limits are refusals too; a non-2xx keeps the vendor's code and message.
    let e = judge(NotifyKind::WeCom, 200, br#"{"errcode":45009,"errmsg":"api freq out of limit"}"#).unwrap_err();
    assert!(!e.transient && e.message.contains("45009"), "{e:?}");
    let e = judge(NotifyKind::Feishu, 400, br#"{"code":9499,"msg":"Bad Request"}"#).unwrap_err();
    assert_eq!(e, SendError { message: "HTTP 400: code 9499: Bad Request".into(), transient: false });
    assert!(judge(NotifyKind::Feishu, 503, b"<html>busy</html>").unwrap_err().transient);
}

#[test]
fn a_long_text_is_cut_to_the_vendors_limit_in_bytes_with_a_marker() {
    let chinese = "同步失败：".repeat(400); // 15 bytes each: 6,000 bytes, 2,000 characters
    let cut = fit(&chinese, 2048);
    assert!(cut.len() <= 2048, "{} bytes", cut.len());
    assert!(cut.ends_with("more bytes cut)"), "{cut}");
    let left: usize = cut.rsplit_once("… (").unwrap().1.split(' ').next().unwrap().parse().unwrap();
    assert_eq!(cut.rsplit_once("\n…").unwrap().0.len() + left, chinese.len(), "the count is what was left out");
    assert_eq!(fit("short", 2048), "short");
    // A WeCom message with long errors stays within 2,048 bytes.
    let mut wecom = channel(&[]);
    wecom.kind = NotifyKind::WeCom;
    let mut msg = Message::test("dingtalk", "sync-01");
    msg.status = "failed".into();
    msg.condition = Condition::Failed;
    msg.errors = vec![chinese.clone(), "x".repeat(5000)];
    let (_, body) = request(&wecom, &msg, at(0));
    assert!(body["text"]["content"].as_str().unwrap().len() <= 2048);
}

#[test]
fn a_message_names_its_instance_and_the_next_step_that_works_where_it_ran() {
    use crate::mirror::{RunId, RunRecord};
    let record = RunRecord {
        id: RunId(7),
        trigger: "schedule".into(),
        started_at: String::new(),
        finished_at: None,
        status: crate::mirror::RunStatus::Partial,
        counts: [("user.delete.held_back".to_owned(), 30)].into(),
        message: None,
        objects: None,
    };
    let origin = Origin { source: "file", instance: "sync-01", public_url: None, service: true };
    let msg = Message::new(Condition::HeldBack, &record, origin, &[]);
    let text = msg.text(Language::En);
    assert!(text.starts_with("orgsync on sync-01:"), "{text}");
    assert!(text.contains("orgsync trigger --allow-deletes"), "the service holds the lock: {text}");
    let one_shot = Message::new(Condition::HeldBack, &record, Origin { service: false, ..origin }, &[]);
    assert!(one_shot.text(Language::Zh).contains("orgsync sync --allow-deletes"));
    assert_eq!(msg.json()["instance"], "sync-01");
}

/// A held-back set an admin rejected is silent, but not the rest of the run.
#[test]
fn a_rejected_held_back_run_still_says_what_else_went_wrong() {
    use crate::mirror::{RunId, RunRecord, RunStatus};
    let record = |status, counts: &[(&str, u64)]| RunRecord {
        id: RunId(7),
        trigger: "schedule".into(),
        started_at: "2026-12-03T00:00:00Z".into(),
        finished_at: Some("2026-12-03T00:00:01Z".into()),
        status,
        counts: counts.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect(),
        message: None,
        objects: None,
    };
    let held = [("user.delete.held_back", 3)];
    assert_eq!(super::condition(&record(RunStatus::Partial, &held)), Some(Condition::HeldBack));
    assert_eq!(super::beyond_held(&record(RunStatus::Partial, &held)), None);
    assert_eq!(super::beyond_held(&record(RunStatus::Partial, &[held[0], ("user.update.failed", 1)])), Some(Condition::Partial));
    assert_eq!(super::beyond_held(&record(RunStatus::Failed, &held)), Some(Condition::Failed));
}
