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
//! - An announcement is claimed in the mirror before it is sent (a
//!   compare-and-set on the channel's last announcement), so however slow
//!   the bot or frequent the runs, a condition is announced once per
//!   channel within `min_interval`; a send that fails gives the claim back.
//! - Sending never delays or fails a run: the run is recorded first, the
//!   channels are sent to at once, each gets at most its `timeout`, and
//!   failures are logged and counted (`orgsync_notifications_total`). Only
//!   transport errors and 5xx are retried (with backoff, inside the
//!   timeout): a vendor's refusal (a wrong signature, a rate limit) is not.
//! - The vendors' answers are checked (`code` / `StatusCode` / `errcode`),
//!   on any HTTP status, and their code and message kept in the error.
//! - Each vendor's documented size limit is kept in bytes (WeCom text 2,048;
//!   Feishu's request body 20 KB; DingTalk text 20,000): a longer text is
//!   cut, with a marker saying how much was left out.
//! - Webhook URLs and signing secrets are secrets: never logged, never in
//!   errors, `/status` or the mirror.

mod message;

pub use message::{Message, Origin};

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
    if record.count(None, crate::reconcile::Outcome::HeldBack) > 0 {
        return Some(Condition::HeldBack);
    }
    match record.status {
        RunStatus::Failed => Some(Condition::Failed),
        RunStatus::Partial => Some(Condition::Partial),
        _ => None,
    }
}

/// What a run is worth announcing besides its held-back deletions.
fn beyond_held(record: &RunRecord) -> Option<Condition> {
    use crate::reconcile::Outcome::{Conflict, Failed, Invalid, NotAttempted, Refused};
    if record.status == RunStatus::Failed {
        return Some(Condition::Failed);
    }
    let problems: u64 = [Failed, Refused, NotAttempted, Invalid, Conflict].into_iter().map(|o| record.count(None, o)).sum();
    (problems > 0).then_some(Condition::Partial)
}

use crate::mirror::Last;

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

/// The most bytes of text a vendor takes in one message (UTF-8).
/// WeCom: a text message's `content` is at most 2,048 bytes (errcode
/// 40058 beyond). Feishu: the whole request body is at most 20 KB; the
/// text keeps 2 KB clear of it for the envelope and JSON escapes.
/// DingTalk: a text message's content at most 20,000 bytes.
pub fn max_bytes(kind: NotifyKind) -> Option<usize> {
    match kind {
        NotifyKind::WeCom => Some(2048),
        NotifyKind::Feishu => Some(18 * 1024),
        NotifyKind::DingTalk => Some(20_000),
        NotifyKind::Webhook => None,
    }
}

/// `text` within `max` bytes: cut at a character boundary, ending with a
/// marker that says how many bytes were left out.
pub fn fit(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    // The marker's own length depends on the count; leave room for the largest.
    let marker = |n: usize| format!("\n… ({n} more bytes cut)");
    let room = max.saturating_sub(marker(text.len()).len());
    let mut cut = room.min(text.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{}", &text[..cut], marker(text.len() - cut))
}

/// The request for one channel: the URL (with DingTalk's signature) and the JSON body.
pub fn request(channel: &NotifyConfig, msg: &Message, now: DateTime<Utc>) -> (String, Value) {
    let text = msg.text(channel.language);
    let text = match max_bytes(channel.kind) {
        Some(max) => fit(&text, max),
        None => text,
    };
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

/// Why a message did not get through, and whether trying again may help.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    pub message: String,
    /// A transport error or a 5xx: retried. A vendor's refusal is not.
    pub transient: bool,
}

impl SendError {
    fn permanent(message: impl Into<String>) -> Self {
        Self { message: message.into(), transient: false }
    }
}

/// Judge a vendor's answer: the body's own code (on any HTTP status), then
/// the status.
pub fn judge(kind: NotifyKind, status: u16, body: &[u8]) -> Result<(), SendError> {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let (code, message) = match kind {
        NotifyKind::Webhook => (None, None),
        NotifyKind::Feishu => {
            let code = v.get("code").or_else(|| v.get("StatusCode")).and_then(Value::as_i64);
            (code, v.get("msg").or_else(|| v.get("StatusMessage")).and_then(Value::as_str))
        }
        NotifyKind::DingTalk | NotifyKind::WeCom => (v.get("errcode").and_then(Value::as_i64), v.get("errmsg").and_then(Value::as_str)),
    };
    let said = code.filter(|c| *c != 0).map(|c| format!("code {c}: {}", crate::redact::excerpt(message.unwrap_or_default(), 200)));
    if !(200..300).contains(&status) {
        let message = match said {
            Some(s) => format!("HTTP {status}: {s}"),
            None => format!("HTTP {status}"),
        };
        return Err(SendError { message, transient: status >= 500 });
    }
    match (kind, code, said) {
        (NotifyKind::Webhook, _, _) | (_, Some(0), _) => Ok(()),
        (_, _, Some(s)) => Err(SendError::permanent(s)),
        _ => Err(SendError::permanent("an answer without a code")),
    }
}

/// Send one message on one channel, retrying within its timeout.
pub async fn send(channel: &NotifyConfig, msg: &Message, now: DateTime<Utc>) -> Result<(), SendError> {
    let http = crate::http_client::builder(channel.timeout)
        .build()
        .map_err(|e| SendError::permanent(format!("cannot build the HTTP client: {e}")))?;
    let (url, body) = request(channel, msg, now);
    let transient = |message: &str| SendError { message: message.to_owned(), transient: true };
    // What the last attempt got: said when the timeout cuts the retries
    // short (a 500, not "no answer", is what the admin needs to hear).
    let last = std::sync::Mutex::new(None::<String>);
    let once = || async {
        let attempt = async {
            let resp = http
                .post(&url)
                .json(&body)
                .send()
                .await
                .map_err(|e| transient(if e.is_timeout() { "timed out" } else { "cannot connect" }))?;
            let status = resp.status().as_u16();
            let bytes = resp.bytes().await.map_err(|_| transient("cannot read the answer"))?;
            judge(channel.kind, status, &bytes)
        };
        attempt.await.inspect_err(|e| {
            if let Ok(mut last) = last.lock() {
                *last = Some(e.message.clone());
            }
        })
    };
    let attempts = ExponentialBuilder::default().with_min_delay(Duration::from_millis(200)).with_max_times(2).with_jitter();
    let result = tokio::time::timeout(channel.timeout, once.retry(attempts).when(|e: &SendError| e.transient)).await.unwrap_or_else(|_| {
        Err(transient(&match last.lock().ok().and_then(|mut l| l.take()) {
            Some(got) => format!("{got}; retries cut short by the timeout of {:?}", channel.timeout),
            None => format!("no answer within {:?}", channel.timeout),
        }))
    });
    let outcome = if result.is_ok() { "ok" } else { "failed" };
    metrics::counter!(crate::telemetry::m::NOTIFICATIONS_TOTAL, "kind" => channel.kind.as_str(), "outcome" => outcome).increment(1);
    result.map_err(|e| SendError { message: crate::redact::redact(&e.message).into_owned(), ..e })
}

/// The mirror's key for a channel: its place and kind (never its URL).
fn key(i: usize, channel: &NotifyConfig) -> String {
    format!("{i}:{}", channel.kind.as_str())
}

/// After a run is recorded: tell each channel what it announces, all
/// channels at once.
pub async fn after_run(channels: &[NotifyConfig], mirror: &Mirror, record: &RunRecord, origin: Origin<'_>, clock: &dyn Clock) {
    let mut now_is = condition(record);
    // A full run that holds nothing back ends a rejection: the same removals
    // held back again later are news.
    if now_is != Some(Condition::HeldBack) && record.objects.is_some() {
        mirror.end_rejection(&clock.now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "Could not end the rejection of held-back deletions");
        });
    }
    if channels.is_empty() {
        return;
    }
    let now = clock.now();
    let errors = if now_is.is_some() { mirror.items(record.id).unwrap_or_default() } else { Vec::new() };
    let errors = &errors;
    // Held-back deletions an admin rejected stay silent while they are the
    // same; what else went wrong in the run is still said.
    if now_is == Some(Condition::HeldBack) {
        let (_, held) = crate::mirror::held_back(errors);
        if held.is_some() && mirror.rejected().ok().flatten() == held {
            now_is = beyond_held(record);
            if now_is.is_none() {
                tracing::info!(run = %record.id, "Held-back deletions rejected on the admin page: not announced again until they change");
                return;
            }
        }
    }
    futures::future::join_all(channels.iter().enumerate().map(|(i, channel)| async move {
        let k = key(i, channel);
        let last = mirror.notified(&k).unwrap_or(None);
        let (say, remember) = decide(channel, now_is, last, now);
        // Claimed before it is sent: another run's announcement that got
        // here first wins, and this one is not said twice.
        match mirror.claim_notified(&k, last, remember) {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(error = %e, "Could not keep the notification state");
                return;
            }
        }
        let Some(c) = say else { return };
        let msg = Message::new(c, record, origin, errors);
        match send(channel, &msg, now).await {
            Ok(()) => tracing::info!(channel = %k, condition = c.as_str(), run = %record.id, "Notified"),
            Err(e) => {
                tracing::warn!(channel = %k, condition = c.as_str(), error = %e, "Could not notify");
                // Not announced: the next run tries again.
                if let Err(e) = mirror.claim_notified(&k, remember, last) {
                    tracing::warn!(error = %e, "Could not keep the notification state");
                }
            }
        }
    }))
    .await;
}

#[cfg(test)]
mod tests;
