//! One redactor for every text that leaves the process or is stored: log
//! lines, run messages and item errors in the mirror (and so `status`,
//! `runs show` and `GET /status`), and the CLI's errors.
//!
//! It knows every secret of every loaded config ([`crate::config::Secret`]
//! registers itself) and every live token (the SaaS sources register each
//! token they receive), and masks each wherever it appears — also inside
//! somebody else's words: a gateway's error page that echoes the request
//! line (with a token in the query string), a SCIM 401 body that echoes
//! the request headers. The URL-encoded form is masked too.

use std::borrow::Cow;
use std::sync::RwLock;

/// What a secret is replaced with.
pub const MASK: &str = "<redacted>";

/// Shorter values are not masked: "abc" would eat every word containing it.
/// Secrets that short are not secrets; config validation does not refuse
/// them, but nothing shorter than this is hidden.
const MIN_LEN: usize = 4;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Remember a secret (and its URL-encoded form) to mask from now on.
pub fn register(secret: &str) {
    let secret = secret.trim();
    if secret.chars().count() < MIN_LEN {
        return;
    }
    let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let Ok(mut known) = SECRETS.write() else { return };
    for form in [secret.to_owned(), encoded] {
        if !known.contains(&form) {
            known.push(form);
        }
    }
    // Longest first: a secret containing another is masked whole.
    known.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// `text` with every known secret masked.
pub fn redact(text: &str) -> Cow<'_, str> {
    let Ok(known) = SECRETS.read() else { return Cow::Owned(MASK.to_owned()) };
    let mut out = Cow::Borrowed(text);
    for s in known.iter() {
        if out.contains(s.as_str()) {
            out = Cow::Owned(out.replace(s.as_str(), MASK));
        }
    }
    out
}

/// A short excerpt of somebody else's text (an error page, a body) for an
/// error message: masked first, then cut, so a cut never leaves half a
/// secret behind.
pub fn excerpt(text: &str, max_chars: usize) -> String {
    let masked = redact(text);
    let mut cut = masked.char_indices().nth(max_chars).map_or(masked.len(), |(i, _)| i);
    // Never cut a mask in two: it would read as garbage.
    if let Some(m) = masked.match_indices(MASK).find(|(i, _)| *i < cut && cut < i + MASK.len()) {
        cut = m.0 + MASK.len();
    }
    masked[..cut].to_owned()
}

/// [`redact`] for an optional text.
pub fn redact_opt(text: Option<&str>) -> Option<Cow<'_, str>> {
    text.map(redact)
}

/// A log writer that masks secrets in each formatted event. Under
/// journald (`priority` set) an event is one journal entry at its syslog
/// priority: the `<N>` prefix systemd reads from a service's stderr, and
/// the event's inner line breaks folded so that it stays one entry.
#[derive(Debug)]
pub struct Writer<W> {
    pub inner: W,
    pub priority: Option<u8>,
}

impl<W: std::io::Write> std::io::Write for Writer<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // A log line that cannot be written (stderr closed: `orgsync … 2>&1 | head -1`)
        // is lost, never an error of the run.
        let _ = match (std::str::from_utf8(buf), self.priority) {
            (Ok(text), Some(p)) => self.inner.write_all(journal_entry(&redact(text), p).as_bytes()),
            (Ok(text), None) => self.inner.write_all(redact(text).as_bytes()),
            (Err(_), _) => self.inner.write_all(buf),
        };
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = self.inner.flush();
        Ok(())
    }
}

/// One event as one journal entry: `<priority>` then the text with its
/// inner line breaks folded into ` ⏎ `.
fn journal_entry(text: &str, priority: u8) -> String {
    let body = text.strip_suffix('\n').unwrap_or(text);
    format!("<{priority}>{}\n", body.replace("\r\n", "\n").replace('\n', " ⏎ "))
}

/// The syslog priority of a tracing level (sd-daemon(3)).
fn priority(level: tracing::Level) -> u8 {
    match level {
        tracing::Level::ERROR => 3,
        tracing::Level::WARN => 4,
        tracing::Level::INFO => 6,
        tracing::Level::DEBUG | tracing::Level::TRACE => 7,
    }
}

/// Makes a redacting stderr writer per log event; `journal`: under
/// journald, with the event's priority.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stderr {
    pub journal: bool,
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Stderr {
    type Writer = Writer<std::io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        Writer { inner: std::io::stderr(), priority: None }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        Writer { inner: std::io::stderr(), priority: self.journal.then(|| priority(*meta.level())) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under_journald_an_event_is_one_entry_at_its_priority() {
        assert_eq!(journal_entry("WARN x: first\n  second\n", priority(tracing::Level::WARN)), "<4>WARN x: first ⏎   second\n");
        assert_eq!(journal_entry("ERROR boom\n", priority(tracing::Level::ERROR)), "<3>ERROR boom\n");
        let mut w = Writer { inner: Vec::new(), priority: Some(6) };
        std::io::Write::write_all(&mut w, b"INFO done\n").unwrap();
        assert_eq!(w.inner, b"<6>INFO done\n");
    }

    #[test]
    fn a_log_line_that_cannot_be_written_is_not_an_error() {
        struct Closed;
        impl std::io::Write for Closed {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
        }
        let mut w = Writer { inner: Closed, priority: None };
        assert!(std::io::Write::write_all(&mut w, b"INFO x\n").is_ok());
        assert!(std::io::Write::flush(&mut w).is_ok());
    }

    #[test]
    fn registered_secrets_are_masked_in_any_text_also_url_encoded() {
        register("s3cr3t/with+chars");
        let echoed = "GET /gettoken?corpsecret=s3cr3t%2Fwith%2Bchars HTTP/1.1 said s3cr3t/with+chars";
        let out = redact(echoed);
        // Other tests of this process register secrets too: check only ours.
        assert!(!out.contains("s3cr3t"), "{out}");
        assert!(out.ends_with(&format!("said {MASK}")), "{out}");
    }

    #[test]
    fn an_excerpt_is_masked_before_it_is_cut() {
        register("0123456789abcdef");
        assert_eq!(excerpt("token=0123456789abcdef&x=1", 10), "token=<redacted>");
        assert_eq!(excerpt("short", 10), "short");
    }

    #[test]
    fn short_values_and_unrelated_text_are_left_alone() {
        register("abc");
        assert_eq!(redact("abcdef"), "abcdef");
        assert_eq!(redact("xq7 zv9"), "xq7 zv9");
    }
}
