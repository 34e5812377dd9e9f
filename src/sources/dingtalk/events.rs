//! DingTalk's event subscription pushed to an HTTP callback
//! (docs/sources/dingtalk.md, events): a JSON body `{"encrypt"}` sealed
//! with the shared message crypto ([`Callback`], the receiver the AppKey),
//! the URL check (`check_url`), and the change an event names. Every
//! answer is the encrypted "success".

use crate::model::SourceId;
use crate::reconcile::only::Only;
pub use crate::sources::saas::callback::{Callback, CallbackError};
use serde_json::Value;

/// What a decrypted event asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Received {
    /// The URL check: answered, nothing else.
    CheckUrl,
    /// A contact change: an on-demand run of these objects.
    Change(Only),
    /// Another event: answered, not acted on.
    Ignored(String),
}

/// The event a decrypted message holds (the legacy callback's PascalCase
/// JSON: `EventType`, `UserId[]`, `DeptId[]`).
pub fn received(plain: &str) -> Result<Received, CallbackError> {
    let v: Value = serde_json::from_str(plain).map_err(|e| CallbackError::Xml(format!("not JSON: {e}")))?;
    let ids = |key: &str| -> std::collections::BTreeSet<SourceId> {
        v.get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|i| match i {
                Value::String(s) => Some(SourceId::from(s.trim())),
                Value::Number(n) => Some(SourceId::from(n.to_string().as_str())),
                _ => None,
            })
            .filter(|s| !s.as_str().is_empty())
            .collect()
    };
    let event = v.get("EventType").and_then(Value::as_str).unwrap_or_default();
    Ok(match event {
        "check_url" => Received::CheckUrl,
        "user_add_org" | "user_modify_org" | "user_leave_org" | "user_active_org" => {
            Received::Change(Only { users: ids("UserId"), ..Only::default() })
        }
        "org_dept_create" | "org_dept_modify" | "org_dept_remove" => {
            Received::Change(Only { departments: ids("DeptId"), ..Only::default() })
        }
        other => Received::Ignored(other.to_owned()),
    })
}

/// The encrypted "success" every event is answered with.
pub fn success(callback: &Callback, timestamp: &str, nonce: &str, random: [u8; 16]) -> Value {
    let encrypt = callback.seal("success", random);
    let signature = callback.signature(timestamp, nonce, &encrypt);
    serde_json::json!({ "msg_signature": signature, "encrypt": encrypt, "timeStamp": timestamp, "nonce": nonce })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_name_their_users_or_departments() {
        let add =
            r#"{"CorpId":"ding1","EventType":"user_add_org","UserId":["184919295227658120"],"OptStaffId":"m","TimeStamp":"1640921671286"}"#;
        assert_eq!(received(add).unwrap(), Received::Change(Only { users: ["184919295227658120".into()].into(), ..Only::default() }));
        let dept = r#"{"CorpId":"ding1","EventType":"org_dept_create","DeptId":[581208264],"TimeStamp":"1640669222083"}"#;
        assert_eq!(received(dept).unwrap(), Received::Change(Only { departments: ["581208264".into()].into(), ..Only::default() }));
        assert_eq!(received(r#"{"EventType":"check_url"}"#).unwrap(), Received::CheckUrl);
        assert_eq!(received(r#"{"EventType":"label_conf_add"}"#).unwrap(), Received::Ignored("label_conf_add".into()));
        assert!(received("<xml/>").is_err());
    }
}
