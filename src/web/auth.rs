//! Who is looking: the admin token, entered once into a form and kept as
//! a session (an HttpOnly, SameSite=Strict cookie, Secure behind TLS); or
//! `loopback` when no token is configured (the listener is then loopback
//! only). Each session has its CSRF token; every POST must carry it.
//! Actions need `daemon.web_actions`, and are refused from beyond loopback
//! (a remote peer, or a local proxy forwarding) unless both the request and
//! the session's login came over TLS (a proxy's `X-Forwarded-Proto: https`),
//! or `daemon.web_actions_over_plain_http` allows plain HTTP.

use super::i18n::Lang;
use crate::http::Shared;
use axum::http::{HeaderMap, header};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const SESSION_COOKIE: &str = "orgsync_session";
/// How long a session lasts after it was opened.
const TTL: Duration = Duration::from_secs(12 * 3600);
/// The most sessions kept; the oldest go first.
const MAX_SESSIONS: usize = 1000;

#[derive(Clone, Debug)]
struct Session {
    who: &'static str,
    csrf: String,
    opened: Instant,
    /// The admin token it was opened with (a digest): a token changed by a
    /// reload ends the sessions of the old one.
    token: Option<[u8; 32]>,
    /// Opened over TLS or straight from loopback: its cookie never went in
    /// plain text over a network, so it may act.
    guarded: bool,
}

fn token_digest(token: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(token.trim().as_bytes()).into()
}

/// The open sessions (in memory: a restart asks for the token again).
#[derive(Debug, Default)]
pub struct Sessions(Mutex<HashMap<String, Session>>);

fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Sessions {
    fn open(&self, who: &'static str, token: Option<[u8; 32]>, guarded: bool) -> (String, Session) {
        let id = random_token();
        let session = Session { who, csrf: random_token(), opened: Instant::now(), token, guarded };
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|_, s| s.opened.elapsed() < TTL);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map.iter().min_by_key(|(_, s)| s.opened).map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(id.clone(), session.clone());
        (id, session)
    }

    fn get(&self, id: &str) -> Option<Session> {
        let map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(id).filter(|s| s.opened.elapsed() < TTL).cloned()
    }

    fn close(&self, id: &str) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(id);
    }
}

/// A cookie of the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the client reached us over TLS (a proxy says so in
/// `X-Forwarded-Proto`: only a client's own credentials depend on it).
pub fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
}

/// Whether this request's credentials stay off the network in clear: it
/// came over TLS, or straight from loopback.
fn guarded(headers: &HeaderMap, peer: SocketAddr) -> bool {
    over_tls(headers) || !beyond_loopback(headers, peer)
}

/// Whether the request came from beyond loopback: a peer elsewhere, or a
/// proxy on this host forwarding for someone (`X-Forwarded-For`).
pub fn beyond_loopback(headers: &HeaderMap, peer: SocketAddr) -> bool {
    !peer.ip().is_loopback() || headers.contains_key("x-forwarded-for")
}

/// The client as recorded: its address, and whom a local proxy forwarded for.
pub fn client(headers: &HeaderMap, peer: SocketAddr) -> String {
    let forwarded = headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .filter(|f| !f.is_empty() && f.len() <= 64 && f.chars().all(|c| c.is_ascii_hexdigit() || ".:[]".contains(c)));
    match forwarded {
        Some(f) if peer.ip().is_loopback() => format!("{} for {f}", peer.ip()),
        _ => peer.ip().to_string(),
    }
}

/// Without a token the listener is loopback only: a request must name this
/// host as loopback does (`localhost`, `127.0.0.1`, `[::1]`), so a page of
/// another site whose name was made to resolve here (DNS rebinding) is refused.
fn loopback_host(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The session cookie for `id`.
fn session_cookie(id: &str, tls: bool) -> String {
    format!("{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict{}", if tls { "; Secure" } else { "" })
}

/// The request's viewer.
#[derive(Clone, Debug)]
pub struct Viewer {
    /// `token` or `loopback`.
    pub who: &'static str,
    /// The session's CSRF token (none for a bearer-token client: no cookie, no CSRF).
    pub csrf: Option<String>,
    pub tls: bool,
    pub lang: Lang,
    /// A session opened by this request: its cookie to set.
    pub set_cookie: Option<String>,
    session: Option<String>,
    /// Its credentials never crossed a network in plain text (a session
    /// opened over TLS or from loopback, or this request's own).
    guarded: bool,
    /// This request came from beyond loopback.
    beyond: bool,
}

impl Viewer {
    /// Whether a POST's `csrf` field is this session's token (a bearer
    /// client sends none and needs none).
    pub fn csrf_ok(&self, given: Option<&str>) -> bool {
        match &self.csrf {
            None => true,
            Some(mine) => given.is_some_and(|g| crate::http::same(g.as_bytes(), mine.as_bytes())),
        }
    }

    /// Why this viewer may not act (None: it may).
    pub fn may_not_act(&self, s: &Shared) -> Option<&'static str> {
        let d = &s.config.borrow().daemon;
        if !d.web_actions {
            return Some("read_only");
        }
        if self.beyond && !(self.tls && self.guarded) && !d.web_actions_over_plain_http {
            return Some("plain_http");
        }
        None
    }
}

/// Not let in: the login page (no session), or refused outright (a Host
/// that is not this loopback listener's).
pub enum LoginFirst {
    Login,
    WrongHost,
    /// Forwarded by a proxy, and no token configured.
    Proxied,
}

/// Who the request is from, or [`LoginFirst`] when the admin token is
/// configured and the request has neither a session nor the bearer token.
pub fn viewer(s: &Shared, headers: &HeaderMap, peer: SocketAddr) -> Result<Viewer, LoginFirst> {
    let tls = over_tls(headers);
    let lang = Lang::of(headers);
    let beyond = beyond_loopback(headers, peer);
    let token = s.config.borrow().daemon.admin_token.clone();
    if token.is_none() && !loopback_host(headers) {
        return Err(LoginFirst::WrongHost);
    }
    // A proxy on this host forwarding for others: without a token they would all be `loopback`.
    if token.is_none() && headers.contains_key("x-forwarded-for") {
        return Err(LoginFirst::Proxied);
    }
    let now_token = token.as_ref().map(|t| token_digest(t.expose()));
    let make =
        |who, csrf, session: Option<String>, set_cookie, guarded| Viewer { who, csrf, tls, lang, set_cookie, session, guarded, beyond };
    if let Some(id) = cookie(headers, SESSION_COOKIE)
        && let Some(sess) = s.web.get(id)
        // A session of another token (or of none) does not outlive a reload that changed it.
        && sess.token == now_token
    {
        return Ok(make(sess.who, Some(sess.csrf), Some(id.to_owned()), None, sess.guarded));
    }
    match token {
        Some(token) => {
            let bearer = crate::http::bearer_is(headers, &token);
            if bearer { Ok(make("token", None, None, None, guarded(headers, peer))) } else { Err(LoginFirst::Login) }
        }
        None => {
            let (id, sess) = s.web.open("loopback", None, guarded(headers, peer));
            Ok(make("loopback", Some(sess.csrf), Some(id.clone()), Some(session_cookie(&id, tls)), sess.guarded))
        }
    }
}

/// The token entered into the login form: a new session's cookie, or None.
pub fn login(s: &Shared, headers: &HeaderMap, peer: SocketAddr, given: &str) -> Option<String> {
    let token = s.config.borrow().daemon.admin_token.clone()?;
    if !crate::http::same(given.trim().as_bytes(), token.expose().as_bytes()) {
        return None;
    }
    let (id, _) = s.web.open("token", Some(token_digest(token.expose())), guarded(headers, peer));
    Some(session_cookie(&id, over_tls(headers)))
}

/// End the viewer's session: the cookie that clears it.
pub fn logout(s: &Shared, v: &Viewer) -> String {
    if let Some(id) = &v.session {
        s.web.close(id);
    }
    format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}", if v.tls { "; Secure" } else { "" })
}

/// Nobody yet (the login page): no session, no CSRF token.
pub fn anonymous(headers: &HeaderMap, peer: SocketAddr) -> Viewer {
    Viewer {
        who: "",
        csrf: None,
        tls: over_tls(headers),
        lang: Lang::of(headers),
        set_cookie: None,
        session: None,
        guarded: false,
        beyond: beyond_loopback(headers, peer),
    }
}
