//! The SCIM HTTP client: auth, timeouts, retries and paging.
//!
//! Retries use backon's exponential backoff with jitter, only for transient
//! failures (timeouts, connection errors, 429, 5xx), and honour `Retry-After`
//! on 429/503 through backon's `adjust`.

use super::{ScimAuth, ScimConfig, decode_error};
use crate::http_client::method_name;
use crate::targets::TargetError;
use backon::Retryable;
use reqwest::Method;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use serde_json::Value;
use std::time::Duration;

pub const CONTENT: &str = "application/scim+json";

/// What [`Client::create`] did.
#[derive(Debug)]
pub enum Created {
    /// The POST answered (with the created resource, if any).
    Posted(Option<Value>),
    /// An earlier attempt's object was found: its id.
    Found(String),
}

#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    retries: usize,
    page_size: std::sync::atomic::AtomicUsize,
    /// Every request sent, for the run's request log.
    pub log: crate::targets::RequestLog,
}

impl Client {
    pub fn new(c: &ScimConfig) -> Result<Self, TargetError> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(CONTENT));
        let bad = |what: &str| TargetError::InvalidConfig(format!("target.{what} contains characters not allowed in an HTTP header"));
        match &c.auth {
            ScimAuth::Bearer(tok) => {
                let mut v = HeaderValue::from_str(&format!("Bearer {}", tok.expose())).map_err(|_| bad("token"))?;
                v.set_sensitive(true);
                headers.insert(AUTHORIZATION, v);
            }
            ScimAuth::Basic { username, password } => {
                use base64::Engine as _;
                let raw = format!("{username}:{}", password.expose());
                let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
                // A server that echoes request headers would echo this.
                crate::redact::register(&encoded);
                let mut v = HeaderValue::from_str(&format!("Basic {encoded}")).map_err(|_| bad("password"))?;
                v.set_sensitive(true);
                headers.insert(AUTHORIZATION, v);
            }
            ScimAuth::None => {}
        }
        let http = crate::http_client::builder(c.timeout).default_headers(headers).build().map_err(TargetError::Client)?;
        Ok(Self {
            http,
            base: c.base_url.as_str().trim_end_matches('/').to_owned(),
            retries: c.max_retries,
            page_size: c.page_size.unwrap_or(100).into(),
            log: crate::targets::RequestLog::default(),
        })
    }

    async fn once<T: serde::de::DeserializeOwned>(
        &self,
        method: &Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<(u16, Option<T>), TargetError> {
        let m = method_name(method);
        let mut req = self.http.request(method.clone(), format!("{}{path}", self.base));
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(b) = body {
            req = req.header(CONTENT_TYPE, CONTENT).body(b.to_string());
        }
        let resp = req.send().await.map_err(|source| TargetError::Transport { method: m, path: path.to_owned(), source })?;
        let status = resp.status().as_u16();
        let retry_after = crate::http_client::header_seconds(resp.headers(), RETRY_AFTER.as_str());
        let bytes = resp.bytes().await.map_err(|source| TargetError::Transport { method: m, path: path.to_owned(), source })?;
        if (200..300).contains(&status) {
            let v = if bytes.is_empty() {
                None
            } else {
                Some(serde_json::from_slice(&bytes).map_err(|e| TargetError::Decode {
                    method: m,
                    path: path.to_owned(),
                    message: e.to_string(),
                })?)
            };
            return Ok((status, v));
        }
        let detail = error_detail(&bytes);
        Err(TargetError::Http { method: m, path: path.to_owned(), status, detail, retry_after })
    }

    /// `attempt` again on transient failures, with backoff and jitter,
    /// honouring `Retry-After`; `what` says in the log what is retried.
    async fn retrying<T, F, Fut>(&self, what: &'static str, attempt: F) -> Result<T, TargetError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, TargetError>>,
    {
        attempt
            .retry(crate::targets::backoff(self.retries))
            .when(TargetError::is_transient)
            .adjust(|e, d| e.retry_after().or(d).map(|d| d.min(Duration::from_secs(300))))
            .notify(|e, d| tracing::warn!(error = %e, retry_in = ?d, "{what}"))
            .await
    }

    /// One attempt, counted in `orgsync_target_requests_total`.
    async fn counted<T: serde::de::DeserializeOwned>(
        &self,
        method: &Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<(u16, Option<T>), TargetError> {
        let started = std::time::Instant::now();
        let r = self.once(method, path, query, body).await;
        crate::telemetry::target_request(r.as_ref().map_or_else(TargetError::metric_label, |_| "ok"));
        let (status, error) = match &r {
            Ok((s, _)) => (Some(*s), None),
            Err(e) => (e.status(), Some(e.to_string())),
        };
        self.log.push(method_name(method), path, started, status, error);
        r
    }

    /// A create (POST) whose outcome may be unknown: a timeout, a closed
    /// connection or a 5xx can come after the server made the object. Before
    /// each retry `exists` looks for it (by externalId); found, it is the
    /// result and nothing is posted again. Retries as [`Client::send`].
    pub async fn create<F, Fut>(&self, path: &str, body: &Value, exists: F) -> Result<Created, TargetError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Option<String>, TargetError>>,
    {
        let tried = std::sync::atomic::AtomicBool::new(false);
        let attempt = || async {
            if tried.swap(true, std::sync::atomic::Ordering::Relaxed)
                && let Some(id) = exists().await?
            {
                return Ok(Created::Found(id));
            }
            self.counted(&Method::POST, path, &[], Some(body)).await.map(|(_, v)| Created::Posted(v))
        };
        self.retrying("Create failed with an unknown outcome; looking for the object before retrying", attempt).await
    }

    /// One request with retries on transient failures.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Option<Value>, TargetError> {
        self.send_as(method, path, query, body).await
    }

    /// [`Client::send`], the body read as a `T`.
    async fn send_as<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Option<T>, TargetError> {
        let m = &method;
        self.retrying("Transient target error, retrying", || async move { self.counted(m, path, query, body).await }).await.map(|(_, v)| v)
    }

    /// Resources per list request (the server's maxResults may lower it).
    pub fn set_page_size(&self, n: usize) {
        self.page_size.store(n.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    /// Every resource of an endpoint: see [`Client::list_each`].
    pub async fn list(&self, path: &str, filter: Option<String>) -> Result<Vec<Value>, TargetError> {
        let mut out = Vec::new();
        self.list_each(path, filter, |v| {
            out.push(v);
            Ok(())
        })
        .await?;
        Ok(out)
    }

    /// Every resource of an endpoint, page by page (`startIndex`/`count`)
    /// until `totalResults`, each handed to `take` as its page arrives (so
    /// a caller keeps only what it needs of each). Anything that is not a
    /// SCIM ListResponse, or paging that does not advance, fails the whole
    /// list: a target read wrong must never look like an empty or shorter
    /// one (that would re-create, or delete, what is there).
    pub async fn list_each(
        &self,
        path: &str,
        filter: Option<String>,
        mut take: impl FnMut(Value) -> Result<(), TargetError>,
    ) -> Result<(), TargetError> {
        let mut seen = Seen::default();
        self.list_pages(path, filter, |page| seen.each(path, page, &mut take)).await
    }

    /// [`Client::list_each`], each resource parsed and made into a `T` by
    /// `convert` on a thread of its own while the next page is read, so
    /// that reading and converting overlap (at most two pages wait for
    /// it). The first resource `convert` refuses fails the list.
    pub async fn list_converted<T: Send + 'static>(
        &self,
        path: &str,
        filter: Option<String>,
        convert: impl Fn(Value) -> Result<T, TargetError> + Send + 'static,
    ) -> Result<Vec<T>, TargetError> {
        let (pages, waiting) = std::sync::mpsc::sync_channel::<Listed>(2);
        let at = path.to_owned();
        let worker = std::thread::Builder::new()
            .name("orgsync-read".into())
            .spawn(move || {
                let (mut seen, mut out) = (Seen::default(), Vec::new());
                for page in waiting {
                    seen.each(&at, page, |v| convert(v).map(|t| out.push(t)))?;
                }
                // Grown by doubling: up to a third of it empty room, held through the run.
                out.shrink_to_fit();
                Ok::<_, TargetError>(out)
            })
            .map_err(|e| TargetError::Unexpected(format!("no thread to read {path} with: {e}")))?;
        let listed = self
            .list_pages(path, filter, |page| {
                // Refused: the converter stopped at a resource it could not take (said below).
                pages.send(page).map_err(|_| TargetError::Unexpected(format!("reading {path} stopped")))
            })
            .await;
        drop(pages);
        let converted = worker.join().map_err(|_| TargetError::Unexpected(format!("reading {path} failed")))?;
        // The converter's error first: a refused send is its consequence.
        let users = converted?;
        listed?;
        Ok(users)
    }

    /// The pages of [`Client::list_each`], each handed to `take` whole,
    /// its resources still text.
    async fn list_pages(
        &self,
        path: &str,
        filter: Option<String>,
        mut take: impl FnMut(Listed) -> Result<(), TargetError>,
    ) -> Result<(), TargetError> {
        let bad = |message: String| decode_error(path, &message);
        let mut read = 0usize;
        let mut total: Option<usize> = None;
        let mut start = 1usize;
        loop {
            let count = self.page_size.load(std::sync::atomic::Ordering::Relaxed);
            let mut q = vec![("startIndex", start.to_string()), ("count", count.to_string())];
            if let Some(f) = &filter {
                q.push(("filter", f.clone()));
            }
            let page: Page =
                self.send_as(Method::GET, path, &q, None).await?.ok_or_else(|| bad("an empty body instead of a ListResponse".into()))?;
            let page_total = page.total.map(|t| t as usize);
            let items = match page.resources {
                Resources::List(a) => a,
                Resources::Missing | Resources::Null if page_total == Some(0) => Vec::new(),
                Resources::Missing | Resources::Null if page_total.is_none() => {
                    return Err(bad("not a ListResponse: neither totalResults nor Resources".into()));
                }
                Resources::Missing | Resources::Null => {
                    return Err(bad(format!("totalResults is {} but there is no Resources list", page_total.unwrap_or(0))));
                }
                Resources::NotAList => return Err(bad("Resources is not a list".into())),
            };
            // The first page's count is the one to reach; a server that
            // drops it later is read to its end by the other rules.
            let want = *total.get_or_insert(page_total.unwrap_or(items.len()));
            if items.is_empty() {
                if read < want {
                    return Err(bad(format!("an empty page at startIndex {start} though totalResults is {want}")));
                }
                return Ok(());
            }
            let n = items.len();
            take(Listed { start, items })?;
            start += n;
            read += n;
            if read >= want {
                return Ok(());
            }
        }
    }
}

/// One page's resources, each still its text, and the `startIndex` it
/// was asked for.
struct Listed {
    start: usize,
    items: Vec<Box<serde_json::value::RawValue>>,
}

/// The ids listed so far: one listed again means the server does not page.
#[derive(Default)]
struct Seen(std::collections::HashSet<String>);

impl Seen {
    /// Each resource of `page` parsed and handed to `take`; an id listed
    /// before fails the list.
    fn each(&mut self, path: &str, page: Listed, mut take: impl FnMut(Value) -> Result<(), TargetError>) -> Result<(), TargetError> {
        for raw in page.items {
            let v: Value = serde_json::from_str(raw.get()).map_err(|e| decode_error(path, &e.to_string()))?;
            drop(raw);
            if let Some(id) = v.get("id").and_then(Value::as_str)
                && !self.0.insert(id.to_owned())
            {
                return Err(decode_error(
                    path,
                    &format!("id {id} came again at startIndex {}: the server does not page (does it ignore startIndex?)", page.start),
                ));
            }
            take(v)?;
        }
        Ok(())
    }
}

/// A ListResponse as paging needs it: `totalResults`, and `Resources`
/// with each resource kept as its text, to be parsed where it is used
/// (on the converter's thread). Any other JSON reads as neither.
#[derive(Default)]
struct Page {
    total: Option<u64>,
    resources: Resources,
}

#[derive(Default)]
enum Resources {
    #[default]
    Missing,
    Null,
    List(Vec<Box<serde_json::value::RawValue>>),
    NotAList,
}

/// The visitor methods of every JSON scalar, each making `$made`: a
/// ListResponse, or its `Resources`, that is a string or a number is
/// neither.
macro_rules! scalars {
    ($made:expr) => {
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($made)
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($made)
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($made)
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($made)
        }
        fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($made)
        }
    };
}

impl<'de> serde::Deserialize<'de> for Page {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Page;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a SCIM ListResponse")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Page, A::Error> {
                let mut page = Page::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "totalResults" => page.total = map.next_value::<Value>()?.as_u64(),
                        "Resources" => page.resources = map.next_value()?,
                        _ => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(page)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Page, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Page::default())
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Page, E> {
                Ok(Page::default())
            }
            scalars!(Page::default());
        }
        d.deserialize_any(V)
    }
}
impl<'de> serde::Deserialize<'de> for Resources {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Resources;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of resources")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Resources, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Resources::List(items))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Resources, A::Error> {
                while map.next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?.is_some() {}
                Ok(Resources::NotAList)
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Resources, E> {
                Ok(Resources::Null)
            }
            scalars!(Resources::NotAList);
        }
        d.deserialize_any(V)
    }
}

/// What an error body says: a SCIM error's `detail` (with its `scimType`),
/// else the first 200 characters of its text, tags and all the whitespace
/// of an HTML page squeezed out.
pub fn error_detail(body: &[u8]) -> Option<String> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        let detail = v.get("detail").and_then(Value::as_str).map(str::trim).filter(|d| !d.is_empty());
        let kind = v.get("scimType").and_then(Value::as_str).filter(|t| !t.is_empty());
        match (detail, kind) {
            (Some(d), Some(k)) => return Some(crate::redact::excerpt(&format!("{d} ({k})"), 200)),
            (Some(d), None) => return Some(crate::redact::excerpt(d, 200)),
            (None, Some(k)) => return Some(k.to_owned()),
            (None, None) => {}
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = if text.trim_start().starts_with('<') { strip_tags(&text) } else { text.into_owned() };
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let cut: String = text.chars().take(200).collect();
    let cut = if cut.len() < text.len() { format!("{cut}…") } else { cut };
    Some(crate::redact::redact(&cut).into_owned()).filter(|s| !s.is_empty())
}

/// The text of an HTML page: tags, comments, scripts and styles removed.
/// A reduction for an error message, not a parser: `<` always opens a tag.
fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        out.push(' ');
        let tag = &rest[open..];
        let lower = tag.get(..7).unwrap_or(tag).to_ascii_lowercase();
        let end = if tag.starts_with("<!--") {
            tag.find("-->").map(|e| e + 3)
        } else if lower.starts_with("<script") || lower.starts_with("<style") {
            let close = if lower.starts_with("<script") { "</script" } else { "</style" };
            tag.to_ascii_lowercase().find(close).and_then(|c| tag[c..].find('>').map(|e| c + e + 1))
        } else {
            tag.find('>').map(|e| e + 1)
        };
        match end {
            Some(e) => rest = &tag[e..],
            None => return out,
        }
    }
    out.push_str(rest);
    out.replace("&nbsp;", " ").replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&#39;", "'").replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::scim::ScimAuth;
    use serde_json::json;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-route HTTP server answering with `responses` in turn (then 200),
    /// counting requests.
    async fn serve(responses: Vec<&'static str>) -> (String, Arc<AtomicU64>) {
        serve_body(responses, r#"{"totalResults":0,"Resources":[]}"#).await
    }

    /// [`serve`], every answer with `body`.
    async fn serve_body(responses: Vec<&'static str>, body: &'static str) -> (String, Arc<AtomicU64>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let count = Arc::new(AtomicU64::new(0));
        let c = count.clone();
        tokio::spawn(async move {
            loop {
                let (mut sock, _) = listener.accept().await.unwrap();
                let n = c.fetch_add(1, Ordering::SeqCst) as usize;
                let mut buf = vec![0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let head = responses.get(n).copied().unwrap_or("200 OK");
                let resp = format!("HTTP/1.1 {head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                let _ = sock.write_all(resp.as_bytes()).await;
            }
        });
        (format!("http://{addr}/v2"), count)
    }

    fn client(base: &str) -> Client {
        Client::new(&ScimConfig {
            base_url: url::Url::parse(base).unwrap(),
            auth: ScimAuth::None,
            timeout: Duration::from_secs(5),
            concurrency: 1,
            max_retries: 3,
            unreachable_after: 5,
            page_size: Some(10),
            departments: crate::reconcile::DepartmentShape::Tree,
            unique_name: Default::default(),
        })
        .unwrap()
    }

    #[tokio::test]
    async fn retries_on_503_and_429_honouring_retry_after_then_succeeds() {
        let (base, count) = serve(vec!["503 Service Unavailable", "429 Too Many Requests\r\nRetry-After: 1"]).await;
        let started = std::time::Instant::now();
        let v = client(&base).send(Method::GET, "/Users", &[], None).await.unwrap();
        assert!(v.is_some());
        assert_eq!(count.load(Ordering::SeqCst), 3);
        assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After was not honoured");
    }

    #[tokio::test]
    async fn a_client_error_is_not_retried() {
        let (base, count) = serve(vec!["400 Bad Request"]).await;
        let e = client(&base).send(Method::GET, "/Users", &[], None).await.unwrap_err();
        assert_eq!(e.status(), Some(400));
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn gives_up_after_max_retries() {
        let (base, count) = serve(vec!["502 Bad Gateway"; 10]).await;
        let e = client(&base).send(Method::GET, "/Users", &[], None).await.unwrap_err();
        assert_eq!(e.status(), Some(502));
        assert_eq!(count.load(Ordering::SeqCst), 4, "one try plus max_retries = 3");
    }

    #[test]
    fn error_bodies_are_reduced_to_what_they_say() {
        let scim = br#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"409","scimType":"uniqueness","detail":"userName taken"}"#;
        assert_eq!(error_detail(scim).as_deref(), Some("userName taken (uniqueness)"));
        let page = format!(
            "<!DOCTYPE html><html><head><title>Not Implemented</title><style>body {{ color: red }}</style><script>var x = 1 < 2;</script></head>\n<body><h1>501 &amp; more</h1>{}</body></html>",
            "<p>traceback line</p>".repeat(50)
        );
        let d = error_detail(page.as_bytes()).unwrap();
        assert!(d.starts_with("Not Implemented 501 & more traceback line"), "{d}");
        assert!(!d.contains('<') && !d.contains("color") && !d.contains("var x"), "{d}");
        assert!(d.chars().count() <= 201 && d.ends_with('…'), "{d}");
        assert_eq!(error_detail(b"plain text").as_deref(), Some("plain text"));
        assert_eq!(error_detail(b"  "), None);
    }

    /// A server paging `users` by `startIndex` and `count`.
    async fn serve_pages(users: Vec<Value>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut sock, _) = listener.accept().await.unwrap();
                let users = users.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    loop {
                        let Ok(n) = sock.read(&mut buf).await else { return };
                        if n == 0 {
                            return;
                        }
                        let head = String::from_utf8_lossy(&buf[..n]).into_owned();
                        let q = |k: &str| -> usize {
                            head.split(['?', '&', ' ']).find_map(|p| p.strip_prefix(k)?.strip_prefix('=')?.parse().ok()).unwrap()
                        };
                        let (start, count) = (q("startIndex"), q("count"));
                        let page: Vec<&Value> = users.iter().skip(start - 1).take(count).collect();
                        let body = json!({"totalResults": users.len(), "startIndex": start, "Resources": page}).to_string();
                        let resp = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                        if sock.write_all(resp.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        format!("http://{addr}/v2")
    }

    fn id_of(v: Value) -> Result<String, TargetError> {
        v["id"].as_str().map(str::to_owned).ok_or_else(|| TargetError::Unexpected(format!("no id: {v}")))
    }

    /// Converted on a thread of its own, page by page: every resource in
    /// the order listed; the first one `convert` refuses is the error.
    #[tokio::test]
    async fn a_list_converted_beside_the_reading_keeps_the_order_and_the_first_refusal() {
        let users: Vec<Value> = (0..25).map(|i| json!({"id": format!("u{i}")})).collect();
        let base = serve_pages(users.clone()).await;
        let ids = client(&base).list_converted("/Users", None, id_of).await.unwrap();
        assert_eq!(ids, (0..25).map(|i| format!("u{i}")).collect::<Vec<_>>());

        let mut broken = users;
        broken[16] = json!({"userName": "no id"});
        let base = serve_pages(broken).await;
        let e = client(&base).list_converted("/Users", None, id_of).await.unwrap_err();
        assert!(e.to_string().contains("no id"), "{e}");
    }

    /// What is not a ListResponse, or pages that do not advance, fail the
    /// list, through either way of reading it; what is one is read whole.
    #[tokio::test]
    async fn a_list_is_read_whole_or_fails() {
        async fn both(body: &'static str) -> Result<Vec<String>, String> {
            let (base, _) = serve_body(vec![], body).await;
            let mut each = Vec::new();
            let listed = client(&base).list_each("/Users", None, |v| id_of(v).map(|id| each.push(id))).await.map(|_| each);
            let converted = client(&base).list_converted("/Users", None, id_of).await;
            let (listed, converted) = (listed.map_err(|e| e.to_string()), converted.map_err(|e| e.to_string()));
            assert_eq!(listed, converted, "{body}");
            listed
        }
        let fails = |r: Result<Vec<String>, String>, said: &str| {
            let e = r.unwrap_err();
            assert!(e.contains(said), "{e} does not say {said}");
        };
        fails(both(r#"{"totalResults":2,"Resources":{"id":"a"}}"#).await, "Resources is not a list");
        fails(both(r#"{"totalResults":2,"Resources":"a"}"#).await, "Resources is not a list");
        fails(both(r#"[{"id":"a"}]"#).await, "not a ListResponse");
        fails(both(r#""a""#).await, "not a ListResponse");
        fails(both(r#"{"totalResults":3}"#).await, "totalResults is 3 but there is no Resources list");
        fails(both(r#"{"totalResults":3,"Resources":null}"#).await, "totalResults is 3 but there is no Resources list");
        fails(both(r#"{"totalResults":4,"Resources":[{"id":"a"},{"id":"b"}]}"#).await, "id a came again at startIndex 3");
        fails(both(r#"{"totalResults":2,"Resources":[{"id":"a"},{"id":"a"}]}"#).await, "id a came again at startIndex 1");
        fails(both(r#"{"totalResults":2,"Resources":[{"id":"a"},{"id":}]}"#).await, "GET /Users");
        assert_eq!(both(r#"{"totalResults":0}"#).await, Ok(vec![]));
        let unsaid = r#"{"schemas":[],"totalResults":"two","itemsPerPage":2,"Resources":[{"id":"a","x":[1,{"y":null}]},{"id":"b"}]}"#;
        assert_eq!(both(unsaid).await, Ok(vec!["a".to_owned(), "b".to_owned()]));
    }
}
