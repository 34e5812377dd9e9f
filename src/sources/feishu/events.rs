//! Feishu/Lark contact events sent to an HTTP callback (docs/vendor-apis.md,
//! events): the URL verification (`challenge`), the Verification Token,
//! and with an Encrypt Key the signature and the decryption, as the
//! official SDKs do them.
//!
//! With an Encrypt Key the body is `{"encrypt": base64(iv + AES-256-CBC)}`,
//! the key SHA-256(Encrypt Key), PKCS#7; the signature header
//! `X-Lark-Signature` is hex(SHA-256(timestamp + nonce + Encrypt Key + the
//! raw body)).

use crate::config::Secret;
pub use crate::events::Change;
use crate::model::SourceId;
use crate::reconcile::only::Only;
use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Why a callback is not acted on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CallbackError {
    #[error("X-Lark-Signature does not match (not from Feishu, or another Encrypt Key)")]
    Signature,
    #[error("the Verification Token does not match")]
    Token,
    #[error("the body cannot be decrypted with the Encrypt Key")]
    Decrypt,
    #[error("an encrypted body was expected (an Encrypt Key is configured)")]
    Plain,
    #[error("not the JSON of an event: {0}")]
    Json(String),
}

/// What a callback asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Received {
    /// The URL verification: answer `{"challenge": …}`.
    Challenge(String),
    /// A contact event (`header.event_id`, `header.event_type`): a run of
    /// the objects it names, or a full run when the app's contact scope
    /// changed or a department was deleted (Feishu's answer for a deleted
    /// department read by id is not documented; a full read sees it gone).
    Event { id: String, kind: String, change: Change },
    /// Another event: answered, not acted on.
    Ignored(String),
}

/// The configured tokens and the id types objects are named by.
pub struct Callback {
    verification_token: Secret,
    encrypt_key: Option<Secret>,
    user_id_type: String,
    department_id_type: String,
}

impl std::fmt::Debug for Callback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callback").field("encrypted", &self.encrypt_key.is_some()).finish_non_exhaustive()
    }
}

/// The signature headers of a request.
#[derive(Clone, Copy, Debug, Default)]
pub struct Signed<'a> {
    pub timestamp: Option<&'a str>,
    pub nonce: Option<&'a str>,
    pub signature: Option<&'a str>,
}

type Decryptor = cbc::Decryptor<aes::Aes256>;
type Encryptor = cbc::Encryptor<aes::Aes256>;

impl Callback {
    pub fn new(verification_token: Secret, encrypt_key: Option<Secret>, user_id_type: &str, department_id_type: &str) -> Self {
        Callback {
            verification_token,
            encrypt_key,
            user_id_type: user_id_type.to_owned(),
            department_id_type: department_id_type.to_owned(),
        }
    }

    fn key(encrypt_key: &Secret) -> [u8; 32] {
        Sha256::digest(encrypt_key.expose().as_bytes()).into()
    }

    /// `X-Lark-Signature` of a raw body.
    pub fn signature(&self, timestamp: &str, nonce: &str, body: &[u8]) -> Option<String> {
        let key = self.encrypt_key.as_ref()?;
        let mut h = Sha256::new();
        h.update(timestamp.as_bytes());
        h.update(nonce.as_bytes());
        h.update(key.expose().as_bytes());
        h.update(body);
        Some(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
    }

    /// A body as Feishu sends it with an Encrypt Key (`iv`: its 16
    /// leading bytes): `{"encrypt": …}`. What the tests send as Feishu.
    pub fn seal(&self, plain: &str, iv: [u8; 16]) -> String {
        let Some(key) = &self.encrypt_key else { return plain.to_owned() };
        let sealed = Encryptor::new(&Self::key(key).into(), &iv.into()).encrypt_padded_vec_mut::<Pkcs7>(plain.as_bytes());
        let mut all = iv.to_vec();
        all.extend(sealed);
        serde_json::json!({ "encrypt": STANDARD.encode(all) }).to_string()
    }

    fn open(&self, body: &[u8]) -> Result<Value, CallbackError> {
        let v: Value = serde_json::from_slice(body).map_err(|e| CallbackError::Json(e.to_string()))?;
        let Some(key) = &self.encrypt_key else { return Ok(v) };
        let encrypted = v.get("encrypt").and_then(Value::as_str).ok_or(CallbackError::Plain)?;
        let plain = Self::decrypt(key, encrypted)?;
        serde_json::from_slice(&plain).map_err(|e| CallbackError::Json(e.to_string()))
    }

    /// `encrypt`'s plaintext: base64(iv + AES-256-CBC(SHA-256(key), PKCS#7)).
    fn decrypt(key: &Secret, encrypted: &str) -> Result<Vec<u8>, CallbackError> {
        let data = STANDARD.decode(encrypted.trim()).map_err(|_| CallbackError::Decrypt)?;
        if data.len() < 32 || !data.len().is_multiple_of(16) {
            return Err(CallbackError::Decrypt);
        }
        let (iv, ciphertext) = data.split_at(16);
        let iv: [u8; 16] = iv.try_into().map_err(|_| CallbackError::Decrypt)?;
        Decryptor::new(&Self::key(key).into(), &iv.into()).decrypt_padded_vec_mut::<Pkcs7>(ciphertext).map_err(|_| CallbackError::Decrypt)
    }

    /// What a request asks for, once it passed every check: with an
    /// Encrypt Key, decrypted and (but for the URL verification) signed;
    /// always, carrying the Verification Token.
    pub fn receive(&self, signed: Signed<'_>, body: &[u8]) -> Result<Received, CallbackError> {
        let v = self.open(body)?;
        let token_ok = |t: Option<&str>| t.is_some_and(|t| crate::http::same(t.as_bytes(), self.verification_token.expose().as_bytes()));
        if v.get("type").and_then(Value::as_str) == Some("url_verification") {
            if !token_ok(v.get("token").and_then(Value::as_str)) {
                return Err(CallbackError::Token);
            }
            return Ok(Received::Challenge(v.get("challenge").and_then(Value::as_str).unwrap_or_default().to_owned()));
        }
        if self.encrypt_key.is_some() {
            let expected = match (signed.timestamp, signed.nonce) {
                (Some(ts), Some(nonce)) => self.signature(ts, nonce, body),
                _ => None,
            };
            let given = signed.signature.map(|s| s.trim().to_ascii_lowercase());
            if !matches!((&expected, &given), (Some(e), Some(g)) if crate::http::same(e.as_bytes(), g.as_bytes())) {
                return Err(CallbackError::Signature);
            }
        }
        let header = &v["header"];
        if !token_ok(header.get("token").and_then(Value::as_str)) {
            return Err(CallbackError::Token);
        }
        Ok(self.event(&v))
    }

    /// The change a schema-2.0 event names (checked already: from the
    /// callback, or from the long connection, which carries no token).
    pub fn event(&self, v: &Value) -> Received {
        let header = &v["header"];
        let event_type = header.get("event_type").and_then(Value::as_str).unwrap_or_default();
        let event_id =
            header.get("event_id").and_then(Value::as_str).map_or_else(|| crate::events::digest(v.to_string().as_bytes()), str::to_owned);
        let object = &v["event"]["object"];
        let id = |key: &str| object.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(SourceId::from);
        let change = match event_type {
            // A leaver is read by id too: Feishu keeps resigned users
            // (`status.is_resigned`), which the mapping makes inactive.
            "contact.user.created_v3" | "contact.user.updated_v3" | "contact.user.deleted_v3" => match id(&self.user_id_type) {
                Some(u) => Change::Objects(Only { users: [u].into(), ..Only::default() }),
                None => return Received::Ignored(format!("{event_type} without the user's {}", self.user_id_type)),
            },
            "contact.department.created_v3" | "contact.department.updated_v3" => match id(&self.department_id_type) {
                Some(d) => Change::Objects(Only { departments: [d].into(), ..Only::default() }),
                None => return Received::Ignored(format!("{event_type} without the department's {}", self.department_id_type)),
            },
            "contact.scope.updated_v3" | "contact.department.deleted_v3" => Change::Everything,
            other => return Received::Ignored(other.to_owned()),
        };
        Received::Event { id: event_id, kind: event_type.to_owned(), change }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn callback(encrypted: bool) -> Callback {
        Callback::new(Secret::new("VT"), encrypted.then(|| Secret::new("encrypt-key")), "open_id", "open_department_id")
    }

    fn objects(kind: &str, only: Only) -> Received {
        Received::Event { id: "e1".into(), kind: kind.into(), change: Change::Objects(only) }
    }

    fn event(event_type: &str, object: Value, token: &str) -> String {
        serde_json::json!({"schema": "2.0", "header": {"event_id": "e1", "event_type": event_type, "create_time": "1700000000000",
            "token": token, "app_id": "cli_x", "tenant_key": "tk"}, "event": {"object": object}})
        .to_string()
    }

    #[test]
    fn plain_events_name_their_object_by_the_configured_id_type() {
        let c = callback(false);
        let user = event("contact.user.updated_v3", serde_json::json!({"open_id": "ou_a", "union_id": "on_a"}), "VT");
        assert_eq!(
            c.receive(Signed::default(), user.as_bytes()),
            Ok(objects("contact.user.updated_v3", Only { users: ["ou_a".into()].into(), ..Only::default() }))
        );
        let dept = event("contact.department.updated_v3", serde_json::json!({"open_department_id": "od-1", "department_id": "D1"}), "VT");
        assert_eq!(
            c.receive(Signed::default(), dept.as_bytes()),
            Ok(objects("contact.department.updated_v3", Only { departments: ["od-1".into()].into(), ..Only::default() }))
        );
        let left = event("contact.user.deleted_v3", serde_json::json!({"open_id": "ou_a", "status": {"is_resigned": true}}), "VT");
        assert_eq!(
            c.receive(Signed::default(), left.as_bytes()),
            Ok(objects("contact.user.deleted_v3", Only { users: ["ou_a".into()].into(), ..Only::default() }))
        );
        for full in ["contact.scope.updated_v3", "contact.department.deleted_v3"] {
            let e = event(full, serde_json::json!({"open_id": "ou_a", "open_department_id": "od-1"}), "VT");
            assert_eq!(
                c.receive(Signed::default(), e.as_bytes()),
                Ok(Received::Event { id: "e1".into(), kind: full.into(), change: Change::Everything }),
                "{full}"
            );
        }
        assert!(matches!(
            c.receive(Signed::default(), event("im.message.receive_v1", Value::Null, "VT").as_bytes()),
            Ok(Received::Ignored(_))
        ));
        assert_eq!(c.receive(Signed::default(), user.replace("\"VT\"", "\"other\"").as_bytes()), Err(CallbackError::Token));
        let challenge = r#"{"challenge":"ajls384kdjx98XX","token":"VT","type":"url_verification"}"#;
        assert_eq!(c.receive(Signed::default(), challenge.as_bytes()), Ok(Received::Challenge("ajls384kdjx98XX".into())));
    }

    /// The example of Feishu's encryption guide.
    #[test]
    fn the_vendors_example_decrypts() {
        let plain = Callback::decrypt(&Secret::new("test key"), "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=").unwrap();
        assert_eq!(String::from_utf8(plain).unwrap(), "hello world");
    }

    #[test]
    fn encrypted_events_are_signed_and_a_plain_one_is_refused() {
        let c = callback(true);
        let body = c.seal(&event("contact.user.created_v3", serde_json::json!({"open_id": "ou_b"}), "VT"), [9; 16]);
        let sig = c.signature("1700000000", "n", body.as_bytes()).unwrap();
        let signed = Signed { timestamp: Some("1700000000"), nonce: Some("n"), signature: Some(&sig) };
        assert_eq!(
            c.receive(signed, body.as_bytes()),
            Ok(objects("contact.user.created_v3", Only { users: ["ou_b".into()].into(), ..Only::default() }))
        );
        let wrong = Signed { nonce: Some("m"), ..signed };
        assert_eq!(c.receive(wrong, body.as_bytes()), Err(CallbackError::Signature));
        assert_eq!(c.receive(Signed::default(), body.as_bytes()), Err(CallbackError::Signature));
        let plain = event("contact.user.created_v3", serde_json::json!({"open_id": "ou_b"}), "VT");
        assert_eq!(c.receive(signed, plain.as_bytes()), Err(CallbackError::Plain));
        // The URL verification comes encrypted and unsigned.
        let challenge = c.seal(r#"{"challenge":"c1","token":"VT","type":"url_verification"}"#, [1; 16]);
        assert_eq!(c.receive(Signed::default(), challenge.as_bytes()), Ok(Received::Challenge("c1".into())));
        let other = Callback::new(Secret::new("VT"), Some(Secret::new("another key")), "open_id", "open_department_id");
        assert!(matches!(other.receive(Signed::default(), challenge.as_bytes()), Err(CallbackError::Decrypt | CallbackError::Json(_))));
    }

    proptest::proptest! {
        /// What is sealed opens to itself.
        #[test]
        fn a_sealed_body_opens_to_itself(text in ".{0,200}", iv in proptest::array::uniform16(proptest::num::u8::ANY)) {
            let c = callback(true);
            let plain = serde_json::json!({"text": text}).to_string();
            proptest::prop_assert_eq!(c.open(c.seal(&plain, iv).as_bytes()), Ok(serde_json::from_str::<Value>(&plain).unwrap()));
        }
    }
}
