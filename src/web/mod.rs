//! The admin's page on the service's listener: runs and their items,
//! held-back deletions (approve / reject), quarantined objects (retry),
//! explain, and the config and target checks. Server-rendered from
//! minijinja templates compiled into the binary; no JavaScript needed.
//! Who may look and act: [`auth`]. Every action is recorded in the mirror
//! with who, from where and when.

mod auth;
mod i18n;

pub use auth::Sessions;

use crate::http::Shared;
use crate::mirror::{AdminAction, ItemFilter, Mirror, RunId};
use crate::model::Kind;
use crate::reconcile::{Outcome, Verb};
use auth::{LoginFirst, Viewer};
use axum::Router;
use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use minijinja::{Environment, UndefinedBehavior, Value, context};
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};

const RUNS_PER_PAGE: usize = 20;
const ITEMS_PER_PAGE: usize = 100;
const REQUESTS_SHOWN: usize = 500;

pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/", get(home))
        .route("/runs/{id}", get(run))
        .route("/deletions", get(deletions))
        .route("/deletions/approve", post(approve))
        .route("/deletions/reject", post(reject))
        .route("/quarantine", get(quarantine))
        .route("/quarantine/retry", post(retry))
        .route("/lookup", get(lookup))
        .route("/check", get(check))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/lang/{code}", get(switch_lang))
}

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("home.html", include_str!("templates/home.html")),
    ("run.html", include_str!("templates/run.html")),
    ("deletions.html", include_str!("templates/deletions.html")),
    ("quarantine.html", include_str!("templates/quarantine.html")),
    ("lookup.html", include_str!("templates/lookup.html")),
    ("check.html", include_str!("templates/check.html")),
    ("login.html", include_str!("templates/login.html")),
    ("message.html", include_str!("templates/message.html")),
];

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    // Every value is masked before it is escaped: a secret is found as it is,
    // whatever characters it has (`/`, `&`), and nothing else is touched.
    env.set_formatter(|out, state, value| {
        let Some(text) = value.as_str() else { return minijinja::escape_formatter(out, state, value) };
        let value = match crate::redact::redact(text) {
            std::borrow::Cow::Borrowed(_) => value.clone(),
            std::borrow::Cow::Owned(m) if value.is_safe() => Value::from_safe_string(m),
            std::borrow::Cow::Owned(m) => Value::from(m),
        };
        minijinja::escape_formatter(out, state, &value)
    });
    for (name, source) in TEMPLATES {
        // A template that does not compile is said here and its page answers 500 (the tests render every page).
        if let Err(e) = env.add_template(name, source) {
            tracing::error!(template = name, error = %format!("{e:#}"), "An admin page template does not compile");
        }
    }
    env
});

/// The context every page has, with the page's own.
fn render(v: &Viewer, status: StatusCode, name: &str, here: &str, page: Value) -> Response {
    let base = context! {
        tr => Value::from_serialize(v.lang.texts()),
        lang => v.lang.code(),
        who => v.who,
        signed_in => v.who == "token" && v.csrf.is_some(),
        csrf => v.csrf.clone().unwrap_or_default(),
        here => here,
        here_q => url::form_urlencoded::byte_serialize(here.as_bytes()).collect::<String>(),
        version => env!("CARGO_PKG_VERSION"),
    };
    let html = ENV.get_template(name).and_then(|t| t.render(context! { ..page, ..base }));
    let mut r = match html {
        Ok(html) => (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response(),
        Err(e) => {
            tracing::error!(template = name, error = %format!("{e:#}"), "The admin page could not be rendered");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered; the service log says why\n").into_response()
        }
    };
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    if let Some(c) = &v.set_cookie
        && let Ok(c) = c.parse()
    {
        h.append(header::SET_COOKIE, c);
    }
    r
}

/// A page that only says something (done, refused, not found).
fn message(v: &Viewer, status: StatusCode, title: &str, text: &str, back: &str) -> Response {
    render(v, status, "message.html", back, context! { title => title, text => text, back => back })
}

/// A redirect (303: a POST's answer is a GET of the page).
fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_owned())]).into_response()
}

/// The viewer, or the way to the login form.
#[allow(clippy::result_large_err)] // the error is the answer itself
fn who(s: &Shared, headers: &HeaderMap, peer: SocketAddr, uri: &Uri) -> Result<Viewer, Response> {
    auth::viewer(s, headers, peer).map_err(|e| not_let_in(e, Some(uri)))
}

/// The answer to a request not let in: the login form for a page (`uri`),
/// 401 for an action; a wrong Host or a forwarded request without a token, refused.
fn not_let_in(e: LoginFirst, uri: Option<&Uri>) -> Response {
    match (e, uri) {
        (LoginFirst::Login, Some(uri)) => {
            let next = uri.path_and_query().map_or("/", |p| p.as_str());
            see_other(&format!("/login?next={}", url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()))
        }
        (LoginFirst::Login, None) => (StatusCode::UNAUTHORIZED, "log in first: this needs the admin token\n").into_response(),
        (LoginFirst::WrongHost, _) => wrong_host(),
        (LoginFirst::Proxied, _) => proxied(),
    }
}

/// A request a proxy forwarded, to a service without an admin token.
fn proxied() -> Response {
    (StatusCode::FORBIDDEN, "behind a proxy the admin page needs daemon.admin_token (else everyone it forwards would be loopback)\n")
        .into_response()
}

/// A page's viewer and the page's path, or the answer instead: the way to
/// the login form, or a refusal.
struct Looking(Viewer, String);

impl axum::extract::FromRequestParts<Arc<Shared>> for Looking {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, s: &Arc<Shared>) -> Result<Self, Response> {
        let ConnectInfo(peer) = ConnectInfo::<SocketAddr>::from_request_parts(parts, s).await.map_err(IntoResponse::into_response)?;
        who(s, &parts.headers, peer, &parts.uri).map(|v| Looking(v, parts.uri.path().to_owned()))
    }
}

/// A request naming another host than this loopback listener.
fn wrong_host() -> Response {
    (StatusCode::MISDIRECTED_REQUEST, "this listener answers to localhost, 127.0.0.1 or [::1] only (no daemon.admin_token)\n")
        .into_response()
}

/// A POST's viewer: let in, its CSRF token right, allowed to act.
#[allow(clippy::result_large_err)] // the error is the answer itself
fn actor(s: &Shared, headers: &HeaderMap, peer: SocketAddr, csrf: Option<&str>, back: &str) -> Result<Viewer, Response> {
    let v = auth::viewer(s, headers, peer).map_err(|e| not_let_in(e, None))?;
    let tr = v.lang.texts();
    if !v.csrf_ok(csrf) {
        tracing::warn!(peer = %peer, "An admin page action refused: its CSRF token is missing or wrong");
        return Err(message(&v, StatusCode::FORBIDDEN, tr["refused"], tr["csrf"], back));
    }
    if let Some(why) = v.may_not_act(s) {
        tracing::warn!(peer = %peer, why, "An admin page action refused");
        return Err(message(&v, StatusCode::FORBIDDEN, tr["refused"], tr[why], back));
    }
    Ok(v)
}

/// A mirror read, off the async threads; `None` when no run was recorded yet.
#[allow(clippy::result_large_err)] // the error is the answer itself
async fn read<T: Send + 'static>(
    s: &Shared,
    f: impl FnOnce(&Mirror) -> Result<T, crate::mirror::MirrorError> + Send + 'static,
) -> Result<Option<T>, Response> {
    let dir = s.config.borrow().state_dir.clone();
    let answer = tokio::task::spawn_blocking(move || Mirror::open_read_only(&dir)?.map(|m| f(&m)).transpose()).await;
    match answer {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err((StatusCode::SERVICE_UNAVAILABLE, format!("the mirror could not be read: {e}\n")).into_response()),
        Err(e) => Err((StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response()),
    }
}

/// A mirror write on the service's own connection.
#[allow(clippy::result_large_err)] // the error is the answer itself
async fn write<T: Send + 'static>(
    s: &Shared,
    f: impl FnOnce(&Mirror) -> Result<T, crate::mirror::MirrorError> + Send + 'static,
) -> Result<T, Response> {
    let mirror = s.mirror.clone();
    match tokio::task::spawn_blocking(move || f(&mirror)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err((StatusCode::SERVICE_UNAVAILABLE, format!("the mirror could not be written: {e}\n")).into_response()),
        Err(e) => Err((StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response()),
    }
}

/// A run as the pages show it.
fn run_view(r: &crate::mirror::RunRecord) -> Value {
    use Outcome::{Failed, HeldBack, Ok as Done};
    let duration = r.finished_at.as_deref().and_then(|f| {
        let (a, b) = (chrono::DateTime::parse_from_rfc3339(&r.started_at).ok()?, chrono::DateTime::parse_from_rfc3339(f).ok()?);
        let ms = (b - a).num_milliseconds().max(0);
        Some(if ms < 10_000 { format!("{:.1} s", ms as f64 / 1000.0) } else { format!("{} s", ms / 1000) })
    });
    context! {
        id => r.id.0,
        trigger => r.trigger,
        started_at => r.started_at,
        finished_at => r.finished_at,
        status => if r.finished_at.is_some() { r.status.as_str() } else { "running" },
        message => r.message,
        duration => duration,
        created => r.count(Some(Verb::Create), Done),
        updated => r.count(Some(Verb::Update), Done),
        disabled => r.count(Some(Verb::Disable), Done),
        deleted => r.count(Some(Verb::Delete), Done),
        failed => r.count(None, Failed),
        held_back => r.count(None, HeldBack),
        objects => r.objects,
    }
}

#[derive(Debug, serde::Deserialize)]
struct PageQuery {
    page: Option<String>,
}

/// A page number as asked (1 when it is not one), within reason.
fn page_number(asked: Option<&str>) -> usize {
    asked.and_then(|p| p.trim().parse::<usize>().ok()).unwrap_or(1).clamp(1, 1 << 24)
}

async fn home(State(s): State<Arc<Shared>>, Looking(v, here): Looking, Query(q): Query<PageQuery>) -> Response {
    let page = page_number(q.page.as_deref());
    let offset = (page - 1) * RUNS_PER_PAGE;
    let read = read(&s, move |m| {
        let (total, runs) = m.runs_page(offset, RUNS_PER_PAGE)?;
        let last = m.runs(1)?.into_iter().next();
        let full = m.last_full_run()?;
        let quarantined = m.failing()?.iter().filter(|f| f.quarantined).count();
        let removals = held_items(m, full.as_ref())?.1;
        Ok((total, runs, last, full, quarantined, removals))
    })
    .await;
    let (total, runs, last, full, quarantined, removals) = match read {
        Ok(Some(r)) => r,
        Ok(None) => (0, Vec::new(), None, None, 0, 0),
        Err(r) => return r,
    };
    let config = s.config.borrow().clone();
    let tz = config.schedule.zone();
    let next = s.next_fire.borrow().map(|t| t.with_timezone(&tz).to_rfc3339_opts(chrono::SecondsFormat::Secs, false));
    let pages = (total as usize).div_ceil(RUNS_PER_PAGE).max(1);
    let stream = s.events.stream_state();
    render(
        &v,
        StatusCode::OK,
        "home.html",
        &here,
        context! {
            source => config.source.kind(),
            target => config.target.kind(),
            schedule => config.schedule.describe(),
            next_run => next,
            running => s.queue.is_running(),
            last => last.as_ref().map(run_view),
            objects => full.as_ref().and_then(|r| r.objects),
            held => removals,
            quarantined => quarantined,
            stream => stream,
            runs => runs.iter().map(run_view).collect::<Vec<_>>(),
            page => page,
            pages => pages,
        },
    )
}

#[derive(Debug, Default, serde::Deserialize)]
struct ItemQuery {
    kind: Option<String>,
    op: Option<String>,
    outcome: Option<String>,
    page: Option<String>,
}

/// A filter's value: empty or `any` is none; anything else must be one of `allowed`.
fn chosen<T: std::str::FromStr>(given: Option<&str>) -> Result<Option<T>, String> {
    match given.map(str::trim) {
        None | Some("" | "any") => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|_| s.to_owned()),
    }
}

impl std::str::FromStr for KindParam {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "user" => Ok(KindParam(Kind::User)),
            "department" => Ok(KindParam(Kind::Department)),
            _ => Err(()),
        }
    }
}

struct KindParam(Kind);

async fn run(
    State(s): State<Arc<Shared>>,
    Looking(v, here): Looking,
    Path(id): Path<i64>,
    q: Result<Query<ItemQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let tr = v.lang.texts();
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let filter = (|| {
        Ok::<_, String>(ItemFilter {
            kind: chosen::<KindParam>(q.kind.as_deref())?.map(|k| k.0),
            op: chosen::<Verb>(q.op.as_deref())?,
            outcome: chosen::<Outcome>(q.outcome.as_deref())?,
        })
    })();
    let filter = match filter {
        Ok(f) => f,
        Err(bad) => return message(&v, StatusCode::BAD_REQUEST, tr["filter"], &format!("{bad:?}?"), &format!("/runs/{id}")),
    };
    let page = page_number(q.page.as_deref());
    let offset = (page - 1) * ITEMS_PER_PAGE;
    let found = read(&s, move |m| {
        let Some(run) = m.run(RunId(id))? else { return Ok(None) };
        let (matching, items) = m.items_page(RunId(id), &filter, offset, ITEMS_PER_PAGE)?;
        let requests = m.requests_page(RunId(id), REQUESTS_SHOWN)?;
        Ok(Some((run, matching, items, requests)))
    })
    .await;
    let (run, matching, items, requests) = match found {
        Ok(Some(Some(r))) => r,
        Ok(_) => return message(&v, StatusCode::NOT_FOUND, tr["not_found"], tr["no_run"], "/"),
        Err(r) => return r,
    };
    let pages = (matching as usize).div_ceil(ITEMS_PER_PAGE).max(1);
    let link = |page: usize| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, val) in
            [("kind", filter.kind.map(Kind::as_str)), ("op", filter.op.map(Verb::as_str)), ("outcome", filter.outcome.map(Outcome::as_str))]
        {
            if let Some(val) = val {
                q.append_pair(k, val);
            }
        }
        q.append_pair("page", &page.to_string());
        format!("/runs/{id}?{}", q.finish())
    };
    let (logged, requests) = requests;
    let more_requests = (logged as usize).saturating_sub(requests.len());
    render(
        &v,
        StatusCode::OK,
        "run.html",
        &here,
        context! {
            run => run_view(&run),
            items => items.iter().map(|i| context! {
                kind => i.kind.as_str(), op => i.op.as_str(), outcome => i.outcome.as_str(),
                source_id => i.source_id, target_id => i.target_id, error => i.error, at => i.at,
                changes => i.changes.as_ref().and_then(|c| c.as_array()).map(|list| list.iter().map(|c| context! {
                    field => c["field"].as_str().unwrap_or("?"),
                    from => c["from"].as_str(),
                    to => c["to"].as_str(),
                }).collect::<Vec<_>>()),
            }).collect::<Vec<_>>(),
            matching => matching,
            kinds => ["user", "department"],
            ops => Verb::ALLOWED,
            outcomes => Outcome::ALLOWED,
            chosen => context! {
                kind => filter.kind.map(Kind::as_str), op => filter.op.map(Verb::as_str), outcome => filter.outcome.map(Outcome::as_str),
            },
            page => page,
            pages => pages,
            newer => (page > 1).then(|| link(page - 1)),
            older => (page < pages).then(|| link(page + 1)),
            requests => requests,
            more_requests => more_requests,
        },
    )
}

/// The held-back deletions of the last full run, and what was done of them.
struct Held {
    run: Option<crate::mirror::RunRecord>,
    items: Vec<crate::mirror::ItemRecord>,
    removals: u64,
    digest: Option<String>,
    rejected: bool,
    actions: Vec<AdminAction>,
}

/// A full run's held-back items, how many removals they are, and their digest.
fn held_items(
    m: &Mirror,
    run: Option<&crate::mirror::RunRecord>,
) -> Result<(Vec<crate::mirror::ItemRecord>, u64, Option<String>), crate::mirror::MirrorError> {
    let items = match run {
        Some(r) => m.items_page(r.id, &ItemFilter { outcome: Some(Outcome::HeldBack), ..ItemFilter::default() }, 0, usize::MAX >> 1)?.1,
        None => Vec::new(),
    };
    let (removals, digest) = crate::mirror::held_back(&items);
    Ok((items, removals, digest))
}

fn held(m: &Mirror) -> Result<Held, crate::mirror::MirrorError> {
    let run = m.last_full_run()?;
    let (items, removals, digest) = held_items(m, run.as_ref())?;
    let rejected = digest.is_some() && m.rejected()? == digest;
    Ok(Held { run, items, removals, digest, rejected, actions: m.actions(50)? })
}

async fn deletions(State(s): State<Arc<Shared>>, Looking(v, here): Looking) -> Response {
    let h = match read(&s, held).await {
        Ok(Some(h)) => h,
        Ok(None) => Held { run: None, items: Vec::new(), removals: 0, digest: None, rejected: false, actions: Vec::new() },
        Err(r) => return r,
    };
    render(
        &v,
        StatusCode::OK,
        "deletions.html",
        &here,
        context! {
            run => h.run.as_ref().map(run_view),
            items => h.items.iter().map(|i| context! {
                kind => i.kind.as_str(), op => i.op.as_str(), source_id => i.source_id, target_id => i.target_id, error => i.error,
            }).collect::<Vec<_>>(),
            removals => h.removals,
            digest => h.digest,
            rejected => h.rejected,
            may_not => v.may_not_act(&s),
            actions => h.actions,
        },
    )
}

#[derive(Debug, serde::Deserialize)]
struct HeldForm {
    csrf: Option<String>,
    /// The digest of the held-back deletions the admin saw.
    held: String,
}

/// Approve or reject: the held set must still be the one shown.
async fn decide(s: Arc<Shared>, peer: SocketAddr, headers: HeaderMap, form: HeldForm, approve: bool) -> Response {
    let v = match actor(&s, &headers, peer, form.csrf.as_deref(), "/deletions") {
        Ok(v) => v,
        Err(r) => return r,
    };
    let tr = v.lang.texts();
    let h = match read(&s, held).await {
        Ok(Some(h)) => h,
        Ok(None) => return message(&v, StatusCode::CONFLICT, tr["refused"], tr["held_none"], "/deletions"),
        Err(r) => return r,
    };
    if h.digest.as_deref() != Some(form.held.as_str()) {
        return message(&v, StatusCode::CONFLICT, tr["refused"], tr["stale"], "/deletions");
    }
    let run = h.run.as_ref().map_or(0, |r| r.id.0);
    let action = AdminAction {
        at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        who: v.who.to_owned(),
        peer: auth::client(&headers, peer),
        action: if approve { "approve" } else { "reject" }.to_owned(),
        detail: format!("{} removals held back by run {run}", h.removals),
    };
    let digest = form.held.clone();
    if let Err(r) = write(&s, move |m| m.record_action(&action, Some(&digest))).await {
        return r;
    }
    if approve {
        let queued = s.queue.push(crate::trigger::Trigger {
            kind: crate::trigger::TriggerKind::Web,
            allow_deletes: 0,
            approved: u64::from_str_radix(&form.held, 16).ok(),
            only: None,
            events: Vec::new(),
        });
        tracing::info!(who = v.who, peer = %peer.ip(), removals = h.removals, run, %queued, "Held-back deletions approved on the admin page");
        message(&v, StatusCode::OK, tr["done"], tr["approved"], "/deletions")
    } else {
        tracing::info!(who = v.who, peer = %peer.ip(), removals = h.removals, run, "Held-back deletions rejected on the admin page");
        message(&v, StatusCode::OK, tr["done"], tr["rejected"], "/deletions")
    }
}

async fn approve(
    State(s): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<HeldForm>,
) -> Response {
    decide(s, peer, headers, form, true).await
}

async fn reject(
    State(s): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<HeldForm>,
) -> Response {
    decide(s, peer, headers, form, false).await
}

async fn quarantine(State(s): State<Arc<Shared>>, Looking(v, here): Looking) -> Response {
    let failing = match read(&s, |m| m.failing()).await {
        Ok(f) => f.unwrap_or_default(),
        Err(r) => return r,
    };
    render(&v, StatusCode::OK, "quarantine.html", &here, context! { failing => failing, may_not => v.may_not_act(&s) })
}

#[derive(Debug, serde::Deserialize)]
struct RetryForm {
    csrf: Option<String>,
    /// The object (its source id, or target id); absent: every one.
    id: Option<String>,
}

async fn retry(
    State(s): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<RetryForm>,
) -> Response {
    let v = match actor(&s, &headers, peer, form.csrf.as_deref(), "/quarantine") {
        Ok(v) => v,
        Err(r) => return r,
    };
    let tr = v.lang.texts();
    let id = form.id.filter(|i| !i.trim().is_empty());
    let action = AdminAction {
        at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        who: v.who.to_owned(),
        peer: auth::client(&headers, peer),
        action: "retry".to_owned(),
        detail: id.clone().unwrap_or_else(|| "all".to_owned()),
    };
    let released = write(&s, move |m| {
        let n = m.release(id.as_deref())?;
        m.record_action(&AdminAction { detail: format!("{} ({n} released)", action.detail), ..action }, None)?;
        Ok(n)
    })
    .await;
    match released {
        Ok(n) => {
            tracing::info!(who = v.who, peer = %peer.ip(), released = n, "Failing objects released on the admin page");
            message(&v, StatusCode::OK, tr["done"], &format!("{} ({n})", tr["released"]), "/quarantine")
        }
        Err(r) => r,
    }
}

#[derive(Debug, serde::Deserialize)]
struct LookupQuery {
    q: Option<String>,
    kind: Option<String>,
}

async fn lookup(State(s): State<Arc<Shared>>, Looking(v, here): Looking, Query(q): Query<LookupQuery>) -> Response {
    let tr = v.lang.texts();
    let kind = if q.kind.as_deref() == Some("department") { Kind::Department } else { Kind::User };
    let query = q.q.as_deref().map(str::trim).filter(|q| !q.is_empty()).map(str::to_owned);
    let (mut answer, mut error, mut status) = (None, None, StatusCode::OK);
    if let Some(key) = &query {
        let config = s.config.borrow().clone();
        match crate::sync::explain::explain(&config, kind, key).await {
            Ok(e) => answer = Some(Value::from_serialize(&e)),
            Err(crate::sync::explain::ExplainError::Unknown { .. }) => {
                (error, status) = (Some(tr["unknown"].to_owned()), StatusCode::NOT_FOUND);
            }
            Err(e) => {
                let text = crate::redact::redact(&format!("{:#}", anyhow::Error::from(e))).into_owned();
                (error, status) = (Some(text), StatusCode::BAD_GATEWAY);
            }
        }
    }
    render(&v, status, "lookup.html", &here, context! { query => query, kind => kind.as_str(), answer => answer, error => error })
}

#[derive(Debug, serde::Deserialize)]
struct CheckQuery {
    run: Option<String>,
}

async fn check(State(s): State<Arc<Shared>>, Looking(v, here): Looking, Query(q): Query<CheckQuery>) -> Response {
    if q.run.is_none() {
        return render(&v, StatusCode::OK, "check.html", &here, context! { ran => false });
    }
    // check-config: the file as it is on disk now (what a reload would load).
    let path = s.config_path.clone();
    let problems: Vec<String> = match tokio::task::spawn_blocking(move || crate::settings::load(&path)).await {
        Ok(Ok(c)) => crate::settings::preflight(&c).iter().map(ToString::to_string).collect(),
        Ok(Err(crate::config::ConfigError::Invalid { problems, .. })) => problems.iter().map(ToString::to_string).collect(),
        Ok(Err(e)) => vec![e.to_string()],
        Err(e) => vec![e.to_string()],
    };
    // check-target: the running config's target, asked without writing.
    let config = s.config.borrow().clone();
    let target = match crate::targets::build(&config.target, &config.policy.users) {
        Ok(t) => t.check().await.map_err(|e| format!("{:#}", anyhow::Error::from(e))),
        Err(e) => Err(format!("{:#}", anyhow::Error::from(e))),
    };
    let (rows, target_error) = match target {
        Ok(rows) => (rows.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<Vec<_>>(), None),
        Err(e) => (Vec::new(), Some(e)),
    };
    render(
        &v,
        StatusCode::OK,
        "check.html",
        &here,
        context! {
            ran => true,
            config_path => s.config_path.display().to_string(),
            problems => problems,
            target_kind => config.target.kind(),
            rows => rows,
            target_error => target_error,
        },
    )
}

#[derive(Debug, serde::Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

/// Where to go after the login: a path of this site, never another site.
fn local(next: Option<&str>) -> String {
    // Visible ASCII only: a browser drops tabs and newlines, so `/\t/x` would be `//x`, another site.
    next.filter(|n| n.starts_with('/') && !n.starts_with("//") && n.bytes().all(|b| (0x21..0x7f).contains(&b) && b != b'\\'))
        .unwrap_or("/")
        .to_owned()
}

fn anonymous(headers: &HeaderMap, peer: SocketAddr) -> Viewer {
    auth::anonymous(headers, peer)
}

async fn login_page(
    State(s): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    if s.config.borrow().daemon.admin_token.is_none() {
        return see_other("/");
    }
    let v = anonymous(&headers, peer);
    render(&v, StatusCode::OK, "login.html", "/login", context! { next => local(q.next.as_deref()), wrong => false })
}

#[derive(Debug, serde::Deserialize)]
struct LoginForm {
    token: String,
    next: Option<String>,
}

async fn login(
    State(s): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = local(form.next.as_deref());
    match auth::login(&s, &headers, peer, &form.token) {
        Some(cookie) => {
            tracing::info!(peer = %peer.ip(), "Logged in to the admin page with the admin token");
            let mut r = see_other(&next);
            if let Ok(c) = cookie.parse() {
                r.headers_mut().append(header::SET_COOKIE, c);
            }
            r
        }
        None => {
            tracing::warn!(peer = %peer.ip(), "Admin page login refused: not the admin token");
            // Slows down guessing.
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            let v = anonymous(&headers, peer);
            render(&v, StatusCode::UNAUTHORIZED, "login.html", "/login", context! { next => next, wrong => true })
        }
    }
}

#[derive(Debug, serde::Deserialize)]
struct CsrfForm {
    csrf: Option<String>,
}

async fn logout(
    State(s): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let Ok(v) = auth::viewer(&s, &headers, peer) else { return see_other("/login") };
    if !v.csrf_ok(form.csrf.as_deref()) {
        let tr = v.lang.texts();
        return message(&v, StatusCode::FORBIDDEN, tr["refused"], tr["csrf"], "/");
    }
    let mut r = see_other(if s.config.borrow().daemon.admin_token.is_some() { "/login" } else { "/" });
    if let Ok(c) = auth::logout(&s, &v).parse() {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r
}

#[derive(Debug, serde::Deserialize)]
struct BackQuery {
    back: Option<String>,
}

/// The language switch: a cookie for a year, then back where it was.
async fn switch_lang(Path(code): Path<String>, Query(q): Query<BackQuery>) -> Response {
    let Some(lang) = i18n::Lang::parse(&code) else { return (StatusCode::NOT_FOUND, "no such language\n").into_response() };
    let mut r = see_other(&local(q.back.as_deref()));
    if let Ok(c) = format!("{}={}; Path=/; SameSite=Strict; Max-Age=31536000", i18n::LANG_COOKIE, lang.code()).parse() {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r
}

#[cfg(test)]
mod tests;
