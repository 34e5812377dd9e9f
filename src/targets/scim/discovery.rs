//! What a SCIM server says it supports (RFC 7644 section 4:
//! `/ServiceProviderConfig`, `/ResourceTypes`, `/Schemas`), read at the
//! start of each run, and how orgsync talks to it accordingly.
//!
//! Servers leave some of these out. Defaults when a document is missing or
//! unreadable (each said in [`Dialect::notes`]):
//! - no `/ServiceProviderConfig`: filter and PATCH assumed supported, no
//!   bulk, pages of `target.page_size` (100 when unset);
//! - no `/ResourceTypes`: the enterprise extension is sent when
//!   `/Schemas` lists it, or when `/Schemas` is missing too (as before
//!   discovery existed);
//! - no `/Schemas`, or a User schema without attribute list: every core
//!   attribute assumed held.

use super::mapping::ENTERPRISE;
use crate::reconcile::{Field, FieldSet};
use serde_json::Value;
use std::collections::BTreeSet;

/// `bulk` as advertised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bulk {
    pub max_operations: usize,
    pub max_payload: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dialect {
    /// Users may carry the enterprise extension (employeeNumber, department).
    pub enterprise: bool,
    /// `filter` on lists works (else lookups list everything).
    pub filter: bool,
    /// PATCH is supported.
    pub patch: bool,
    /// The most resources a list page returns, when the server caps it.
    pub max_results: Option<usize>,
    pub bulk: Option<Bulk>,
    pub etag: bool,
    /// The User schema's attribute names (lower case), when served.
    pub user_attributes: Option<BTreeSet<String>>,
    /// Every schema `/Schemas` lists, with its attribute names (lower case).
    pub schemas: Option<std::collections::BTreeMap<String, BTreeSet<String>>>,
    /// Where each `[mapping.attributes]` name goes: its SCIM path (a core
    /// attribute, or `urn:…:attribute` in an extension), by name.
    pub extras: Vec<(String, String)>,
    /// What was assumed, and why.
    pub notes: Vec<String>,
}

impl Default for Dialect {
    /// Before discovery: what orgsync did without it.
    fn default() -> Self {
        Dialect {
            enterprise: true,
            filter: true,
            patch: true,
            max_results: None,
            bulk: None,
            etag: false,
            user_attributes: None,
            schemas: None,
            extras: Vec::new(),
            notes: Vec::new(),
        }
    }
}

fn supported(spc: &Value, feature: &str) -> Option<bool> {
    spc.get(feature)?.get("supported")?.as_bool()
}

fn number(v: &Value, key: &str) -> Option<usize> {
    v.get(key).and_then(|n| n.as_u64().or_else(|| n.as_str().and_then(|s| s.parse().ok()))).map(|n| n as usize)
}

/// A ListResponse's resources, or a bare list.
fn resources(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        _ => v.get("Resources").and_then(Value::as_array).map(|a| a.iter().collect()).unwrap_or_default(),
    }
}

/// What the server answered instead of a discovery document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unserved {
    #[error("HTTP {0}")]
    Http(u16),
    #[error("not JSON")]
    NotJson,
    #[error("an empty answer")]
    Empty,
}

/// The dialect from the three documents, `Err` where the server did not
/// serve one (saying what it answered instead).
pub fn dialect(spc: Result<&Value, Unserved>, resource_types: Result<&Value, Unserved>, schemas: Result<&Value, Unserved>) -> Dialect {
    let mut d = Dialect::default();
    match spc {
        Ok(spc) => {
            d.filter = supported(spc, "filter").unwrap_or(true);
            d.patch = supported(spc, "patch").unwrap_or(true);
            d.etag = supported(spc, "etag").unwrap_or(false);
            d.max_results = spc.get("filter").and_then(|f| number(f, "maxResults")).filter(|n| *n > 0);
            if supported(spc, "bulk") == Some(true) {
                let b = spc.get("bulk").unwrap_or(&Value::Null);
                d.bulk = Some(Bulk {
                    max_operations: number(b, "maxOperations").unwrap_or(0),
                    max_payload: number(b, "maxPayloadSize").unwrap_or(0),
                });
            }
        }
        Err(why) => d.notes.push(format!("no /ServiceProviderConfig ({why}): filter and PATCH assumed supported")),
    }
    let schema_ids: Option<Vec<&str>> =
        schemas.as_ref().ok().map(|s| resources(s).iter().filter_map(|r| r.get("id").and_then(Value::as_str)).collect());
    match (&resource_types, &schema_ids) {
        (Ok(rts), _) => {
            let user = resources(rts)
                .into_iter()
                .find(|r| r.get("name").and_then(Value::as_str) == Some("User") || r.get("id").and_then(Value::as_str) == Some("User"));
            d.enterprise = user
                .and_then(|u| u.get("schemaExtensions"))
                .and_then(Value::as_array)
                .is_some_and(|exts| exts.iter().any(|e| e.get("schema").and_then(Value::as_str) == Some(ENTERPRISE)));
        }
        (Err(why), Some(ids)) => {
            d.enterprise = ids.contains(&ENTERPRISE);
            d.notes.push(format!(
                "no /ResourceTypes ({why}): the enterprise extension is {} as /Schemas {} it",
                if d.enterprise { "sent" } else { "not sent" },
                if d.enterprise { "lists" } else { "does not list" }
            ));
        }
        (Err(why), None) => d.notes.push(format!("no /ResourceTypes ({why}) and no /Schemas: the enterprise extension is sent (assumed)")),
    }
    match &schemas {
        Ok(s) => {
            d.schemas = Some(
                resources(s)
                    .into_iter()
                    .filter_map(|r| {
                        let id = r.get("id").and_then(Value::as_str)?;
                        let names = r.get("attributes").and_then(Value::as_array).into_iter().flatten();
                        Some((
                            id.to_owned(),
                            names.filter_map(|a| a.get("name").and_then(Value::as_str)).map(str::to_ascii_lowercase).collect(),
                        ))
                    })
                    .collect(),
            );
            let user = resources(s).into_iter().find(|r| r.get("id").and_then(Value::as_str) == Some(super::mapping::USER));
            d.user_attributes = user
                .and_then(|u| u.get("attributes"))
                .and_then(Value::as_array)
                .map(|attrs| attrs.iter().filter_map(|a| a.get("name").and_then(Value::as_str)).map(str::to_ascii_lowercase).collect());
            if d.user_attributes.is_none() {
                d.notes.push("/Schemas has no User schema with attributes: every core attribute assumed held".into());
            }
        }
        Err(why) => d.notes.push(format!("no /Schemas ({why}): every core attribute assumed held")),
    }
    d
}

impl Dialect {
    /// The user fields this server cannot hold: not compared, not sent.
    pub fn unheld(&self) -> FieldSet {
        let mut set = FieldSet::default();
        if !self.enterprise {
            set = set.with(Field::EmployeeNo).with(Field::Department);
        }
        if let Some(attrs) = &self.user_attributes {
            for (attr, field) in
                [("nickname", Field::Nickname), ("title", Field::Title), ("phonenumbers", Field::Mobile), ("emails", Field::Email)]
            {
                if !attrs.contains(attr) {
                    set = set.with(field);
                }
            }
        }
        // The enterprise extension's `manager`, unless /Schemas shows it without one.
        let listed = self.schemas.as_ref().and_then(|s| s.get(ENTERPRISE));
        if !self.enterprise || listed.is_some_and(|a| !a.contains("manager")) {
            set = set.with(Field::Manager);
        }
        // Groups have no leaders in SCIM.
        set = set.with(Field::Leaders);
        set
    }

    /// Where each extra attribute goes: a name with a schema URN
    /// (`urn:…:User:badge`) into that schema, where `/Schemas` lists it
    /// with the attribute; a bare name into the enterprise extension where
    /// it has it (`costCenter`, `organization`, `division`), else a core
    /// attribute (`userType`, `locale`). Without `/Schemas`: a bare name
    /// of the enterprise extension's (RFC 7643 4.3), any URN as written.
    /// `Err` names each the server cannot hold.
    pub fn place_extras(&self, names: &[String]) -> Result<Vec<(String, String)>, Vec<String>> {
        const ENTERPRISE_ATTRS: [&str; 3] = ["costcenter", "organization", "division"];
        let has = |schema: &str, attr: &str| match &self.schemas {
            Some(s) => s.get(schema).is_some_and(|a| a.contains(&attr.to_ascii_lowercase())),
            None => schema != ENTERPRISE || ENTERPRISE_ATTRS.contains(&attr.to_ascii_lowercase().as_str()),
        };
        let (mut placed, mut unheld) = (Vec::new(), Vec::new());
        for name in names {
            let path = match name.rsplit_once(':') {
                // A core attribute named by its URN is the core attribute.
                Some((schema, attr)) if schema == super::mapping::USER => {
                    self.user_attributes.as_ref().is_none_or(|a| a.contains(&attr.to_ascii_lowercase())).then(|| attr.to_owned())
                }
                Some((schema, attr)) if name.starts_with("urn:") => has(schema, attr).then(|| name.clone()),
                Some(_) => None,
                None if self.enterprise && has(ENTERPRISE, name) => Some(format!("{ENTERPRISE}:{name}")),
                None => self.user_attributes.as_ref().is_some_and(|a| a.contains(&name.to_ascii_lowercase())).then(|| name.clone()),
            };
            match path {
                Some(p) => placed.push((name.clone(), p)),
                None => unheld.push(format!(
                    "[mapping.attributes] {name}: the server's /Schemas lists it in no schema it offers for users \
                     (a bare name is looked for in the enterprise extension and the core User schema; \
                     name another schema's attribute as urn:…:attribute)"
                )),
            }
        }
        if unheld.is_empty() { Ok(placed) } else { Err(unheld) }
    }

    /// Members per membership request: 1,000, or the server's bulk limit if lower.
    pub fn members_per_request(&self, default: usize) -> usize {
        match self.bulk {
            Some(Bulk { max_operations, .. }) if max_operations > 0 => default.min(max_operations),
            _ => default,
        }
    }

    /// What `orgsync check-target` prints.
    /// Resources per list request: the configured size within the server's
    /// `maxResults`; unset, the server's `maxResults` (up to 1,000), else 100.
    pub fn page_size(&self, configured: Option<usize>) -> usize {
        match (configured, self.max_results) {
            (Some(c), Some(m)) => c.min(m),
            (Some(c), None) => c,
            (None, Some(m)) => m.min(1000),
            (None, None) => 100,
        }
    }

    pub fn rows(&self, page_size: Option<usize>, members: usize) -> Vec<(&'static str, String)> {
        let yes = |b: bool| if b { "yes" } else { "no" };
        let mut rows = vec![
            (
                "enterprise extension",
                format!("{} (employeeNumber, department {})", yes(self.enterprise), if self.enterprise { "sent" } else { "not sent" }),
            ),
            ("filter", if self.filter { "yes: lookups by filter".into() } else { "no: lookups list every resource".into() }),
            ("PATCH", if self.patch { "yes".into() } else { "no: updates will be refused (orgsync updates by PATCH only)".into() }),
            (
                "page size",
                match (page_size, self.max_results) {
                    (Some(c), Some(m)) if m < c => format!("{m} (the server's maxResults; target.page_size is {c})"),
                    (None, Some(_)) => format!("{} (the server's maxResults)", self.page_size(None)),
                    _ => self.page_size(page_size).to_string(),
                },
            ),
            (
                "bulk",
                match self.bulk {
                    Some(b) => format!("supported (maxOperations {}, maxPayloadSize {}); not used", b.max_operations, b.max_payload),
                    None => "no".into(),
                },
            ),
            ("etag", format!("{}; not used", yes(self.etag))),
            ("members per request", members.to_string()),
        ];
        let unheld: Vec<&str> = Field::ALL.iter().filter(|f| self.unheld().contains(**f)).map(|f| f.as_str()).collect();
        rows.push(("fields not held", if unheld.is_empty() { "none".into() } else { unheld.join(", ") }));
        for n in &self.notes {
            rows.push(("note", n.clone()));
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_full_server_is_read_as_it_says() {
        let spc = json!({"patch": {"supported": true}, "bulk": {"supported": true, "maxOperations": 200, "maxPayloadSize": 1048576},
            "filter": {"supported": true, "maxResults": 50}, "etag": {"supported": true}});
        let rts = json!({"Resources": [{"id": "User", "name": "User", "schemaExtensions": [{"schema": ENTERPRISE, "required": false}]}]});
        let schemas = json!({"Resources": [{"id": super::super::mapping::USER, "attributes": [{"name": "userName"}, {"name": "emails"}, {"name": "title"}]}]});
        let d = dialect(Ok(&spc), Ok(&rts), Ok(&schemas));
        assert!(d.enterprise && d.filter && d.patch && d.etag);
        assert_eq!(d.max_results, Some(50));
        assert_eq!((d.page_size(None), d.page_size(Some(20)), d.page_size(Some(500))), (50, 20, 50));
        assert_eq!(Dialect { max_results: Some(5000), ..Dialect::default() }.page_size(None), 1000);
        assert_eq!(Dialect::default().page_size(None), 100);
        assert_eq!(d.members_per_request(1000), 200);
        let unheld = d.unheld();
        assert!(unheld.contains(Field::Nickname) && unheld.contains(Field::Mobile), "no nickName, no phoneNumbers");
        assert!(!unheld.contains(Field::Title) && !unheld.contains(Field::EmployeeNo));
        assert!(d.notes.is_empty());
    }

    #[test]
    fn a_user_type_without_the_extension_gets_none_and_missing_documents_are_assumed_and_said() {
        // django-scim2: no schemaExtensions, filter not supported.
        let spc = json!({"patch": {"supported": true}, "filter": {"supported": false, "maxResults": 50}, "bulk": {"supported": false}});
        let rts = json!({"Resources": [{"id": "User", "name": "User", "schema": super::super::mapping::USER}]});
        let d = dialect(Ok(&spc), Ok(&rts), Err(Unserved::Http(404)));
        assert!(!d.enterprise && !d.filter && d.bulk.is_none());
        assert!(d.unheld().contains(Field::EmployeeNo) && d.unheld().contains(Field::Department));
        assert!(d.notes.iter().any(|n| n.contains("no /Schemas (HTTP 404)")), "{:?}", d.notes);
        let d = dialect(Err(Unserved::Http(404)), Err(Unserved::Http(404)), Err(Unserved::Http(404)));
        assert_eq!((d.enterprise, d.filter, d.patch), (true, true, true), "as before discovery");
        assert_eq!(d.notes.len(), 3);
        let schemas = json!([{"id": "urn:other"}]);
        assert!(!dialect(Err(Unserved::Http(501)), Err(Unserved::Http(501)), Ok(&schemas)).enterprise, "/Schemas without it");
    }
}
