//! What every HTTP client in orgsync shares (the SaaS sources, the SCIM and
//! REST targets, the notification channels): how a client is built, the
//! headers that carry seconds, a method's name and a transport error's
//! causes.

use reqwest::header::HeaderMap;
use std::time::Duration;

/// A client builder with orgsync's user agent, the request timeout, and a
/// connect timeout of at most 10 s within it.
pub fn builder(timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("orgsync/", env!("CARGO_PKG_VERSION")))
}

/// A header holding a number of seconds (`Retry-After`, Feishu's
/// `x-ogw-ratelimit-reset`).
pub fn header_seconds(headers: &HeaderMap, name: &str) -> Option<Duration> {
    headers.get(name).and_then(|v| v.to_str().ok()).and_then(|s| s.trim().parse::<u64>().ok()).map(Duration::from_secs)
}

/// A request method's name, for errors, logs and the request log.
pub fn method_name(m: &reqwest::Method) -> &'static str {
    match m.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        _ => "REQUEST",
    }
}

/// A transport error with what caused it (`error sending request: tcp
/// connect error: Connection refused (os error 111)`), without its URL (the
/// path is said already) and without saying one cause twice.
pub fn cause_chain(e: &reqwest::Error) -> String {
    let first = e.to_string();
    let mut out = first.split(" for url (").next().unwrap_or(&first).to_owned();
    let mut next = std::error::Error::source(e);
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}
