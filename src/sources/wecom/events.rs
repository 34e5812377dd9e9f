//! WeCom's contact-change callbacks (docs/sources/wecom.md, events): the
//! XML around the shared message crypto ([`Callback`]), and the change an
//! event names.

pub use crate::sources::saas::callback::{Callback, CallbackError};

/// What a `change_contact` event names: a user or a department, by id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// `create_user`, `update_user` (with `NewUserID` when the id changed),
    /// `delete_user`.
    User { id: String, new_id: Option<String> },
    /// `create_party`, `update_party`, `delete_party`.
    Department { id: String },
}

/// A top-level element's text (CDATA or not), trimmed; none when blank.
pub fn field(xml: &str, name: &str) -> Result<Option<String>, CallbackError> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| CallbackError::Xml(e.to_string()))?;
    Ok(doc
        .root_element()
        .children()
        .find(|n| n.has_tag_name(name))
        .and_then(|n| n.text())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned))
}

/// The change a decrypted event names (none: another event, or a change
/// that is not about users or departments, such as a tag's).
pub fn change(xml: &str) -> Result<Option<Change>, CallbackError> {
    if field(xml, "Event")?.as_deref() != Some("change_contact") {
        return Ok(None);
    }
    Ok(match field(xml, "ChangeType")?.as_deref() {
        Some("create_user" | "update_user" | "delete_user") => {
            field(xml, "UserID")?.map(|id| Change::User { id, new_id: field(xml, "NewUserID").ok().flatten() })
        }
        Some("create_party" | "update_party" | "delete_party") => field(xml, "Id")?.map(|id| Change::Department { id }),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_contact_events_name_their_user_or_department() {
        let user = "<xml><ToUserName><![CDATA[ww1]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1403610513</CreateTime>\
                    <MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event><ChangeType>update_user</ChangeType>\
                    <UserID><![CDATA[zhangsan]]></UserID><NewUserID><![CDATA[zhangsan2]]></NewUserID><Department><![CDATA[1,2]]></Department></xml>";
        assert_eq!(change(user).unwrap(), Some(Change::User { id: "zhangsan".into(), new_id: Some("zhangsan2".into()) }));
        let party = "<xml><Event><![CDATA[change_contact]]></Event><ChangeType>delete_party</ChangeType><Id>7</Id></xml>";
        assert_eq!(change(party).unwrap(), Some(Change::Department { id: "7".into() }));
        let tag = "<xml><Event><![CDATA[change_contact]]></Event><ChangeType>update_tag</ChangeType><TagId>1</TagId></xml>";
        assert_eq!(change(tag).unwrap(), None);
        assert_eq!(change("<xml><Event>subscribe</Event></xml>").unwrap(), None);
        assert!(matches!(change("not xml"), Err(CallbackError::Xml(_))));
    }
}
