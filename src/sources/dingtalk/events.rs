//! DingTalk's event subscription pushed to an HTTP callback
//! (docs/sources/dingtalk.md, events): a JSON body `{"encrypt"}` sealed
//! with the shared message crypto ([`Callback`], the receiver the AppKey),
//! the URL check (`check_url`), and the change an event names. Every
//! answer is the encrypted "success".

pub use crate::events::Change;
use crate::model::SourceId;
use crate::reconcile::only::Only;
pub use crate::sources::saas::callback::{Callback, CallbackError};
use serde_json::Value;

/// What a decrypted event asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Received {
    /// The URL check: answered, nothing else.
    CheckUrl,
    /// A contact change (its `EventType`): a run of the objects it names.
    Change(String, Change),
    /// Another event: answered, not acted on.
    Ignored(String),
}

/// The event a decrypted message holds (the legacy callback's PascalCase
/// JSON: `EventType`, `UserId[]`, `DeptId[]`).
pub fn received(plain: &str) -> Result<Received, CallbackError> {
    let v: Value = serde_json::from_str(plain).map_err(|e| CallbackError::Xml(format!("not JSON: {e}")))?;
    let event = v.get("EventType").and_then(Value::as_str).unwrap_or_default();
    if event == "check_url" {
        return Ok(Received::CheckUrl);
    }
    Ok(change(event, &v, "UserId", "DeptId"))
}

/// The event of a Stream message (`headers.eventType`; `data`, a JSON
/// string, in camelCase: `userId[]`, `deptId[]`).
pub fn streamed(event_type: &str, data: &str) -> Result<Received, CallbackError> {
    let v: Value = serde_json::from_str(data).map_err(|e| CallbackError::Xml(format!("data is not JSON: {e}")))?;
    Ok(change(event_type, &v, "userId", "deptId"))
}

/// What an event of this type asks for, its ids under these keys.
fn change(event: &str, v: &Value, users: &str, departments: &str) -> Received {
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
    let only = match event {
        "user_add_org" | "user_modify_org" | "user_leave_org" | "user_active_org" => Only { users: ids(users), ..Only::default() },
        "org_dept_create" | "org_dept_modify" | "org_dept_remove" => Only { departments: ids(departments), ..Only::default() },
        other => return Received::Ignored(other.to_owned()),
    };
    Received::Change(event.to_owned(), Change::Objects(only))
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
        let users = |ids: &[&str]| Change::Objects(Only { users: ids.iter().map(|i| SourceId::from(*i)).collect(), ..Only::default() });
        assert_eq!(received(add).unwrap(), Received::Change("user_add_org".into(), users(&["184919295227658120"])));
        let dept = r#"{"CorpId":"ding1","EventType":"org_dept_create","DeptId":[581208264],"TimeStamp":"1640669222083"}"#;
        let dept_change = Change::Objects(Only { departments: ["581208264".into()].into(), ..Only::default() });
        assert_eq!(received(dept).unwrap(), Received::Change("org_dept_create".into(), dept_change.clone()));
        // Stream mode: the type in the headers, camelCase data.
        assert_eq!(
            streamed("user_leave_org", r#"{"timeStamp":"1","userId":["u1","u2"]}"#).unwrap(),
            Received::Change("user_leave_org".into(), users(&["u1", "u2"]))
        );
        assert_eq!(
            streamed("org_dept_create", r#"{"timeStamp":"1","deptId":[581208264]}"#).unwrap(),
            Received::Change("org_dept_create".into(), dept_change)
        );
        assert!(streamed("user_add_org", "{").is_err());
        assert_eq!(received(r#"{"EventType":"check_url"}"#).unwrap(), Received::CheckUrl);
        assert_eq!(received(r#"{"EventType":"label_conf_add"}"#).unwrap(), Received::Ignored("label_conf_add".into()));
        assert!(received("<xml/>").is_err());
    }
}
