//! The HTTP machinery shared by the SaaS sources (Feishu/Lark, DingTalk,
//! WeCom, …): a token cache, the envelope check, rate limiting and retries.
//!
//! - Token: cached until expiry minus a margin; the refresh happens under a
//!   lock, so concurrent requests wait for one refresh (single-flight). On
//!   the vendor's token-invalid codes the token is dropped and the request
//!   is retried once with a fresh one.
//! - Envelope: each vendor's [`Vendor::check`] reads status, headers and
//!   body before anything is parsed: business errors behind HTTP 200,
//!   non-JSON 404 bodies, throttling codes.
//! - Rate: one governor limiter per source (requests per second), and
//!   backon's exponential backoff with jitter on throttling and transient
//!   errors, honouring the vendor's wait hint, capped attempts.
//!
//! Errors name the vendor, the endpoint path, the code and message, and a
//! hint; never a token or a secret (tokens travel in headers marked
//! sensitive or in query strings that errors never print).

pub mod by_id;
pub mod callback;
pub mod config;
pub mod pager;
pub mod wire;

use super::SourceError;
use backon::{ExponentialBuilder, Retryable};
use futures::future::BoxFuture;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::HeaderMap;
use serde_json::Value;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use crate::token::Token;
use crate::token::TokenCache;

/// What a response means, decided before parsing the payload.
#[derive(Debug)]
pub enum Verdict {
    Ok(Value),
    /// The token is invalid or expired: refresh once, retry once.
    TokenInvalid {
        code: String,
        message: String,
    },
    /// Slow down; `wait` when the vendor says how long.
    Throttled {
        code: String,
        message: String,
        wait: Option<Duration>,
    },
    /// Worth another attempt (5xx, busy).
    Transient {
        code: String,
        message: String,
    },
    /// Permanent: fail the fetch.
    Fatal {
        code: String,
        message: String,
    },
}

/// One vendor's rules.
pub trait Vendor: Send + Sync {
    /// "Feishu", "DingTalk", … for errors and logs.
    fn name(&self) -> &'static str;
    /// Fetch a new token (through [`Client::raw`], which does not need one).
    fn fetch_token<'a>(&'a self, client: &'a Client) -> BoxFuture<'a, Result<Token, SourceError>>;
    /// Put the token on a request.
    fn authorize(&self, req: reqwest::RequestBuilder, token: &str) -> reqwest::RequestBuilder;
    /// Read a response's status, headers and body.
    fn check(&self, status: u16, headers: &HeaderMap, body: &[u8]) -> Verdict;
    /// What to check for a permanent code, if the vendor documents it.
    fn hint(&self, _code: &str) -> Option<&'static str> {
        None
    }
}

/// Settings shared by the SaaS sources.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    pub base_url: String,
    pub timeout: Duration,
    /// Requests per second across the source.
    pub rate_limit: u32,
    pub max_retries: usize,
    /// Refresh this long before the token expires.
    pub token_margin: Duration,
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    limiter: DefaultDirectRateLimiter,
    retries: usize,
    token: TokenCache,
    requests: AtomicU64,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("base", &self.base).field("requests", &self.requests()).finish()
    }
}

/// One failed attempt; `retry` says whether another may follow.
struct Attempt {
    error: SourceError,
    retry: bool,
    wait: Option<Duration>,
}

impl Client {
    pub fn new(vendor: &'static str, s: &HttpSettings) -> Result<Self, SourceError> {
        let http = crate::http_client::builder(s.timeout).build().map_err(|e| SourceError::Api {
            vendor,
            path: String::new(),
            message: format!("cannot build the HTTP client: {e}"),
        })?;
        let rate = NonZeroU32::new(s.rate_limit.max(1)).unwrap_or(NonZeroU32::MIN);
        Ok(Self {
            http,
            base: s.base_url.trim_end_matches('/').to_owned(),
            limiter: RateLimiter::direct(Quota::per_second(rate).allow_burst(NonZeroU32::MIN)),
            retries: s.max_retries,
            token: TokenCache::new(s.token_margin),
            requests: AtomicU64::new(0),
        })
    }

    /// Requests sent so far (token requests included).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// A request builder for `path` under the base URL, without a token.
    pub fn raw(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    /// A request builder for an absolute URL (a token endpoint on another
    /// host, a next-page link the vendor gave verbatim), without a token.
    pub fn raw_url(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.http.request(method, url)
    }

    /// The base URL (`https://host`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Send a request built by [`Client::raw`] under the rate limit, and
    /// check it with the vendor's rules (no token, no retry). Every HTTP
    /// request, token requests included, counts once in
    /// `orgsync_source_requests_total`.
    pub async fn send_raw(&self, vendor: &dyn Vendor, req: reqwest::RequestBuilder) -> Verdict {
        self.limiter.until_ready().await;
        self.send_permitted(vendor, req).await
    }

    /// [`Client::send_raw`] for a caller that already waited for the rate limit.
    async fn send_permitted(&self, vendor: &dyn Vendor, req: reqwest::RequestBuilder) -> Verdict {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let verdict = self.judge(vendor, req).await;
        let label = match &verdict {
            Verdict::Ok(_) => "ok",
            Verdict::TokenInvalid { .. } => "token_invalid",
            Verdict::Throttled { .. } => "throttled",
            Verdict::Transient { .. } => "transient",
            Verdict::Fatal { .. } => "error",
        };
        crate::telemetry::source_request(label);
        verdict
    }

    /// The verdict on one request. A throttled answer without the vendor's
    /// own wait hint waits as long as `Retry-After` says, for every vendor.
    async fn judge(&self, vendor: &dyn Vendor, req: reqwest::RequestBuilder) -> Verdict {
        match req.send().await {
            Err(e) => Verdict::Transient { code: "transport".into(), message: without_url(&e) },
            Ok(resp) => {
                let status = resp.status().as_u16();
                let headers = resp.headers().clone();
                match resp.bytes().await {
                    Ok(body) => match vendor.check(status, &headers, &body) {
                        Verdict::Throttled { code, message, wait: None } => Verdict::Throttled {
                            code,
                            message,
                            wait: crate::http_client::header_seconds(&headers, reqwest::header::RETRY_AFTER.as_str()),
                        },
                        v => v,
                    },
                    Err(e) => Verdict::Transient { code: "transport".into(), message: without_url(&e) },
                }
            }
        }
    }

    /// The cached token, or a new one (one refresh at a time).
    async fn token(&self, vendor: &dyn Vendor) -> Result<String, SourceError> {
        self.token.get(vendor.fetch_token(self)).await
    }

    /// How many times a token was fetched.
    pub fn token_fetches(&self) -> u64 {
        self.token.fetches()
    }

    /// One API call with the token, retries and the envelope check.
    /// `build` makes the request (it may be called several times).
    /// The answer is read as `T` (the source's `api.rs` type); an answer
    /// that does not fit fails the call, naming where.
    pub async fn call<T: serde::de::DeserializeOwned>(
        &self,
        vendor: &dyn Vendor,
        path: &str,
        build: &(dyn Fn(&Client) -> reqwest::RequestBuilder + Sync),
    ) -> Result<T, SourceError> {
        let v = self.call_value(vendor, path, build).await?;
        serde_path_to_error::deserialize::<_, T>(v).map_err(|e| SourceError::Api {
            vendor: vendor.name(),
            path: path.to_owned(),
            message: format!("unexpected answer: {}: {}", e.path(), e.inner()),
        })
    }

    async fn call_value(
        &self,
        vendor: &dyn Vendor,
        path: &str,
        build: &(dyn Fn(&Client) -> reqwest::RequestBuilder + Sync),
    ) -> Result<Value, SourceError> {
        let refreshed = std::sync::atomic::AtomicBool::new(false);
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(30))
            .with_max_times(self.retries)
            .with_jitter();
        let attempt = || async {
            let token = self.token(vendor).await.map_err(|error| Attempt { error, retry: false, wait: None })?;
            // A refresh may finish while this request waits for the rate
            // limit, and vendors that revoke the old token would refuse it:
            // send with the newest token. Never wait on the token lock while
            // holding a permit (the permits would bunch up into a burst).
            self.limiter.until_ready().await;
            let token = self.token.newer(token);
            let verdict = self.send_permitted(vendor, vendor.authorize(build(self), &token)).await;
            let fail = |code: String, message: String| api_error(vendor, path, &code, &message);
            match verdict {
                Verdict::Ok(v) => Ok(v),
                Verdict::TokenInvalid { code, message } => {
                    self.token.invalidate(&token).await;
                    let first = !refreshed.swap(true, Ordering::Relaxed);
                    Err(Attempt { error: fail(code, message), retry: first, wait: Some(Duration::ZERO) })
                }
                Verdict::Throttled { code, message, wait } => Err(Attempt { error: fail(code, message), retry: true, wait }),
                Verdict::Transient { code, message } => Err(Attempt { error: fail(code, message), retry: true, wait: None }),
                Verdict::Fatal { code, message } => Err(Attempt { error: fail(code, message), retry: false, wait: None }),
            }
        };
        attempt
            .retry(backoff)
            .when(|a: &Attempt| a.retry)
            .adjust(|a: &Attempt, d| a.wait.or(d).map(|d| d.min(Duration::from_secs(120))))
            .notify(|a: &Attempt, d| tracing::warn!(error = %a.error, retry_in = ?d, "source request failed, retrying"))
            .await
            .map_err(|a| if a.retry { a.error.into_transient() } else { a.error })
    }
}

/// Send a token request (built with [`Client::raw`]) and read the token
/// from `value_key` and its lifetime in seconds from `ttl_key` (7200 when
/// absent). Any other verdict is the vendor's error for `path`.
pub async fn request_token(
    client: &Client,
    vendor: &dyn Vendor,
    path: &str,
    req: reqwest::RequestBuilder,
    value_key: &str,
    ttl_key: &str,
) -> Result<Token, SourceError> {
    match client.send_raw(vendor, req).await {
        Verdict::Ok(v) => {
            let value = v[value_key]
                .as_str()
                .filter(|t| !t.is_empty())
                .ok_or_else(|| api_error(vendor, path, "-", &format!("no {value_key} in the answer")))?;
            let ttl = v[ttl_key].as_u64().unwrap_or(7200);
            Ok(Token { value: value.to_owned(), ttl: Duration::from_secs(ttl) })
        }
        Verdict::TokenInvalid { code, message }
        | Verdict::Throttled { code, message, .. }
        | Verdict::Transient { code, message }
        | Verdict::Fatal { code, message } => Err(api_error(vendor, path, &code, &message)),
    }
}

/// Put the token in the query string (`?access_token=`), as DingTalk's
/// oapi and WeCom want it. Errors never print URLs, so it stays out of them.
pub fn query_token(req: reqwest::RequestBuilder, token: &str) -> reqwest::RequestBuilder {
    req.query(&[("access_token", token)])
}

/// The error for a vendor's code, with the vendor's hint when it has one.
pub fn api_error(vendor: &dyn Vendor, path: &str, code: &str, message: &str) -> SourceError {
    let hint = vendor.hint(code).map(|h| format!(": {h}")).unwrap_or_default();
    SourceError::Api { vendor: vendor.name(), path: path.to_owned(), message: format!("code {code}: {}{hint}", message.trim()) }
}

/// reqwest's error text without the URL (query strings may carry a token).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_decode() || e.is_body() {
        "cannot read the response"
    } else {
        "request failed"
    };
    match std::error::Error::source(e) {
        Some(s) => format!("{kind}: {s}"),
        None => kind.to_owned(),
    }
}

/// A code with no meaning of its own for the vendor, judged by the HTTP
/// status: 429 is throttling, 5xx worth another attempt, the rest final.
pub fn by_status(status: u16, code: String, message: String) -> Verdict {
    match status {
        429 => Verdict::Throttled { code, message, wait: None },
        s if s >= 500 => Verdict::Transient { code, message },
        _ => Verdict::Fatal { code, message },
    }
}

/// A body as JSON, or the verdict on a body that is not JSON (judged by
/// the status) with a short printable excerpt of what it was.
fn json_or_verdict(status: u16, body: &[u8]) -> Result<Value, Verdict> {
    serde_json::from_slice(body).map_err(|_| {
        let text = crate::redact::excerpt(&String::from_utf8_lossy(body), 120);
        by_status(status, format!("HTTP {status}"), format!("not JSON: {:?}", text.trim()))
    })
}

/// A vendor's envelope (`E`, its code and message fields) read before the
/// payload, with the whole answer for [`Verdict::Ok`]. A body that is not
/// JSON, or an envelope of the wrong shape, is the verdict itself.
pub fn envelope<E: serde::de::DeserializeOwned>(status: u16, body: &[u8]) -> Result<(E, Value), Verdict> {
    let v = json_or_verdict(status, body)?;
    match E::deserialize(&v) {
        Ok(e) => Ok((e, v)),
        Err(e) => Err(by_status(status, format!("HTTP {status}"), format!("an envelope of an unexpected shape: {e}"))),
    }
}

/// Split mapped records into the readable and the unreadable.
pub fn split<T>(results: impl IntoIterator<Item = Result<T, crate::model::Unreadable>>) -> (Vec<T>, Vec<crate::model::Unreadable>) {
    let mut ok = Vec::new();
    let mut bad: Vec<crate::model::Unreadable> = Vec::new();
    for r in results {
        match r {
            Ok(t) => ok.push(t),
            // A user listed in several departments is unreadable once.
            Err(u) if !bad.contains(&u) => bad.push(u),
            Err(_) => {}
        }
    }
    (ok, bad)
}
