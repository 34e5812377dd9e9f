//! Who is looking: the admin token, entered once into a form and kept as
//! a session (an HttpOnly, SameSite=Strict cookie, Secure behind TLS); or
//! `loopback` when no token is configured (the listener is then loopback
//! only). Each session has its CSRF token; every POST must carry it.
//! Actions need `daemon.web_actions`, and are refused over plain HTTP
//! from beyond loopback unless `daemon.web_actions_over_plain_http`.

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
}

/// The open sessions (in memory: a restart asks for the token again).
#[derive(Debug, Default)]
pub struct Sessions(Mutex<HashMap<String, Session>>);

fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Sessions {
    fn open(&self, who: &'static str) -> (String, Session) {
        let id = random_token();
        let session = Session { who, csrf: random_token(), opened: Instant::now() };
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
    pub peer: SocketAddr,
    pub tls: bool,
    pub lang: Lang,
    /// A session opened by this request: its cookie to set.
    pub set_cookie: Option<String>,
    session: Option<String>,
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
        if !self.peer.ip().is_loopback() && !self.tls && !d.web_actions_over_plain_http {
            return Some("plain_http");
        }
        None
    }
}

/// Not let in: the login page's address (GET) or a 401 (POST).
pub struct LoginFirst;

/// Who the request is from, or [`LoginFirst`] when the admin token is
/// configured and the request has neither a session nor the bearer token.
pub fn viewer(s: &Shared, headers: &HeaderMap, peer: SocketAddr) -> Result<Viewer, LoginFirst> {
    let tls = over_tls(headers);
    let lang = Lang::of(headers);
    let token = s.config.borrow().daemon.admin_token.clone();
    let make = |who, csrf, session: Option<String>, set_cookie| Viewer { who, csrf, peer, tls, lang, set_cookie, session };
    if let Some(id) = cookie(headers, SESSION_COOKIE)
        && let Some(sess) = s.web.get(id)
        // A session opened without a token does not outlive a token configured since.
        && (token.is_none() || sess.who == "token")
    {
        return Ok(make(sess.who, Some(sess.csrf), Some(id.to_owned()), None));
    }
    match token {
        Some(token) => {
            let bearer = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .is_some_and(|g| crate::http::same(g.trim().as_bytes(), token.expose().as_bytes()));
            if bearer { Ok(make("token", None, None, None)) } else { Err(LoginFirst) }
        }
        None => {
            let (id, sess) = s.web.open("loopback");
            Ok(make("loopback", Some(sess.csrf), Some(id.clone()), Some(session_cookie(&id, tls))))
        }
    }
}

/// The token entered into the login form: a new session's cookie, or None.
pub fn login(s: &Shared, headers: &HeaderMap, given: &str) -> Option<String> {
    let token = s.config.borrow().daemon.admin_token.clone()?;
    if !crate::http::same(given.trim().as_bytes(), token.expose().as_bytes()) {
        return None;
    }
    let (id, _) = s.web.open("token");
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
    Viewer { who: "", csrf: None, peer, tls: over_tls(headers), lang: Lang::of(headers), set_cookie: None, session: None }
}
