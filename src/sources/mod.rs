//! Identity sources. Each kind lives in its own folder and implements
//! [`IdentitySource`]: fetch the whole in-scope directory, all pages or
//! nothing (a failed fetch fails the run before anything is applied).

pub mod config;
pub mod dingtalk;
pub mod entra;
pub mod feishu;
pub mod file;
pub mod ldap;
pub mod saas;
pub mod wecom;
pub mod welink;

use crate::mapping::Mapping;
use crate::model::{Department, Kind, Snapshot, SourceId, Unreadable, User, UserField};
use crate::reconcile::only::Only;
pub use config::SourceConfig;
use futures::future::BoxFuture;
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read source file {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("source file {path} is not valid: {source}")]
    Invalid {
        path: std::path::PathBuf,
        #[source]
        source: file::FormatError,
    },
    /// The directory could not be reached or refused a search.
    #[error("LDAP {url}: {source}")]
    Ldap {
        url: String,
        #[source]
        source: crate::ldap::LdapError,
    },
    /// The directory changed under the fetch (an entry vanished mid-read).
    #[error("LDAP {url}: {message}")]
    LdapChanged { url: String, message: String },
    #[error("LDAP {url}: {source}")]
    LdapEntry {
        url: String,
        #[source]
        source: ldap::MappingError,
    },
    /// A SaaS API: the vendor, the endpoint path, the code and message.
    #[error("{vendor} {path}: {message}")]
    Api { vendor: &'static str, path: String, message: String },
    /// A SaaS API that kept throttling or failing transiently until the
    /// retries ran out: worth another run later.
    #[error("{vendor} {path}: {message} (still failing after every retry)")]
    Unavailable { vendor: &'static str, path: String, message: String },
    /// `scope.include_departments` names departments the source does not
    /// have: a typo away from leaving everyone out, so nothing is written.
    #[error("scope.include_departments: no department {} in the source; nothing was changed", .ids.iter().map(|i| format!("{i:?}")).collect::<Vec<_>>().join(", "))]
    UnknownScope { ids: Vec<String> },
}

impl SourceError {
    /// A short, bounded label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            SourceError::Io { .. } => "io",
            SourceError::Invalid { .. } => "invalid",
            SourceError::Ldap { .. } | SourceError::LdapChanged { .. } | SourceError::LdapEntry { .. } => "ldap",
            SourceError::Api { .. } => "api",
            SourceError::Unavailable { .. } => "unavailable",
            SourceError::UnknownScope { .. } => "scope",
        }
    }

    /// Worth trying again later: the vendor throttled or failed
    /// transiently through every retry; the directory was busy, unavailable
    /// or timed out; it changed under the fetch.
    pub fn is_transient(&self) -> bool {
        match self {
            SourceError::Unavailable { .. } | SourceError::LdapChanged { .. } => true,
            SourceError::Ldap { source, .. } => source.is_transient(),
            _ => false,
        }
    }

    /// The same failure, known to be transient.
    pub(crate) fn into_transient(self) -> Self {
        match self {
            SourceError::Api { vendor, path, message } => SourceError::Unavailable { vendor, path, message },
            other => other,
        }
    }
}

/// A fetch, and the state an incremental source keeps for the next one.
#[derive(Debug)]
pub struct Fetched {
    pub snapshot: Snapshot,
    /// Saved in the mirror once the fetch succeeded (`None`: nothing to keep).
    pub state: Option<Vec<u8>>,
}

pub trait IdentitySource: Send + Sync {
    /// The whole in-scope directory.
    fn fetch(&self) -> BoxFuture<'_, Result<Snapshot, SourceError>>;

    /// The whole in-scope directory, given what the last successful fetch
    /// kept (`state`): a source that reads changes since then (Entra's
    /// delta) applies them to what it kept. A failed fetch keeps nothing:
    /// the old state stays.
    fn fetch_since(&self, _state: Option<Vec<u8>>) -> BoxFuture<'_, Result<Fetched, SourceError>> {
        Box::pin(async move { Ok(Fetched { snapshot: self.fetch().await?, state: None }) })
    }

    /// Only the objects `only` names, with the departments above them
    /// (to place them in the tree and judge the scope): by the vendor's
    /// one-object calls where it has them. A named object the source does
    /// not have is left out (the plan judges it gone). This default reads
    /// the whole source and keeps those.
    fn fetch_objects<'a>(&'a self, only: &'a Only) -> BoxFuture<'a, Result<Objects, SourceError>> {
        Box::pin(narrowed(self.fetch(), only))
    }

    /// The kind, for logs and messages (`file`, `ldap`, `feishu`, ...).
    fn kind(&self) -> &'static str;

    /// A document that is the whole truth (the file source): a field no
    /// record has is empty, not withheld.
    fn is_document(&self) -> bool {
        false
    }
}

/// Some objects of the source, read by id ([`IdentitySource::fetch_objects`]).
#[derive(Debug, Default)]
pub struct Objects {
    /// The objects found, and the departments above them.
    pub snapshot: Snapshot,
    /// The vendor's own record of each object named that was found, as
    /// fetched (its field names; what it did not send is not there).
    pub raw: BTreeMap<(Kind, SourceId), serde_json::Value>,
    /// Requests the vendor was sent (a SaaS source counts them).
    pub requests: Option<u64>,
    /// Read by the vendor's one-object calls (not the whole source).
    pub by_id: bool,
}

/// The whole source, fetched by `fetch`, narrowed to what `only` names.
pub async fn narrowed(
    fetch: impl std::future::Future<Output = Result<Snapshot, SourceError>>,
    only: &Only,
) -> Result<Objects, SourceError> {
    Ok(Objects { snapshot: narrow(fetch.await?, only), ..Objects::default() })
}

/// `snapshot` with only the objects `only` names, the departments above
/// them and above the named users' departments (parents before children,
/// as the source listed them), the unreadable records naming them, and the
/// user records without an id (which hold back removals).
pub fn narrow(mut snapshot: Snapshot, only: &Only) -> Snapshot {
    snapshot.users.retain(|u| only.users.contains(&u.source_id));
    let parent: std::collections::HashMap<&SourceId, Option<&SourceId>> =
        snapshot.departments.iter().map(|d| (&d.source_id, d.parent_id.as_ref())).collect();
    let mut keep: std::collections::HashSet<SourceId> = std::collections::HashSet::new();
    let starts = only.departments.iter().chain(snapshot.users.iter().flat_map(|u| u.department_ids.iter()));
    for start in starts {
        let mut at = Some(start);
        while let Some(d) = at {
            if !parent.contains_key(d) || !keep.insert(d.clone()) {
                break;
            }
            at = parent.get(d).copied().flatten();
        }
    }
    snapshot.departments.retain(|d| keep.contains(&d.source_id));
    // A user record without an id is kept: it holds back every removal, as in a whole run.
    snapshot.unreadable.retain(|r| match (&r.source_id, r.kind) {
        (None, Kind::User) => true,
        (Some(id), Kind::User) => only.users.contains(id),
        (Some(id), Kind::Department) => only.departments.contains(id),
        (None, Kind::Department) => false,
    });
    snapshot
}

/// Users listed once per department -> one user per source id, with the
/// department lists merged in listing order (so the first listing's
/// primary department stays first).
pub fn merge_by_id(users: impl IntoIterator<Item = crate::model::User>) -> Vec<crate::model::User> {
    let mut out: Vec<crate::model::User> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for u in users {
        match index.get(&u.source_id.0) {
            Some(&i) => {
                for d in u.department_ids {
                    if !out[i].department_ids.contains(&d) {
                        out[i].department_ids.push(d);
                    }
                }
            }
            None => {
                index.insert(u.source_id.0.clone(), out.len());
                out.push(u);
            }
        }
    }
    out
}

/// The configured roots are containers, not departments (their children are
/// the top level): a user listed directly in one gets no department from it.
pub fn drop_root_memberships(users: &mut [crate::model::User], roots: &[String]) {
    for u in users {
        u.department_ids.retain(|d| !roots.iter().any(|r| r == d.as_str()));
    }
}

/// The string fields a user mapping can carry (the manager by its id).
pub const STRING_FIELDS: [UserField; 7] = [
    UserField::Name,
    UserField::Email,
    UserField::Mobile,
    UserField::EmployeeNo,
    UserField::Nickname,
    UserField::Title,
    UserField::Manager,
];

/// A field that no user of a whole fetch has a value for was withheld, not
/// emptied: an LDAP attribute the bind account may not read (an ACL), a
/// vendor field the app has no permission for, or that apps of its age no
/// longer receive. Mark it absent on every user, so the target keeps its
/// values; a real org never empties a field for everyone at once. Returns,
/// per field absent somewhere, how many users lack it (all of them for the
/// fields marked here). Not for the file source: its document is the truth.
pub fn mark_withheld(snapshot: &mut Snapshot) -> Vec<(UserField, usize)> {
    let mut out = Vec::new();
    if snapshot.users.is_empty() {
        return out;
    }
    for f in STRING_FIELDS {
        let none_has_it = snapshot.users.iter().all(|u| crate::model::non_empty_str(u.field(f)).is_none());
        if none_has_it {
            for u in &mut snapshot.users {
                u.withhold(f);
            }
        }
        let absent = snapshot.users.iter().filter(|u| u.is_absent(f)).count();
        if absent > 0 {
            out.push((f, absent));
        }
    }
    out
}

/// The configured source; where its API can read only what `scope`
/// keeps (the LDAP OU tree), it reads only that.
/// `mapping`'s expressions set the fields they name.
pub fn build(config: &SourceConfig, scope: &crate::reconcile::scope::Scope, mapping: &Mapping) -> Box<dyn IdentitySource> {
    let include = &scope.include_departments;
    let m = mapping.clone();
    match config {
        SourceConfig::File { path } => Box::new(file::FileSource::new(path.clone()).mapped(m)),
        SourceConfig::Ldap(c) => Box::new(ldap::LdapSource::new(c.as_ref().clone()).narrowed_to(include).mapped(m)),
        SourceConfig::Feishu(c) => Box::new(feishu::FeishuSource::new(c.as_ref().clone()).narrowed_to(include).mapped(m)),
        SourceConfig::DingTalk(c) => Box::new(dingtalk::DingTalkSource::new(c.as_ref().clone()).narrowed_to(include).mapped(m)),
        SourceConfig::WeLink(c) => Box::new(welink::WeLinkSource::new(c.as_ref().clone()).mapped(m)),
        SourceConfig::Entra(c) => Box::new(entra::EntraSource::new(c.as_ref().clone()).mapped(m)),
        SourceConfig::WeCom(c) => Box::new(wecom::WeComSource::new(c.as_ref().clone()).narrowed_to(include).mapped(m)),
    }
}

/// `user`, as a source's fixed mapping made it from `raw`, with the fields
/// `mapping` sets; an expression that fails makes the record `invalid`,
/// naming the field.
pub fn mapped(mapping: &Mapping, raw: serde_json::Value, user: Result<User, Unreadable>) -> Result<User, Unreadable> {
    let mut user = user?;
    match mapping.user(raw, &mut user) {
        Ok(()) => Ok(user),
        Err(failed) => Err(Unreadable {
            kind: Kind::User,
            message: format!("{} {}: {failed}", Kind::User, user.source_id),
            source_id: Some(user.source_id),
        }),
    }
}

/// [`mapped`], for a department.
pub fn mapped_department(
    mapping: &Mapping,
    raw: serde_json::Value,
    department: Result<Department, Unreadable>,
) -> Result<Department, Unreadable> {
    let mut d = department?;
    match mapping.department(raw, &mut d) {
        Ok(()) => Ok(d),
        Err(failed) => Err(Unreadable {
            kind: Kind::Department,
            message: format!("{} {}: {failed}", Kind::Department, d.source_id),
            source_id: Some(d.source_id),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::User;

    fn user(id: &str, email: Option<&str>, mobile: Option<&str>) -> User {
        User {
            source_id: id.into(),
            email: email.map(Into::into),
            mobile: mobile.map(Into::into),
            name: Some(id.into()),
            ..User::default()
        }
    }

    #[test]
    fn a_field_no_user_has_is_withheld_for_all_and_one_some_users_have_is_not() {
        let mut s =
            Snapshot { departments: vec![], users: vec![user("a", None, Some("1")), user("b", Some(" "), None)], ..Default::default() };
        s.users[1].withhold(UserField::Mobile);
        let got = mark_withheld(&mut s);
        assert!(s.users.iter().all(|u| u.is_absent(UserField::Email)), "nobody has an email: withheld");
        assert!(!s.users[0].is_absent(UserField::Mobile), "one user has a mobile: the other's is per record");
        assert!(got.contains(&(UserField::Email, 2)) && got.contains(&(UserField::Mobile, 1)), "{got:?}");
        assert!(!got.iter().any(|(f, _)| *f == UserField::Name));
    }

    #[test]
    fn an_empty_fetch_withholds_nothing() {
        let mut s = Snapshot::default();
        assert!(mark_withheld(&mut s).is_empty());
    }
}
