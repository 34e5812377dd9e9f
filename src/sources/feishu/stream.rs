//! Feishu/Lark's long connection (docs/sources/feishu.md, events), as the
//! official SDKs open it: no public URL is needed.
//!
//! 1. `POST {base_url}/callback/ws/endpoint` with `{"AppID", "AppSecret"}`
//!    answers `{code: 0, data: {URL, ClientConfig}}`; the URL's query holds
//!    the `service_id` the frames carry;
//! 2. the WebSocket carries binary protobuf frames ([`Frame`], package
//!    `pbbp2`): method 0 control (`ping` / `pong`), method 1 data (`event`),
//!    split in `sum` parts by `message_id` when large;
//! 3. the client pings every `PingInterval` (a `pong` may carry a new
//!    ClientConfig), and acknowledges each event by sending its frame back
//!    with the payload `{"code":200}` and a `biz_rt` header. The events are
//!    the same schema-2.0 JSON as the HTTP callback's, without token or
//!    encryption (the connection is the app's own).

use super::FeishuConfig;
use super::events::{Callback, Received};
use crate::config::Secret;
use crate::events::{Event, Events};
use futures::{SinkExt, StreamExt};
use prost::Message as _;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// A header of a [`Frame`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct Header {
    #[prost(string, required, tag = "1")]
    pub key: String,
    #[prost(string, required, tag = "2")]
    pub value: String,
}

/// `pbbp2.Frame` (proto2), as the SDKs' descriptor declares it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Frame {
    #[prost(uint64, required, tag = "1")]
    pub seq_id: u64,
    #[prost(uint64, required, tag = "2")]
    pub log_id: u64,
    #[prost(int32, required, tag = "3")]
    pub service: i32,
    /// 0: control, 1: data.
    #[prost(int32, required, tag = "4")]
    pub method: i32,
    #[prost(message, repeated, tag = "5")]
    pub headers: Vec<Header>,
    #[prost(string, optional, tag = "6")]
    pub payload_encoding: Option<String>,
    #[prost(string, optional, tag = "7")]
    pub payload_type: Option<String>,
    #[prost(bytes = "vec", optional, tag = "8")]
    pub payload: Option<Vec<u8>>,
    #[prost(string, optional, tag = "9")]
    pub log_id_new: Option<String>,
}

impl Frame {
    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers.iter().find(|h| h.key == key).map(|h| h.value.as_str())
    }
}

/// Why a session ended (always an error: the server never asks to move).
pub type Ended = Result<(), String>;

/// The parts of one split message so far: when the last came, and each slot.
type Slots = (Instant, Vec<Option<Vec<u8>>>);

/// Parts of split messages, by `message_id`, dropped when stale.
#[derive(Default)]
struct Parts {
    by_id: HashMap<String, Slots>,
}

impl Parts {
    /// The whole payload once every part of its message has come.
    fn add(&mut self, id: &str, sum: usize, seq: usize, part: Vec<u8>) -> Option<Vec<u8>> {
        self.by_id.retain(|_, (at, _)| at.elapsed() < Duration::from_secs(30));
        if sum <= 1 {
            return Some(part);
        }
        let (at, slots) = self.by_id.entry(id.to_owned()).or_insert_with(|| (Instant::now(), vec![None; sum]));
        *at = Instant::now();
        if seq >= slots.len() {
            return None;
        }
        slots[seq] = Some(part);
        if slots.iter().all(Option::is_some) {
            let (_, slots) = self.by_id.remove(id)?;
            return Some(slots.into_iter().flatten().flatten().collect());
        }
        None
    }
}

/// One connection, from the endpoint request to its end.
pub async fn session(c: &FeishuConfig, events: &Arc<Events>, window: Duration, connected: &(dyn Fn() + Sync)) -> Ended {
    let (url, mut ping_every) = endpoint(c).await?;
    let service: i32 = url::Url::parse(&url)
        .ok()
        .and_then(|u| u.query_pairs().find(|(k, _)| k == "service_id").and_then(|(_, v)| v.parse().ok()))
        .unwrap_or_default();
    let (ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.map_err(handshake)?;
    connected();
    let callback = Callback::new(Secret::new(""), None, &c.user_id_type, &c.department_id_type);
    let source = c.kind();
    let (mut sink, mut stream) = ws.split();
    let mut parts = Parts::default();
    let mut heard = tokio::time::Instant::now();
    let mut next_ping = tokio::time::Instant::now();
    loop {
        let message = tokio::select! {
            m = stream.next() => m,
            _ = tokio::time::sleep_until(next_ping) => {
                if heard.elapsed() > 3 * ping_every {
                    return Err(format!("the long connection was silent for {}s", heard.elapsed().as_secs()));
                }
                let ping = Frame { service, method: 0, headers: vec![h("type", "ping")], ..Frame::default() };
                sink.send(Message::Binary(ping.encode_to_vec().into())).await.map_err(|e| format!("the long connection: {e}"))?;
                next_ping = tokio::time::Instant::now() + ping_every;
                continue;
            }
        };
        heard = tokio::time::Instant::now();
        let bytes = match message {
            Some(Ok(Message::Binary(b))) => b,
            Some(Ok(Message::Close(f))) => {
                return Err(format!("the server closed the long connection{}", f.map(|f| format!(": {}", f.reason)).unwrap_or_default()));
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(format!("the long connection: {e}")),
            None => return Err("the long connection ended".into()),
        };
        let Ok(mut frame) = Frame::decode(bytes.as_ref()) else {
            tracing::warn!(source, "A long-connection frame that is not a pbbp2 Frame: ignored");
            continue;
        };
        let started = Instant::now();
        match (frame.method, frame.header("type").unwrap_or_default()) {
            (0, "pong") => {
                if let Some(interval) = frame.payload.as_deref().and_then(ping_interval) {
                    ping_every = interval;
                }
            }
            (1, "event") => {
                let id = frame.header("message_id").unwrap_or_default().to_owned();
                let number = |k: &str| frame.header(k).and_then(|v| v.parse::<usize>().ok());
                let (sum, seq) = (number("sum").unwrap_or(1), number("seq").unwrap_or(0));
                let Some(payload) = parts.add(&id, sum, seq, frame.payload.take().unwrap_or_default()) else { continue };
                // Acknowledged first: the work is a run, later.
                frame.headers.push(h("biz_rt", &started.elapsed().as_millis().to_string()));
                frame.payload = Some(json!({"code": 200, "headers": null, "data": null}).to_string().into_bytes());
                sink.send(Message::Binary(frame.encode_to_vec().into())).await.map_err(|e| format!("the long connection: {e}"))?;
                hand_on(&callback, source, &payload, events, window);
            }
            _ => {}
        }
    }
}

fn h(key: &str, value: &str) -> Header {
    Header { key: key.to_owned(), value: value.to_owned() }
}

/// A `pong`'s ClientConfig: its `PingInterval` in seconds.
fn ping_interval(payload: &[u8]) -> Option<Duration> {
    let v: Value = serde_json::from_slice(payload).ok()?;
    v.get("PingInterval").and_then(Value::as_u64).filter(|s| *s > 0).map(Duration::from_secs)
}

/// An event's JSON to the events' queue.
fn hand_on(callback: &Callback, source: &'static str, payload: &[u8], events: &Arc<Events>, window: Duration) {
    let Ok(v) = serde_json::from_slice::<Value>(payload) else {
        tracing::warn!(source, "A long-connection event that is not JSON: ignored");
        return crate::events::ignored(source, "not JSON");
    };
    match callback.event(&v) {
        Received::Event { id, kind, change } => {
            events.receive(Event { source, id, kind, change }, window);
        }
        Received::Ignored(what) => crate::events::ignored(source, &what),
        Received::Challenge(_) => {}
    }
}

/// The WebSocket URL and the ping interval `callback/ws/endpoint` gives.
async fn endpoint(c: &FeishuConfig) -> Result<(String, Duration), String> {
    let client = crate::http_client::builder(c.http.timeout).build().map_err(|e| e.to_string())?;
    let url = format!("{}/callback/ws/endpoint", c.http.base_url.trim_end_matches('/'));
    let body = json!({"AppID": c.app_id, "AppSecret": c.app_secret.expose()});
    let r = client.post(&url).header("locale", "zh").json(&body).send().await;
    crate::telemetry::source_request(if r.as_ref().is_ok_and(|r| r.status().is_success()) { "ok" } else { "error" });
    let r = r.map_err(|e| format!("POST {url}: {}", crate::http_client::cause_chain(&e)))?;
    let status = r.status();
    let v: Value = r.json().await.unwrap_or_default();
    let code = v.get("code").and_then(Value::as_i64);
    if !status.is_success() || code != Some(0) {
        let msg = v.get("msg").and_then(Value::as_str).unwrap_or_default();
        let hint = match code {
            Some(1000040344) => " (check app_id and app_secret)",
            Some(1000040350) => " (the app has too many long connections open)",
            _ => " (the long connection is for self-built apps, with events set to be received by long connection)",
        };
        return Err(format!("POST {url}: HTTP {status}, code {}: {msg}{hint}", code.map_or_else(|| "none".into(), |c| c.to_string())));
    }
    let data = &v["data"];
    let ws = data.get("URL").and_then(Value::as_str).ok_or_else(|| format!("POST {url}: no URL in the answer"))?;
    let ping = data.get("ClientConfig").and_then(|c| c.get("PingInterval")).and_then(Value::as_u64).filter(|s| *s > 0).unwrap_or(120);
    Ok((ws.to_owned(), Duration::from_secs(ping)))
}

/// A refused handshake, with what the server's headers say.
fn handshake(e: tokio_tungstenite::tungstenite::Error) -> String {
    use tokio_tungstenite::tungstenite::Error;
    match e {
        Error::Http(r) => {
            let header = |k: &str| r.headers().get(k).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            let status = Some(header("Handshake-Status")).filter(|s| !s.is_empty()).unwrap_or_else(|| r.status().as_u16().to_string());
            let why = match status.as_str() {
                "514" => " (authentication failed)",
                "403" => " (forbidden: is the app allowed the long connection?)",
                _ => "",
            };
            format!("the long connection was refused: {status}{why} {}", header("Handshake-Msg"))
        }
        e => format!("the long connection: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_messages_are_joined_in_order_once_complete() {
        let mut parts = Parts::default();
        assert_eq!(parts.add("m", 1, 0, b"whole".to_vec()), Some(b"whole".to_vec()));
        assert_eq!(parts.add("m2", 3, 2, b"c".to_vec()), None);
        assert_eq!(parts.add("m2", 3, 0, b"a".to_vec()), None);
        assert_eq!(parts.add("m2", 3, 9, b"x".to_vec()), None, "a part beyond sum is dropped");
        assert_eq!(parts.add("m2", 3, 1, b"b".to_vec()), Some(b"abc".to_vec()));
        assert!(parts.by_id.is_empty());
    }

    /// The bytes the SDKs' generated code gives for a ping frame (fields 1-5).
    #[test]
    fn a_ping_frame_encodes_as_the_sdks_do() {
        let ping = Frame { service: 7, method: 0, headers: vec![h("type", "ping")], ..Frame::default() };
        let bytes = ping.encode_to_vec();
        assert_eq!(
            bytes,
            [0x08, 0, 0x10, 0, 0x18, 7, 0x20, 0, 0x2a, 0x0c, 0x0a, 4, b't', b'y', b'p', b'e', 0x12, 4, b'p', b'i', b'n', b'g']
        );
        assert_eq!(Frame::decode(bytes.as_slice()).unwrap(), ping);
        assert_eq!(ping_interval(br#"{"PingInterval":30,"ReconnectCount":-1}"#), Some(Duration::from_secs(30)));
    }
}
