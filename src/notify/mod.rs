//! Run notifications: after a run is recorded, each `[[notify]]` channel
//! hears of a failure, a partial run, deletions held back by the guard, or
//! a recovery, in the chat tool the admins use (a Feishu, DingTalk or WeCom
//! group bot, or any webhook).
//!
//! - Which condition a run is ([`condition`]), and whether a channel
//!   announces it ([`decide`]), are pure. A condition is not announced
//!   again within `min_interval`; a change of condition is announced at
//!   once. The last announcement per channel is kept in the mirror, so a
//!   restart stays silent.
//! - Sending never delays or fails a run: the run is recorded first, each
//!   channel gets at most its `timeout` (retries with backoff inside it),
//!   and failures are logged and counted (`orgsync_notifications_total`).
//! - The vendors' answers are checked (`code` / `StatusCode` / `errcode`).
//! - Webhook URLs and signing secrets are secrets: never logged, never in
//!   errors, `/status` or the mirror.

mod message;

pub use message::Message;

use crate::clock::Clock;
use crate::config::notify::{Condition, NotifyConfig, NotifyKind};
use crate::mirror::{Mirror, RunRecord, RunStatus};
use backon::{ExponentialBuilder, Retryable};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::time::Duration;

/// What a run is worth announcing; `None` for a run that succeeded.
pub fn condition(record: &RunRecord) -> Option<Condition> {
    if record.count(None, "held_back") > 0 {
        return Some(Condition::HeldBack);
    }
    match record.status {
        RunStatus::Failed => Some(Condition::Failed),
        RunStatus::Partial => Some(Condition::Partial),
        _ => None,
    }
}

/// The last announcement on a channel: its condition and when.
pub type Last = Option<(Condition, DateTime<Utc>)>;

/// Whether `channel` announces a run of condition `now_is` (`None`:
/// succeeded), given its last announcement, and what to remember.
pub fn decide(channel: &NotifyConfig, now_is: Option<Condition>, last: Last, now: DateTime<Utc>) -> (Option<Condition>, Last) {
    match now_is {
        // A success after an announced problem is a recovery (said when
        // the channel announces recoveries; either way the problem is over).
        None => match last {
            Some((c, _)) if c != Condition::Recovered => {
                let say = channel.on.contains(&Condition::Recovered).then_some(Condition::Recovered);
                (say, say.map(|c| (c, now)))
            }
            _ => (None, last),
        },
        Some(c) if !channel.on.contains(&c) => (None, last),
        Some(c) => {
            let quiet =
                last.is_some_and(|(was, at)| was == c && now - at < chrono::Duration::from_std(channel.min_interval).unwrap_or_default());
            if quiet { (None, last) } else { (Some(c), Some((c, now))) }
        }
    }
}

type HmacSha256 = Hmac<Sha256>;

/// Feishu's custom bot signature: HMAC-SHA256 keyed with
/// `timestamp + "\n" + secret` over nothing, in base64.
pub fn feishu_sign(secret: &str, timestamp: i64) -> String {
    let Ok(mut mac) = HmacSha256::new_from_slice(format!("{timestamp}\n{secret}").as_bytes()) else { return String::new() };
    mac.update(b"");
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// DingTalk's robot signature: HMAC-SHA256 keyed with the secret over
/// `timestamp_ms + "\n" + secret`, in base64 (URL-encoded by the caller).
pub fn dingtalk_sign(secret: &str, timestamp_ms: i64) -> String {
    let Ok(mut mac) = HmacSha256::new_from_slice(secret.as_bytes()) else { return String::new() };
    mac.update(format!("{timestamp_ms}\n{secret}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The request for one channel: the URL (with DingTalk's signature) and the JSON body.
pub fn request(channel: &NotifyConfig, msg: &Message, now: DateTime<Utc>) -> (String, Value) {
    let text = msg.text(channel.language);
    let url = channel.url.expose().to_owned();
    match channel.kind {
        NotifyKind::Webhook => (url, msg.json()),
        NotifyKind::Feishu => {
            let mut body = json!({"msg_type": "text", "content": {"text": text}});
            if let Some(s) = &channel.secret {
                let ts = now.timestamp();
                body["timestamp"] = json!(ts.to_string());
                body["sign"] = json!(feishu_sign(s.expose(), ts));
            }
            (url, body)
        }
        NotifyKind::DingTalk => {
            let url = match &channel.secret {
                Some(s) => {
                    let ts = now.timestamp_millis();
                    let sign: String = url::form_urlencoded::byte_serialize(dingtalk_sign(s.expose(), ts).as_bytes()).collect();
                    format!("{url}{}timestamp={ts}&sign={sign}", if url.contains('?') { '&' } else { '?' })
                }
                None => url,
            };
            (url, json!({"msgtype": "text", "text": {"content": text}}))
        }
        NotifyKind::WeCom => (url, json!({"msgtype": "text", "text": {"content": text}})),
    }
}

/// Judge a vendor's answer: the HTTP status, then the body's own code.
pub fn judge(kind: NotifyKind, status: u16, body: &[u8]) -> Result<(), String> {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if !(200..300).contains(&status) {
        return Err(format!("HTTP {status}"));
    }
    let (code, message) = match kind {
        NotifyKind::Webhook => return Ok(()),
        NotifyKind::Feishu => {
            let code = v.get("code").or_else(|| v.get("StatusCode")).and_then(Value::as_i64);
            (code, v.get("msg").or_else(|| v.get("StatusMessage")).and_then(Value::as_str))
        }
        NotifyKind::DingTalk | NotifyKind::WeCom => (v.get("errcode").and_then(Value::as_i64), v.get("errmsg").and_then(Value::as_str)),
    };
    match code {
        Some(0) => Ok(()),
        Some(c) => Err(format!("code {c}: {}", crate::redact::excerpt(message.unwrap_or_default(), 200))),
        None => Err("an answer without a code".into()),
    }
}

/// Send one message on one channel, retrying within its timeout.
pub async fn send(channel: &NotifyConfig, msg: &Message, now: DateTime<Utc>) -> Result<(), String> {
    let http = reqwest::Client::builder()
        .timeout(channel.timeout)
        .user_agent(concat!("orgsync/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let (url, body) = request(channel, msg, now);
    let once = || async {
        let resp = http
            .post(&url)
            .json(&body)
            .send()
            .await
            .map_err(|e| if e.is_timeout() { "timed out".to_owned() } else { "cannot connect".to_owned() })?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|_| "cannot read the answer".to_owned())?;
        judge(channel.kind, status, &bytes)
    };
    let attempts = ExponentialBuilder::default().with_min_delay(Duration::from_millis(200)).with_max_times(2).with_jitter();
    let result = tokio::time::timeout(channel.timeout, once.retry(attempts))
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {:?}", channel.timeout)));
    let outcome = if result.is_ok() { "ok" } else { "failed" };
    metrics::counter!(crate::telemetry::m::NOTIFICATIONS_TOTAL, "kind" => channel.kind.as_str(), "outcome" => outcome).increment(1);
    result.map_err(|e| crate::redact::redact(&e).into_owned())
}

/// The mirror's key for a channel: its place and kind (never its URL).
fn key(i: usize, channel: &NotifyConfig) -> String {
    format!("{i}:{}", channel.kind.as_str())
}

/// After a run is recorded: tell each channel what it announces.
pub async fn after_run(
    channels: &[NotifyConfig],
    mirror: &Mirror,
    record: &RunRecord,
    source: &str,
    public_url: Option<&str>,
    clock: &dyn Clock,
) {
    if channels.is_empty() {
        return;
    }
    let now = clock.now();
    let now_is = condition(record);
    let errors = if now_is.is_some() { mirror.items(record.id).unwrap_or_default() } else { Vec::new() };
    for (i, channel) in channels.iter().enumerate() {
        let k = key(i, channel);
        let last = mirror.notified(&k).unwrap_or(None);
        let (say, remember) = decide(channel, now_is, last, now);
        let Some(c) = say else {
            if remember != last
                && let Err(e) = mirror.set_notified(&k, remember)
            {
                tracing::warn!(error = %e, "Could not keep the notification state");
            }
            continue;
        };
        let msg = Message::new(c, record, source, &errors, public_url);
        match send(channel, &msg, now).await {
            Ok(()) => {
                tracing::info!(channel = %k, condition = c.as_str(), run = %record.id, "Notified");
                if let Err(e) = mirror.set_notified(&k, remember) {
                    tracing::warn!(error = %e, "Could not keep the notification time");
                }
            }
            Err(e) => tracing::warn!(channel = %k, condition = c.as_str(), error = %e, "Could not notify"),
        }
    }
}

#[cfg(test)]
mod tests;
