//! A bearer token kept until shortly before it expires, shared by the SaaS
//! sources and the REST target's OAuth2 client credentials: one refresh at
//! a time, a refresh a little ahead of expiry, a refused token dropped (once,
//! however many requests saw it refused), and every live token registered
//! with the redactor so no log or error can show it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A token and how long it lives.
pub struct Token {
    pub value: String,
    pub ttl: Duration,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token").field("value", &"[redacted]").field("ttl", &self.ttl).finish()
    }
}

struct Cached {
    value: String,
    refresh_at: Instant,
}

/// The cache itself.
pub struct TokenCache {
    slot: tokio::sync::Mutex<Option<Cached>>,
    /// Refresh this long before the token expires.
    margin: Duration,
    fetches: AtomicU64,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache").field("fetches", &self.fetches()).finish()
    }
}

impl TokenCache {
    pub fn new(margin: Duration) -> Self {
        TokenCache { slot: tokio::sync::Mutex::new(None), margin, fetches: AtomicU64::new(0) }
    }

    /// The cached token, or a new one from `fetch` (one refresh at a time:
    /// concurrent callers wait for it and share it).
    pub async fn get<E, F>(&self, fetch: F) -> Result<String, E>
    where
        F: std::future::Future<Output = Result<Token, E>>,
    {
        let mut slot = self.slot.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| Instant::now() < c.refresh_at) {
            return Ok(c.value.clone());
        }
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let t = fetch.await?;
        // A live token is a secret too: a gateway may echo it back.
        crate::redact::register(&t.value);
        let refresh_at = Instant::now() + t.ttl.saturating_sub(self.margin).max(Duration::from_secs(1));
        *slot = Some(Cached { value: t.value.clone(), refresh_at });
        Ok(t.value)
    }

    /// The cached token if no refresh is under way; else `had`.
    pub fn newer(&self, had: String) -> String {
        match self.slot.try_lock() {
            Ok(slot) => slot.as_ref().map_or(had, |c| c.value.clone()),
            Err(_) => had,
        }
    }

    /// Drop `used` if it is still the cached token (another request may
    /// have refreshed it already).
    pub async fn invalidate(&self, used: &str) {
        let mut slot = self.slot.lock().await;
        if slot.as_ref().is_some_and(|c| c.value == used) {
            *slot = None;
        }
    }

    /// How many times a token was fetched.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }
}
