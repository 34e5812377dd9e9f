//! WeLink's event callback (docs/sources/welink.md, events), as its ISV
//! callback page describes it: `POST {"encrypt": base64(16-byte IV) +
//! base64(AES-GCM ciphertext and tag)}`, the key the app's secret; the
//! decrypted JSON `{"eventType", "timestamp" (Unix seconds), …}` is refused
//! when more than 30 minutes off; the answer is the encrypted
//! `{"msg":"success","timestamp":<the request's>}`.
//!
//! WeLink documents no contact event names or payloads (EVENTS.md §4):
//! an event naming users (`userId`, `userIds`) or departments (`deptCode`,
//! `deptCodes`) is a run of those; another event that is not the URL test
//! or an authorisation notice is a full run.

pub use crate::events::Change;
use crate::model::SourceId;
use crate::reconcile::only::Only;
use aes_gcm::aead::consts::U16;
use aes_gcm::aead::{Aead, KeyInit};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

/// The longest a callback's timestamp may be off.
pub const SKEW_SECONDS: i64 = 30 * 60;

/// Why a callback is not acted on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CallbackError {
    #[error("no encrypt in the body")]
    Unsealed,
    #[error("the body cannot be decrypted with the key (not from WeLink, or another key)")]
    Decrypt,
    #[error("not the JSON of an event: {0}")]
    Json(String),
    #[error("the timestamp is more than 30 minutes off (a replay, or a wrong clock)")]
    Stale,
}

/// What a decrypted event asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Received {
    /// The URL check (`test`): answered, nothing else.
    Test,
    /// A change (its `eventType`).
    Change(String, Change),
    /// An authorisation notice: answered, not acted on.
    Ignored(String),
}

type Gcm128 = aes_gcm::AesGcm<aes::Aes128, U16>;
type Gcm192 = aes_gcm::AesGcm<aes::Aes192, U16>;
type Gcm256 = aes_gcm::AesGcm<aes::Aes256, U16>;

/// The key, as configured (16, 24 or 32 bytes).
pub struct Callback {
    key: Vec<u8>,
}

impl std::fmt::Debug for Callback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callback").finish_non_exhaustive()
    }
}

impl Callback {
    pub fn new(key: &str) -> Result<Self, &'static str> {
        match key.len() {
            16 | 24 | 32 => Ok(Callback { key: key.as_bytes().to_vec() }),
            _ => Err("must be 16, 24 or 32 characters (an AES key: the app's client secret, unless WeLink gave another)"),
        }
    }

    fn apply(&self, iv: &[u8; 16], data: &[u8], seal: bool) -> Result<Vec<u8>, CallbackError> {
        let nonce = aes_gcm::Nonce::<U16>::from_slice(iv);
        macro_rules! with {
            ($gcm:ty) => {{
                let c = <$gcm>::new_from_slice(&self.key).map_err(|_| CallbackError::Decrypt)?;
                if seal { c.encrypt(nonce, data) } else { c.decrypt(nonce, data) }.map_err(|_| CallbackError::Decrypt)
            }};
        }
        match self.key.len() {
            16 => with!(Gcm128),
            24 => with!(Gcm192),
            _ => with!(Gcm256),
        }
    }

    /// `encrypt` as WeLink sends it (what the tests send as WeLink).
    pub fn seal(&self, plain: &str, iv: [u8; 16]) -> String {
        let sealed = self.apply(&iv, plain.as_bytes(), true).unwrap_or_default();
        format!("{}{}", STANDARD.encode(iv), STANDARD.encode(sealed))
    }

    /// The plaintext of an `encrypt`: the first 24 characters the IV's base64.
    pub fn open(&self, encrypt: &str) -> Result<String, CallbackError> {
        let encrypt = encrypt.trim();
        let (iv, sealed) = (encrypt.get(..24).ok_or(CallbackError::Decrypt)?, encrypt.get(24..).ok_or(CallbackError::Decrypt)?);
        let iv: [u8; 16] = STANDARD.decode(iv).ok().and_then(|v| v.try_into().ok()).ok_or(CallbackError::Decrypt)?;
        let sealed = STANDARD.decode(sealed).map_err(|_| CallbackError::Decrypt)?;
        String::from_utf8(self.apply(&iv, &sealed, false)?).map_err(|_| CallbackError::Decrypt)
    }

    /// What a request body asks for, with its timestamp (the answer echoes it).
    pub fn receive(&self, body: &[u8], now: i64) -> Result<(Received, String, String), CallbackError> {
        let v: Value = serde_json::from_slice(body).map_err(|e| CallbackError::Json(e.to_string()))?;
        let plain = self.open(v.get("encrypt").and_then(Value::as_str).ok_or(CallbackError::Unsealed)?)?;
        let event: Value = serde_json::from_str(&plain).map_err(|e| CallbackError::Json(e.to_string()))?;
        let timestamp = match &event["timestamp"] {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => String::new(),
        };
        let at: i64 = timestamp.trim().parse().map_err(|_| CallbackError::Stale)?;
        // Seconds, as documented; a value in milliseconds is read as such.
        let at = if at > 100_000_000_000 { at / 1000 } else { at };
        if (now - at).abs() > SKEW_SECONDS {
            return Err(CallbackError::Stale);
        }
        Ok((received(&event), timestamp, plain))
    }

    /// The answer to every event: the encrypted success, echoing the timestamp.
    pub fn success(&self, timestamp: &str, iv: [u8; 16]) -> Value {
        let plain = serde_json::json!({ "msg": "success", "timestamp": timestamp }).to_string();
        serde_json::json!({ "encrypt": self.seal(&plain, iv) })
    }
}

/// What a decrypted event asks for.
fn received(v: &Value) -> Received {
    let kind = v.get("eventType").and_then(Value::as_str).unwrap_or_default().to_owned();
    let ids = |one: &str, many: &str| -> std::collections::BTreeSet<SourceId> {
        let listed = v.get(many).and_then(Value::as_array).into_iter().flatten();
        v.get(one)
            .into_iter()
            .chain(listed)
            .filter_map(|i| match i {
                Value::String(s) => Some(s.trim().to_owned()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .filter(|s| !s.is_empty())
            .map(SourceId)
            .collect()
    };
    match kind.as_str() {
        "test" => Received::Test,
        "corpAuth" | "corpCancelAuth" => Received::Ignored(kind),
        _ => {
            let only = Only { users: ids("userId", "userIds"), departments: ids("deptCode", "deptCodes") };
            let change = if only.users.is_empty() && only.departments.is_empty() { Change::Everything } else { Change::Objects(only) };
            Received::Change(kind, change)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn a_sealed_event_opens_and_names_its_objects() {
        let c = Callback::new(KEY).unwrap();
        let body = |plain: &str| serde_json::json!({ "encrypt": c.seal(plain, [3; 16]) }).to_string();
        let user = body(r#"{"eventType":"userChange","timestamp":"1700000000","userId":"u1"}"#);
        let (r, ts, _) = c.receive(user.as_bytes(), 1_700_000_100).unwrap();
        assert_eq!(ts, "1700000000");
        assert_eq!(r, Received::Change("userChange".into(), Change::Objects(Only { users: ["u1".into()].into(), ..Only::default() })));
        let depts = body(r#"{"eventType":"deptDelete","timestamp":"1700000000","deptCodes":["D1","D2"]}"#);
        let Received::Change(_, Change::Objects(o)) = c.receive(depts.as_bytes(), 1_700_000_000).unwrap().0 else { panic!() };
        assert_eq!(o.departments, ["D1".into(), "D2".into()].into());
        let bare = body(r#"{"eventType":"contactChange","timestamp":"1700000000"}"#);
        assert_eq!(c.receive(bare.as_bytes(), 1_700_000_000).unwrap().0, Received::Change("contactChange".into(), Change::Everything));
        let test = body(r#"{"eventType":"test","timestamp":"1700000000"}"#);
        assert_eq!(c.receive(test.as_bytes(), 1_700_000_000).unwrap().0, Received::Test);
        // Too old, another key, tampered.
        assert_eq!(c.receive(user.as_bytes(), 1_700_000_000 + SKEW_SECONDS + 1).unwrap_err(), CallbackError::Stale);
        let other = Callback::new("fedcba9876543210fedcba9876543210").unwrap();
        assert_eq!(other.receive(user.as_bytes(), 1_700_000_000).unwrap_err(), CallbackError::Decrypt);
        let sealed = c.seal(r#"{"eventType":"test"}"#, [3; 16]);
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 3;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(c.open(std::str::from_utf8(&tampered).unwrap()).unwrap_err(), CallbackError::Decrypt);
        assert_eq!(sealed.get(..24).map(str::len), Some(24), "the IV's base64 first");
        let answer = c.success("1700000000", [1; 16]);
        assert_eq!(c.open(answer["encrypt"].as_str().unwrap()).unwrap(), r#"{"msg":"success","timestamp":"1700000000"}"#);
        assert!(Callback::new("short").is_err());
    }
}
