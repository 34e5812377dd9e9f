//! DingTalk Stream mode (docs/sources/dingtalk.md, events): the service
//! opens the connection, so no public URL is needed.
//!
//! 1. `POST {gateway}/v1.0/gateway/connections/open` with the app's
//!    credentials and the subscriptions (every EVENT topic, the SYSTEM
//!    `ping` and `disconnect`) answers `{endpoint, ticket}`;
//! 2. a WebSocket to `{endpoint}?ticket=…` carries text JSON frames
//!    `{specVersion, type, headers, data}` (`data` a JSON string);
//! 3. each frame is acknowledged at once, before any work:
//!    `{code, headers: {contentType, messageId}, message, data}`. A SYSTEM
//!    `ping` gets its data echoed; a `disconnect` is acknowledged, then the
//!    connection is opened anew; an EVENT gets `SUCCESS`, and a contact
//!    event is handed on (by its `eventId`, which a redelivery keeps).

use super::DingTalkConfig;
use super::events::{self, Received};
use crate::events::{Event, Events};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// How often the client pings the server; a connection silent for twice
/// as long is taken for dead.
pub const KEEPALIVE: Duration = Duration::from_secs(60);

/// Why a session ended: the server asked for a new connection (`Ok`), or
/// the error the stream is down for.
pub type Ended = Result<(), String>;

/// One connection, from opening to its end. `connected` is called once the
/// WebSocket is up.
pub async fn session(c: &DingTalkConfig, gateway: &str, events: &Arc<Events>, window: Duration, connected: &(dyn Fn() + Sync)) -> Ended {
    let url = open(c, gateway).await?;
    let (ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.map_err(|e| format!("the Stream WebSocket: {e}"))?;
    connected();
    let (mut sink, mut stream) = ws.split();
    let mut ping = tokio::time::interval(KEEPALIVE);
    ping.tick().await;
    let mut heard = tokio::time::Instant::now();
    loop {
        let frame = tokio::select! {
            f = stream.next() => f,
            _ = ping.tick() => {
                if heard.elapsed() > 2 * KEEPALIVE {
                    return Err(format!("the Stream connection was silent for {}s", heard.elapsed().as_secs()));
                }
                sink.send(Message::Ping(Vec::new().into())).await.map_err(|e| format!("the Stream connection: {e}"))?;
                continue;
            }
        };
        heard = tokio::time::Instant::now();
        let text = match frame {
            Some(Ok(Message::Text(t))) => t.to_string(),
            Some(Ok(Message::Close(f))) => {
                return Err(format!("the server closed the Stream connection{}", f.map(|f| format!(": {}", f.reason)).unwrap_or_default()));
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(format!("the Stream connection: {e}")),
            None => return Err("the Stream connection ended".into()),
        };
        let (answer, then) = answer(&text, events, window);
        if let Some(answer) = answer {
            sink.send(Message::Text(answer.to_string().into())).await.map_err(|e| format!("the Stream connection: {e}"))?;
        }
        if then == Then::Reconnect {
            let _ = sink.close().await;
            tracing::info!(source = "dingtalk", "The Stream server asked for a new connection");
            return Ok(());
        }
    }
}

/// The WebSocket URL `connections/open` gives.
async fn open(c: &DingTalkConfig, gateway: &str) -> Result<String, String> {
    let client = crate::http_client::builder(c.http.timeout).build().map_err(|e| e.to_string())?;
    let body = json!({
        "clientId": c.app_key,
        "clientSecret": c.app_secret.expose(),
        "subscriptions": [
            {"type": "EVENT", "topic": "*"},
            {"type": "SYSTEM", "topic": "ping"},
            {"type": "SYSTEM", "topic": "disconnect"},
        ],
        "ua": concat!("orgsync/", env!("CARGO_PKG_VERSION")),
        "localIp": "",
    });
    let url = format!("{gateway}/v1.0/gateway/connections/open");
    let r = client.post(&url).header("Accept", "application/json").json(&body).send().await;
    crate::telemetry::source_request(if r.as_ref().is_ok_and(|r| r.status().is_success()) { "ok" } else { "error" });
    let r = r.map_err(|e| format!("POST {url}: {}", crate::http_client::cause_chain(&e)))?;
    let status = r.status();
    let v: Value = r.json().await.unwrap_or_default();
    if !status.is_success() {
        let said = v.get("message").or_else(|| v.get("code")).map(Value::to_string).unwrap_or_default();
        return Err(format!(
            "POST {url}: HTTP {status} {said} (check app_key and app_secret, and that Stream mode is chosen for the app's events)"
        ));
    }
    match (v.get("endpoint").and_then(Value::as_str), v.get("ticket").and_then(Value::as_str)) {
        (Some(endpoint), Some(ticket)) => {
            let mut u = url::Url::parse(endpoint).map_err(|e| format!("POST {url}: the endpoint {endpoint:?}: {e}"))?;
            u.query_pairs_mut().append_pair("ticket", ticket);
            Ok(u.to_string())
        }
        _ => Err(format!("POST {url}: no endpoint and ticket in the answer")),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Then {
    Continue,
    Reconnect,
}

/// The acknowledgement of one frame, and what follows it; a contact event
/// is handed to `events` once acknowledged (the ack is sent first: it is
/// built here, the hand-over is a queue push).
fn answer(text: &str, events: &Arc<Events>, window: Duration) -> (Option<Value>, Then) {
    let Ok(frame) = serde_json::from_str::<Value>(text) else {
        tracing::warn!(source = "dingtalk", "A Stream frame that is not JSON: ignored");
        return (None, Then::Continue);
    };
    let header = |k: &str| frame["headers"].get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let message_id = header("messageId");
    let data = frame.get("data").and_then(Value::as_str).unwrap_or_default().to_owned();
    let ack = |code: u16, message: &str, data: String| json!({"code": code, "headers": {"contentType": "application/json", "messageId": message_id}, "message": message, "data": data});
    match (frame.get("type").and_then(Value::as_str).unwrap_or_default(), header("topic").as_str()) {
        ("SYSTEM", "ping") => (Some(ack(200, "ok", data)), Then::Continue),
        ("SYSTEM", "disconnect") => (Some(ack(200, "ok", data)), Then::Reconnect),
        ("SYSTEM", _) => (Some(ack(200, "ok", data)), Then::Continue),
        ("EVENT", _) => {
            let kind = header("eventType");
            let id = Some(header("eventId")).filter(|i| !i.is_empty()).unwrap_or_else(|| message_id.clone());
            match events::streamed(&kind, &data) {
                Ok(Received::Change(kind, change)) => {
                    events.receive(Event { source: "dingtalk", id, kind, change }, window);
                }
                Ok(Received::Ignored(what)) => crate::events::ignored("dingtalk", &what),
                Ok(Received::CheckUrl) => {}
                Err(e) => {
                    tracing::warn!(source = "dingtalk", event = %kind, error = %e, "A Stream event that cannot be read: ignored");
                    crate::events::ignored("dingtalk", &kind);
                }
            }
            (Some(ack(200, "OK", json!({"status": "SUCCESS", "message": "success"}).to_string())), Then::Continue)
        }
        // Nothing else is subscribed to: "not implemented", as the SDKs answer.
        _ => (Some(ack(404, "not implemented", String::new())), Then::Continue),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trigger::TriggerQueue;

    fn frame(kind: &str, topic: &str, headers: Value, data: &str) -> String {
        let mut h = json!({"messageId": "m1", "topic": topic, "contentType": "application/json", "time": "1"});
        h.as_object_mut().unwrap().extend(headers.as_object().unwrap().clone());
        json!({"specVersion": "1.0", "type": kind, "headers": h, "data": data}).to_string()
    }

    #[tokio::test]
    async fn frames_are_acknowledged_as_the_sdks_do() {
        let queue = Arc::new(TriggerQueue::new());
        let events = Events::new(queue.clone());
        let (ack, then) = answer(&frame("SYSTEM", "ping", json!({}), r#"{"opaque":"x"}"#), &events, Duration::ZERO);
        assert_eq!(
            ack.unwrap(),
            json!({"code": 200, "headers": {"contentType": "application/json", "messageId": "m1"}, "message": "ok", "data": r#"{"opaque":"x"}"#})
        );
        assert_eq!(then, Then::Continue);
        assert_eq!(answer(&frame("SYSTEM", "disconnect", json!({}), "{}"), &events, Duration::ZERO).1, Then::Reconnect);
        let hire = frame("EVENT", "*", json!({"eventId": "ev1", "eventType": "user_add_org"}), r#"{"timeStamp":"1","userId":["u9"]}"#);
        let (ack, _) = answer(&hire, &events, Duration::ZERO);
        let ack = ack.unwrap();
        assert_eq!((ack["code"].as_u64(), ack["data"].as_str()), (Some(200), Some(r#"{"message":"success","status":"SUCCESS"}"#)));
        let t = queue.next().await.unwrap();
        assert_eq!(t.only.unwrap().users, ["u9".into()].into());
        assert_eq!(t.events, vec!["user_add_org ev1".to_owned()]);
        queue.done();
        // A redelivery (another messageId, the same eventId) is acknowledged, not acted on.
        let again = hire.replace("\"m1\"", "\"m2\"");
        assert_eq!(answer(&again, &events, Duration::ZERO).0.unwrap()["code"], 200);
        assert!(!queue.is_running());
        assert_eq!(
            answer(&frame("CALLBACK", "/v1.0/im/bot/messages/get", json!({}), "{}"), &events, Duration::ZERO).0.unwrap()["code"],
            404
        );
    }
}
