//! The daemon's HTTP listener: `/metrics` (Prometheus text), `/healthz`
//! (the process answers), `/readyz` (config loaded, mirror readable, not
//! failing run after run, not shutting down, the event stream not down), `/status` (JSON, never a
//! secret), `POST /sync` (a manual trigger) and `GET /explain` (one object,
//! as `orgsync explain`); these two need the bearer token when one is
//! configured, and one must be configured beyond loopback.

use crate::mirror::{Mirror, RunRecord};
use crate::settings::Config;
use crate::trigger::{Queued, Trigger, TriggerKind, TriggerQueue};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What the handlers read; the daemon updates it.
#[derive(Debug)]
pub struct Shared {
    pub config: watch::Receiver<Arc<Config>>,
    pub queue: Arc<TriggerQueue>,
    /// Change events on their way to a run; the event stream's state.
    pub events: Arc<crate::events::Events>,
    pub next_fire: watch::Receiver<Option<DateTime<Utc>>>,
    pub metrics: Option<PrometheusHandle>,
    pub consecutive_failures: Arc<AtomicU64>,
    pub shutting_down: AtomicBool,
    pub started_at: DateTime<Utc>,
    /// The service's mirror (the admin page's actions write to it).
    pub mirror: Arc<Mirror>,
    /// The config file (the admin page's check reads it as it is on disk).
    pub config_path: std::path::PathBuf,
    /// The admin page's sessions.
    pub web: crate::web::Sessions,
}

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .route("/sync", post(sync))
        .route("/explain", get(explain))
        .route("/events/{source}", get(events).post(events))
        .merge(crate::web::routes())
        .with_state(shared)
}

/// Serve until `stop`.
pub async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>, stop: CancellationToken) -> std::io::Result<()> {
    axum::serve(listener, router(shared).into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    match &s.metrics {
        Some(h) => {
            h.run_upkeep();
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], h.render()).into_response()
        }
        None => (StatusCode::NOT_FOUND, "metrics are not enabled\n").into_response(),
    }
}

fn read_runs(state_dir: std::path::PathBuf, limit: usize) -> Result<Vec<RunRecord>, crate::mirror::MirrorError> {
    match Mirror::open_read_only(&state_dir)? {
        Some(m) => m.runs(limit),
        None => Ok(Vec::new()),
    }
}

async fn readyz(State(s): State<Arc<Shared>>) -> Response {
    let config = s.config.borrow().clone();
    let mut problems = Vec::new();
    if s.shutting_down.load(Ordering::Relaxed) {
        problems.push("shutting down".to_owned());
    }
    let dir = config.state_dir.clone();
    match tokio::task::spawn_blocking(move || read_runs(dir, 1)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => problems.push(format!("mirror not readable: {e}")),
        Err(e) => problems.push(format!("mirror check failed: {e}")),
    }
    let failures = s.consecutive_failures.load(Ordering::Relaxed);
    if failures >= config.daemon.unready_after_failures {
        problems.push(format!("the last {failures} runs failed"));
    }
    if let Some(st) = s.events.stream_state().filter(|st| !st.connected) {
        let since = st.since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        problems.push(format!("the {} event stream is down since {since}: {}", st.source, st.error.unwrap_or_default()));
    }
    if problems.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {}\n", problems.join("; "))).into_response()
    }
}

async fn status(State(s): State<Arc<Shared>>) -> Response {
    let config = s.config.borrow().clone();
    let dir = config.state_dir.clone();
    let runs = match tokio::task::spawn_blocking(move || read_runs(dir, 10)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "error": e.to_string() }))).into_response(),
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({ "error": e.to_string() }))).into_response(),
    };
    let status = runs.iter().find(|r| r.finished_at.is_some()).map_or("never_synced", |r| r.status.as_str());
    let objects = runs.iter().find_map(|r| r.objects);
    let (waiting, failing) = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || match Mirror::open_read_only(&config.state_dir) {
            Ok(Some(m)) => (crate::sync::waiting_for_deletion(&config, &m).ok().flatten(), m.failing().unwrap_or_default()),
            _ => (None, Vec::new()),
        })
        .await
        .unwrap_or_default()
    };
    let next = *s.next_fire.borrow();
    let tz = config.schedule.zone();
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "started_at": s.started_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
        "status": status,
        "run_in_progress": s.queue.is_running(),
        "consecutive_failures": s.consecutive_failures.load(Ordering::Relaxed),
        "source": config.source.kind(),
        "target": config.target.kind(),
        "schedule": config.schedule.describe(),
        "timezone": tz.name(),
        "next_run": next.map(|t| t.with_timezone(&tz).to_rfc3339_opts(chrono::SecondsFormat::Secs, false)),
        "objects": objects,
        "waiting_for_deletion": waiting,
        "event_stream": s.events.stream_state(),
        "failing": failing,
        "runs": runs,
    }))
    .into_response()
}

#[derive(Debug, serde::Deserialize)]
struct SyncQuery {
    #[serde(default)]
    allow_deletes: u64,
    /// On demand: `user:<id>` / `department:<id>`, comma-separated.
    only: Option<String>,
}

/// The answer to a request without the admin token, when one is configured.
fn refused(s: &Shared, headers: &HeaderMap, what: &str) -> Option<Response> {
    let token = s.config.borrow().daemon.admin_token.clone()?;
    if bearer_is(headers, &token) {
        return None;
    }
    tracing::warn!("{what} refused: missing or wrong bearer token");
    Some(
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(json!({ "error": format!("{what} needs Authorization: Bearer <daemon.admin_token>") })),
        )
            .into_response(),
    )
}

#[derive(Debug, serde::Deserialize)]
struct ExplainQuery {
    user: Option<String>,
    department: Option<String>,
}

/// `GET /explain?user=<id|username|email>` or `?department=<id|name>`:
/// what `orgsync explain` prints, as JSON (404 when nothing knows it).
async fn explain(State(s): State<Arc<Shared>>, headers: HeaderMap, Query(q): Query<ExplainQuery>) -> Response {
    if let Some(refused) = refused(&s, &headers, "GET /explain") {
        return refused;
    }
    let (kind, key) = match (q.user, q.department) {
        (Some(u), None) => (crate::model::Kind::User, u),
        (None, Some(d)) => (crate::model::Kind::Department, d),
        _ => {
            return (StatusCode::BAD_REQUEST, Json(json!({ "error": "give one of user=<id|username|email> or department=<id|name>" })))
                .into_response();
        }
    };
    let config = s.config.borrow().clone();
    match crate::sync::explain::explain(&config, kind, &key).await {
        Ok(e) => Json(e).into_response(),
        Err(e @ crate::sync::explain::ExplainError::Unknown { .. }) => {
            (StatusCode::NOT_FOUND, Json(json!({ "error": e.to_string() }))).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, Json(json!({ "error": crate::redact::redact(&format!("{:#}", anyhow::Error::from(e))) })))
            .into_response(),
    }
}

/// A source's change events (`[source.events]`): `/events/<source kind>`.
/// What fails the vendor's checks is refused (403) and counted, never
/// acted on; a change is queued as an on-demand run of what it names. 404
/// where the configured source is another or takes no events.
async fn events(
    State(s): State<Arc<Shared>>,
    Path(kind): Path<String>,
    method: axum::http::Method,
    headers: HeaderMap,
    Query(q): Query<std::collections::HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    let config = s.config.borrow().clone();
    let Some(source) = [config.source.kind()].into_iter().find(|k| *k == kind) else {
        return (StatusCode::NOT_FOUND, format!("the source is not {kind}")).into_response();
    };
    match source {
        "wecom" => wecom_event(&s, &config, method, &q, &body),
        "dingtalk" if method == axum::http::Method::POST => dingtalk_event(&s, &config, &q, &body),
        "feishu" | "lark" if method == axum::http::Method::POST => feishu_event(&s, &config, source, &headers, &body),
        "welink" if method == axum::http::Method::POST => welink_event(&s, &config, &body),
        _ => (StatusCode::NOT_FOUND, format!("no change events for {source}")).into_response(),
    }
}

/// A source's callback as configured, or the answer when there is none (404)
/// or its key is unusable (500; the config check names it first).
#[allow(clippy::result_large_err)] // the error is the answer itself
fn configured<T>(source: &str, callback: Option<Result<T, &'static str>>) -> Result<T, Response> {
    match callback {
        Some(Ok(c)) => Ok(c),
        Some(Err(e)) => Err((StatusCode::INTERNAL_SERVER_ERROR, format!("source.events: {e}")).into_response()),
        None => Err((StatusCode::NOT_FOUND, format!("no [source.events] for {source}")).into_response()),
    }
}

/// An event refused: said, counted, 403.
fn refused_event(source: &'static str, e: &dyn std::fmt::Display) -> Response {
    tracing::warn!(source, error = %e, "Event callback refused");
    metrics::counter!(crate::telemetry::m::EVENTS_TOTAL, "source" => source, "outcome" => "refused").increment(1);
    (StatusCode::FORBIDDEN, e.to_string()).into_response()
}

/// A checked event: de-duplicated, coalesced, then a run of what it names.
fn take_event(s: &Shared, config: &Config, event: crate::events::Event) {
    s.events.receive(event, config.source.event_window().unwrap_or_default());
}

use crate::events::ignored as ignored_event;

/// WeCom (`[source.events]` of a `wecom` source): the URL verification
/// (GET: the decrypted `echostr`), and each `change_contact` event (POST).
fn wecom_event(
    s: &Shared,
    config: &Config,
    method: axum::http::Method,
    q: &std::collections::HashMap<String, String>,
    body: &[u8],
) -> Response {
    use crate::sources::wecom::events::{self, CallbackError, Change};
    let callback = match configured("wecom", crate::sources::wecom::callback(&config.source)) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let body = String::from_utf8_lossy(body);
    let arg = |k: &str| q.get(k).map(String::as_str);
    let opened = match (arg("msg_signature"), arg("timestamp"), arg("nonce")) {
        (Some(sig), Some(ts), Some(nonce)) => {
            let encrypted = match method {
                axum::http::Method::GET => arg("echostr").map(str::to_owned).ok_or(CallbackError::Unsigned),
                _ => events::field(&body, "Encrypt").and_then(|e| e.ok_or(CallbackError::Xml("no Encrypt".into()))),
            };
            encrypted.and_then(|e| callback.open(sig, ts, nonce, &e))
        }
        _ => Err(CallbackError::Unsigned),
    };
    let plain = match opened {
        Ok(p) => p,
        Err(e) => return refused_event("wecom", &e),
    };
    if method == axum::http::Method::GET {
        tracing::info!(source = "wecom", "Event callback URL verified");
        return plain.into_response();
    }
    let only = |users, departments| crate::events::Change::Objects(crate::reconcile::only::Only { users, departments });
    // WeCom gives no event id: a redelivery is the same message.
    let event = |change| crate::events::Event {
        source: "wecom",
        id: crate::events::digest(plain.as_bytes()),
        kind: events::field(&plain, "ChangeType").ok().flatten().unwrap_or_default(),
        change,
    };
    match events::change(&plain) {
        Ok(Some(Change::User { id, new_id })) => {
            let users = std::iter::once(id).chain(new_id).map(crate::model::SourceId).collect();
            take_event(s, config, event(only(users, Default::default())));
        }
        Ok(Some(Change::Department { id })) => {
            take_event(s, config, event(only(Default::default(), [crate::model::SourceId(id)].into())));
        }
        Ok(None) => ignored_event("wecom", "not change_contact on users or departments"),
        Err(e) => return refused_event("wecom", &e),
    }
    // WeCom takes an empty 200 as received (it retries anything else).
    StatusCode::OK.into_response()
}

/// DingTalk (`[source.events]` of a `dingtalk` source): `{"encrypt"}`
/// signed in the query; the URL check and each contact event are answered
/// with the encrypted "success".
fn dingtalk_event(s: &Shared, config: &Config, q: &std::collections::HashMap<String, String>, body: &[u8]) -> Response {
    use crate::sources::dingtalk::events::{self, CallbackError, Received};
    let callback = match configured("dingtalk", crate::sources::dingtalk::callback(&config.source)) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let arg = |a: &str, b: &str| q.get(a).or_else(|| q.get(b)).map(String::as_str);
    let (signature, timestamp, nonce) = (arg("msg_signature", "signature"), arg("timestamp", "timeStamp"), arg("nonce", "nonce"));
    let encrypted = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("encrypt").and_then(serde_json::Value::as_str).map(str::to_owned));
    let opened = match (signature, timestamp, nonce, encrypted) {
        (Some(sig), Some(ts), Some(nonce), Some(e)) => callback.open(sig, ts, nonce, &e).map(|p| (p, ts, nonce)),
        _ => Err(CallbackError::Unsigned),
    };
    let (plain, ts, nonce) = match opened {
        Ok(p) => p,
        Err(e) => return refused_event("dingtalk", &e),
    };
    match events::received(&plain) {
        Ok(Received::CheckUrl) => tracing::info!(source = "dingtalk", "Event callback URL verified"),
        // The HTTP push gives no event id: a redelivery is the same message.
        Ok(Received::Change(kind, change)) => {
            take_event(s, config, crate::events::Event { source: "dingtalk", id: crate::events::digest(plain.as_bytes()), kind, change });
        }
        Ok(Received::Ignored(what)) => ignored_event("dingtalk", &what),
        Err(e) => return refused_event("dingtalk", &e),
    }
    Json(events::success(&callback, ts, nonce, rand::random())).into_response()
}

/// Feishu/Lark (`[source.events]` of a `feishu` or `lark` source): the URL
/// verification (`{"challenge"}`) and each contact event; the scope's
/// change and deletions are a full run.
fn feishu_event(s: &Shared, config: &Config, source: &'static str, headers: &HeaderMap, body: &[u8]) -> Response {
    use crate::sources::feishu::events::{Received, Signed};
    let Some(callback) = crate::sources::feishu::callback(&config.source) else {
        return (StatusCode::NOT_FOUND, format!("no [source.events] for {source}")).into_response();
    };
    let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok());
    let signed = Signed {
        timestamp: header("x-lark-request-timestamp"),
        nonce: header("x-lark-request-nonce"),
        signature: header("x-lark-signature"),
    };
    match callback.receive(signed, body) {
        Ok(Received::Challenge(c)) => {
            tracing::info!(source, "Event callback URL verified");
            return Json(json!({ "challenge": c })).into_response();
        }
        Ok(Received::Event { id, kind, change }) => take_event(s, config, crate::events::Event { source, id, kind, change }),
        Ok(Received::Ignored(what)) => ignored_event(source, &what),
        Err(e) => return refused_event(source, &e),
    }
    Json(json!({ "msg": "success" })).into_response()
}

/// WeLink (`[source.events]` of a `welink` source): `{"encrypt"}` sealed
/// with AES-GCM, its timestamp within 30 minutes; the `test` event and every
/// other are answered with the encrypted success.
fn welink_event(s: &Shared, config: &Config, body: &[u8]) -> Response {
    use crate::sources::welink::events::Received;
    let callback = match configured("welink", crate::sources::welink::callback(&config.source)) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (received, timestamp, plain) = match callback.receive(body, Utc::now().timestamp()) {
        Ok(r) => r,
        Err(e) => return refused_event("welink", &e),
    };
    match received {
        Received::Test => tracing::info!(source = "welink", "Event callback URL verified"),
        // WeLink documents no event id: a redelivery is the same message.
        Received::Change(kind, change) => {
            take_event(s, config, crate::events::Event { source: "welink", id: crate::events::digest(plain.as_bytes()), kind, change });
        }
        Received::Ignored(what) => ignored_event("welink", &what),
    }
    Json(callback.success(&timestamp, rand::random())).into_response()
}

/// Whether the request's `Authorization: Bearer` is `token`.
pub(crate) fn bearer_is(headers: &HeaderMap, token: &crate::config::Secret) -> bool {
    let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).map(str::trim);
    given.is_some_and(|g| same(g.as_bytes(), token.expose().as_bytes()))
}

/// Equal in time independent of where the strings differ.
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let (x, y) = (Sha256::digest(a), Sha256::digest(b));
    x.iter().zip(y.iter()).fold(0u8, |acc, (p, q)| acc | (p ^ q)) == 0
}

async fn sync(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    query: Result<Query<SyncQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return (StatusCode::BAD_REQUEST, Json(json!({ "error": "allow_deletes must be a non-negative integer" }))).into_response();
    };
    if let Some(refused) = refused(&s, &headers, "POST /sync") {
        return refused;
    }
    let only = match q.only.as_deref().map(|o| crate::reconcile::only::Only::parse(&o.split(',').map(str::to_owned).collect::<Vec<_>>())) {
        None => None,
        Some(Ok(o)) => Some(o),
        Some(Err(e)) => return (StatusCode::BAD_REQUEST, Json(json!({ "error": e.to_string() }))).into_response(),
    };
    let named = only.as_ref().map(ToString::to_string);
    let queued =
        s.queue.push(Trigger { kind: TriggerKind::Http, allow_deletes: q.allow_deletes, approved: None, only, events: Vec::new() });
    tracing::info!(allow_deletes = q.allow_deletes, only = named.as_deref(), %queued, "Manual sync requested over HTTP");
    let code = if queued == Queued::Refused { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::ACCEPTED };
    (code, Json(json!({ "queued": queued, "allow_deletes": q.allow_deletes }))).into_response()
}
