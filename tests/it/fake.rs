//! What the fake SaaS servers (Feishu, DingTalk, WeCom) share: the
//! request log, unexpected requests, token issue and revocation, the
//! throttling and failure knobs, and serving a router on a loopback port
//! in its own runtime. Each fake turns a [`Gate`] into its vendor's own
//! error envelope.

use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Default)]
pub struct Knobs {
    /// Invalidate the current token after this many data requests (once):
    /// a token revoked or expired in the middle of a run.
    pub revoke_after: Option<usize>,
    /// Answer every Nth data request with the vendor's throttling error.
    pub throttle_every: Option<usize>,
    /// (department id, 1-based page): fail that page with HTTP 500.
    pub fail_page: Option<(String, usize)>,
    /// Token lifetime in seconds, said in the token answer and enforced
    /// (default 7200).
    pub token_ttl: Option<u64>,
    /// Every page after the first points back at the second page (a server
    /// that does not advance its page token or cursor).
    pub repeat_cursor: bool,
}

/// Why a data request is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Gate {
    /// No token on the request.
    Missing,
    /// Not the current token (never issued, or revoked).
    Invalid,
    /// The token was just revoked by `revoke_after` (an early expiry).
    Expired,
    Throttled,
    /// `fail_page` matched.
    Fail,
}

#[derive(Default)]
pub struct Common {
    pub knobs: Knobs,
    pub log: Vec<(Instant, String)>,
    pub unexpected: Vec<String>,
    tokens: usize,
    valid: Option<String>,
    expires: Option<Instant>,
    /// Data requests refused for an invalid or expired token.
    pub refused: usize,
    data_requests: usize,
    revoked: bool,
}

impl Common {
    /// A new token, which replaces the previous one.
    pub fn issue_token(&mut self, prefix: &str) -> String {
        self.log.push((Instant::now(), "token".into()));
        self.tokens += 1;
        let t = format!("{prefix}{:04}", self.tokens);
        self.valid = Some(t.clone());
        self.expires = Some(Instant::now() + std::time::Duration::from_secs(self.ttl()));
        t
    }

    /// The lifetime the token answer states.
    pub fn ttl(&self) -> u64 {
        self.knobs.token_ttl.unwrap_or(7200)
    }

    /// Log a data request and decide whether it is refused.
    pub fn gate(&mut self, token: Option<&str>, what: &str, dept: &str, page: usize) -> Option<Gate> {
        self.log.push((Instant::now(), format!("{what} {dept} page {page}")));
        let token = token.filter(|t| !t.is_empty());
        let Some(token) = token else { return Some(Gate::Missing) };
        if self.valid.as_deref() != Some(token) {
            self.refused += 1;
            return Some(Gate::Invalid);
        }
        if self.expires.is_some_and(|e| Instant::now() >= e) {
            self.refused += 1;
            return Some(Gate::Expired);
        }
        self.data_requests += 1;
        if self.knobs.revoke_after.is_some_and(|n| !self.revoked && self.data_requests > n) {
            self.revoked = true;
            self.valid = None;
            self.refused += 1;
            return Some(Gate::Expired);
        }
        if self.knobs.throttle_every.is_some_and(|n| self.data_requests.is_multiple_of(n)) {
            return Some(Gate::Throttled);
        }
        if self.knobs.fail_page.as_ref().is_some_and(|(d, p)| d == dept && *p == page) {
            return Some(Gate::Fail);
        }
        None
    }

    /// Requests whose log line starts with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.log.iter().filter(|(_, l)| l.starts_with(prefix)).count()
    }

    /// The most requests seen in any one-second window.
    pub fn peak_per_second(&self) -> usize {
        let log: Vec<Instant> = self.log.iter().map(|(t, _)| *t).collect();
        (0..log.len()).map(|i| log[i..].iter().take_while(|t| t.duration_since(log[i]).as_secs_f64() < 1.0).count()).max().unwrap_or(0)
    }
}

/// A fake's world: the vendor's data plus what every fake has.
pub trait World: Send + 'static {
    fn common(&self) -> &Common;
    fn common_mut(&mut self) -> &mut Common;
}

/// A running fake: its base URL (`http://127.0.0.1:PORT`) and its world,
/// which a test may change between runs. The server lives in its own
/// runtime, dropped with this value. A request the fake did not expect
/// fails the test when the fake is dropped, whether or not the test asked
/// (a test that provokes one on purpose takes it with [`Fake::take_unexpected`]).
pub struct Fake<W: World> {
    pub base: String,
    pub world: Arc<Mutex<W>>,
    _rt: tokio::runtime::Runtime,
}

impl<W: World> Fake<W> {
    /// Serve the router `routes` builds around the shared world on a free loopback port.
    pub fn serve(world: W, routes: impl FnOnce(Arc<Mutex<W>>) -> axum::Router) -> Self {
        let world = Arc::new(Mutex::new(world));
        let app = routes(world.clone());
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
        Fake { base, world, _rt: rt }
    }

    /// Run a task of the fake's own (another listener) in its runtime.
    #[allow(dead_code)] // not every test binary serves another listener
    pub fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self._rt.spawn(task);
    }

    /// Requests whose log line starts with `prefix` ("" for all).
    pub fn count(&self, prefix: &str) -> usize {
        self.world.lock().unwrap().common().count(prefix)
    }

    pub fn peak_per_second(&self) -> usize {
        self.world.lock().unwrap().common().peak_per_second()
    }

    pub fn unexpected(&self) -> Vec<String> {
        self.world.lock().unwrap().common().unexpected.clone()
    }

    /// The unexpected requests so far, no longer failing the test.
    #[allow(dead_code)] // not every test binary provokes one
    pub fn take_unexpected(&self) -> Vec<String> {
        std::mem::take(&mut self.world.lock().unwrap().common_mut().unexpected)
    }
}

impl<W: World> Drop for Fake<W> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return; // the test failed already: its own message says why
        }
        let unexpected = self.world.lock().map(|w| w.common().unexpected.clone()).unwrap_or_default();
        assert!(unexpected.is_empty(), "the fake at {} got requests it did not expect: {unexpected:#?}", self.base);
    }
}

#[allow(dead_code)] // benches/saas_fetch.rs
pub fn shape(depts: usize, users: usize) -> (Vec<Option<usize>>, Vec<Vec<usize>>) {
    let top = (depts / 100).max(1);
    let mid = (depts / 10).max(1);
    let parents = (0..depts)
        .map(|k| match k {
            k if k < top => None,
            k if k < top + mid => Some((k - top) % top),
            k => Some(top + (k - top - mid) % mid),
        })
        .collect();
    let members = (0..users)
        .map(|i| {
            let first = i % depts;
            let second = (first + 1 + i / depts) % depts;
            if i % 10 == 0 && second != first { vec![first, second] } else { vec![first] }
        })
        .collect();
    (parents, members)
}

/// A fake vendor's WebSocket (DingTalk Stream, Feishu's long connection):
/// on a port of its own, one live connection at a time, which the test
/// sends frames on and reads the client's frames from.
#[derive(Default)]
pub struct Socket {
    /// `ws://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The endpoint request is answered with the vendor's "busy" error.
    pub refuse_open: bool,
    /// The live connection: what is sent to the client.
    pub to_client: Option<tokio::sync::mpsc::UnboundedSender<tokio_tungstenite::tungstenite::Message>>,
    /// Connections accepted so far.
    pub connections: usize,
    /// The client's text and binary frames, in order.
    pub received: Vec<tokio_tungstenite::tungstenite::Message>,
    /// WebSocket-level pings the client sent.
    pub pings: usize,
}

/// A world with a [`Socket`]; `admit` checks the handshake's URI.
pub trait Sockets: World {
    fn socket(&mut self) -> &mut Socket;
    fn admit(&self, uri: &axum::http::Uri) -> bool;
    /// The server's own answer to a client frame (a Feishu `pong`), sent at once.
    fn answer(&self, _m: &tokio_tungstenite::tungstenite::Message) -> Option<tokio_tungstenite::tungstenite::Message> {
        None
    }
}

#[allow(dead_code)] // not every test binary opens a socket
impl<W: Sockets> Fake<W> {
    /// Listen for the client's WebSocket.
    pub fn serve_socket(&self) {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        self.world.lock().unwrap().socket().endpoint = format!("ws://{}", std_listener.local_addr().unwrap());
        let w = self.world.clone();
        self.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(socket_connection(tcp, w.clone()));
            }
        });
    }

    /// Send a frame on the live connection (false when there is none).
    pub fn send(&self, m: tokio_tungstenite::tungstenite::Message) -> bool {
        let mut w = self.world.lock().unwrap();
        w.socket().to_client.as_ref().is_some_and(|tx| tx.send(m).is_ok())
    }

    /// Close the live connection, as a network failure would.
    pub fn drop_socket(&self) {
        self.world.lock().unwrap().socket().to_client = None;
    }

    /// Wait until the client has opened this many connections.
    pub fn wait_connections(&self, n: usize, what: &str) {
        let deadline = Instant::now() + std::time::Duration::from_secs(120);
        loop {
            {
                let mut w = self.world.lock().unwrap();
                let s = w.socket();
                if s.connections >= n && s.to_client.is_some() {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "{what}: the client never opened connection {n}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// The client's frames so far.
    pub fn received(&self) -> Vec<tokio_tungstenite::tungstenite::Message> {
        self.world.lock().unwrap().socket().received.clone()
    }
}

async fn socket_connection<W: Sockets>(tcp: tokio::net::TcpStream, w: Arc<Mutex<W>>) {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
    let world = w.clone();
    #[allow(clippy::result_large_err)] // the error is the handshake answer tungstenite takes
    let check = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        if world.lock().unwrap().admit(req.uri()) {
            Ok(resp)
        } else {
            let mut refused = ErrorResponse::new(Some("refused".into()));
            *refused.status_mut() = axum::http::StatusCode::FORBIDDEN;
            Err(refused)
        }
    };
    let ws = match tokio_tungstenite::accept_hdr_async(tcp, check).await {
        Ok(ws) => ws,
        Err(e) => {
            w.lock().unwrap().common_mut().unexpected.push(format!("a WebSocket handshake refused: {e}"));
            return;
        }
    };
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Message>();
    {
        let mut w = w.lock().unwrap();
        w.socket().to_client = Some(tx);
        w.socket().connections += 1;
    }
    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(m) => if sink.send(m).await.is_err() { break },
                None => { let _ = sink.close().await; break }
            },
            inc = stream.next() => match inc {
                Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                    let answer = {
                        let mut w = w.lock().unwrap();
                        let answer = w.answer(&m);
                        w.socket().received.push(m);
                        answer
                    };
                    if let Some(a) = answer && sink.send(a).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Ping(_))) => w.lock().unwrap().socket().pings += 1,
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            }
        }
    }
}
