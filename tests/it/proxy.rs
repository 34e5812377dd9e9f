//! A misbehaving gateway in front of a real SCIM server: it forwards every
//! request, and on cue loses a reply (answers only after the client gave
//! up), answers a list with an empty body, ignores `startIndex`, leaves a
//! resource out of lists, holds a request unanswered, or refuses one.

use crate::fake::{Common, Fake};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
pub struct Knobs {
    /// Requests (method, path suffix) whose reply is "lost": forwarded and
    /// carried out upstream, answered only after `late`; one per entry.
    pub lose_reply: Vec<(Method, &'static str)>,
    pub late: Duration,
    /// Answer list GETs 200 with an empty body.
    pub empty_list_body: bool,
    /// Forward list GETs with startIndex=1 whatever was asked.
    pub ignore_start_index: bool,
    /// Leave the resource with this externalId out of unfiltered lists.
    pub hide_external_id: Option<String>,
    /// Requests (method, path containing) never answered (the client is
    /// killed meanwhile); one per entry.
    pub hold: Vec<(Method, &'static str)>,
    /// Requests (method, path containing) answered 422 without being
    /// forwarded; one per entry.
    pub refuse: Vec<(Method, String)>,
}

pub struct World {
    upstream: String,
    pub knobs: Knobs,
    pub lost: usize,
    /// Requests held so far.
    pub held: usize,
    common: Common,
}

impl crate::fake::World for World {
    fn common(&self) -> &Common {
        &self.common
    }

    fn common_mut(&mut self) -> &mut Common {
        &mut self.common
    }
}

pub type Proxy = Fake<World>;

/// A proxy to `upstream` (a SCIM base such as `http://127.0.0.1:P/v2`);
/// its own base keeps the same path.
pub fn start(upstream: &str) -> (Proxy, String) {
    let path = upstream.splitn(4, '/').nth(3).map(|p| format!("/{p}")).unwrap_or_default();
    let origin = upstream.trim_end_matches(&path).to_owned();
    let world = World { upstream: origin, knobs: Knobs::default(), lost: 0, held: 0, common: Common::default() };
    let proxy = Fake::serve(world, |w| axum::Router::new().fallback(forward).with_state(w));
    let base = format!("{}{path}", proxy.base);
    (proxy, base)
}

async fn forward(State(w): State<Arc<Mutex<World>>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let hold = {
        let mut g = w.lock().unwrap();
        let pos = g.knobs.hold.iter().position(|(m, p)| *m == method && uri.path().contains(p));
        pos.map(|i| {
            g.knobs.hold.remove(i);
            g.held += 1;
        })
        .is_some()
    };
    if hold {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    let refuse = {
        let mut g = w.lock().unwrap();
        let pos = g.knobs.refuse.iter().position(|(m, p)| *m == method && uri.path().contains(p.as_str()));
        pos.map(|i| g.knobs.refuse.remove(i)).is_some()
    };
    if refuse {
        return (StatusCode::UNPROCESSABLE_ENTITY, "refused by the test gateway").into_response();
    }
    let (upstream, lose, late, empty, ignore, hide) = {
        let mut w = w.lock().unwrap();
        let pos = w.knobs.lose_reply.iter().position(|(m, p)| *m == method && uri.path().ends_with(p));
        let lose = pos.map(|i| w.knobs.lose_reply.remove(i)).is_some();
        if lose {
            w.lost += 1;
        }
        (w.upstream.clone(), lose, w.knobs.late, w.knobs.empty_list_body, w.knobs.ignore_start_index, w.knobs.hide_external_id.clone())
    };
    let is_list = method == Method::GET && uri.query().is_some_and(|q| q.contains("startIndex"));
    if is_list && empty {
        return (StatusCode::OK, "").into_response();
    }
    let mut query = uri.query().unwrap_or("").to_owned();
    if is_list && ignore {
        query = query.split('&').map(|kv| if kv.starts_with("startIndex=") { "startIndex=1" } else { kv }).collect::<Vec<_>>().join("&");
    }
    let url = format!("{upstream}{}{}{query}", uri.path(), if query.is_empty() { "" } else { "?" });
    let mut req = reqwest::Client::new().request(method, url).body(body.to_vec());
    for name in ["authorization", "content-type", "accept"] {
        if let Some(v) = headers.get(name) {
            req = req.header(name, v.as_bytes());
        }
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
    let ctype = resp.headers().get("content-type").cloned();
    let mut bytes = resp.bytes().await.unwrap_or_default();
    let page = hide.filter(|_| is_list && !uri.query().unwrap_or("").contains("filter=")).and_then(|hidden| {
        let page: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        Some((hidden, page))
    });
    if let Some((hidden, mut page)) = page
        && let Some(all) = page["Resources"].as_array_mut()
    {
        let before = all.len();
        all.retain(|r| r["externalId"] != hidden.as_str());
        let gone = (before - all.len()) as u64;
        page["totalResults"] = (page["totalResults"].as_u64().unwrap_or(0) - gone).into();
        bytes = serde_json::to_vec(&page).unwrap().into();
    }
    if lose {
        // Done upstream; the answer comes after the client stopped waiting.
        tokio::time::sleep(late).await;
    }
    let mut r = (status, bytes).into_response();
    if let Some(c) = ctype {
        r.headers_mut().insert("content-type", c);
    }
    r
}
