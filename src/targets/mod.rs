//! Target systems. Each implements [`Target`]: list the current users and
//! departments, and carry out one resolved operation at a time. `sync::apply`
//! resolves source ids to target ids before calling in, so targets never see
//! bindings.

pub mod config;
pub mod file;
pub mod ldap;
pub mod rest;
pub mod scim;
pub mod unique;

use crate::model::{TargetId, TargetSnapshot};
use crate::reconcile::{Change, DeptSpec, UserSpec};
pub use config::TargetConfig;
use futures::future::BoxFuture;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("{method} {path}: HTTP {status}{}", detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Http { method: &'static str, path: String, status: u16, detail: Option<String>, retry_after: Option<Duration> },
    #[error("{method} {path}: {}", crate::http_client::cause_chain(source))]
    Transport {
        method: &'static str,
        path: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{method} {path}: unexpected response: {message}")]
    Decode { method: &'static str, path: String, message: String },
    #[error("target file {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("target file {path} is not valid: {message}")]
    InvalidFile { path: std::path::PathBuf, message: String },
    /// Some attributes of a PATCH were refused one by one (the others were applied).
    #[error("PATCH {path}: the target refused {}: {detail}", attributes.join(", "))]
    Refused { path: String, attributes: Vec<String>, fields: Vec<crate::reconcile::Field>, detail: String },
    #[error("LDAP {0}")]
    Ldap(#[source] crate::ldap::LdapError),
    /// An object of this name exists and is another's: nothing was written to it.
    #[error("conflict: {0}")]
    Conflict(String),
    /// An operation the config does not describe (a REST request not configured).
    #[error("no {0} configured")]
    NotConfigured(&'static str),
    /// A config value the target cannot use (a header value that is not one).
    #[error("{0}")]
    InvalidConfig(String),
    /// A request template that did not render, or rendered something unusable.
    #[error("{0}")]
    Template(#[source] rest::TemplateError),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// An object the operation needs is not in the target.
    #[error("{0}")]
    Missing(String),
    /// The target answered in a way orgsync cannot go on from (an entry
    /// without its id, a list that never ends).
    #[error("{0}")]
    Unexpected(String),
    /// An operation that cannot go on until someone acts (an OU that still
    /// holds entries orgsync does not manage).
    #[error("{0}")]
    Blocked(String),
    /// The directory's schema refuses what the config maps: nothing was written.
    #[error("nothing was written: {}", .0.join("; "))]
    Schema(Vec<String>),
}

impl TargetError {
    /// Worth retrying: timeouts, connection failures, 408, 429 and 5xx
    /// except 501 (the server does not implement it: asking again changes
    /// nothing). Every other 4xx is permanent.
    pub fn is_transient(&self) -> bool {
        match self {
            TargetError::Http { status, .. } => matches!(*status, 408 | 429) || (*status >= 500 && *status != 501),
            TargetError::Transport { source, .. } => source.is_timeout() || source.is_connect() || source.is_request(),
            TargetError::Ldap(e) => e.is_transient(),
            _ => false,
        }
    }

    /// The target could not be reached at all (after the retries): the
    /// connection was refused or timed out, or a gateway said it is down.
    /// Several in a row end the run (`unreachable_after`).
    pub fn is_unreachable(&self) -> bool {
        match self {
            TargetError::Http { status, .. } => matches!(*status, 502..=504),
            TargetError::Transport { source, .. } => source.is_timeout() || source.is_connect(),
            TargetError::Ldap(e) => matches!(e, crate::ldap::LdapError::Connect(_) | crate::ldap::LdapError::Protocol { .. }),
            _ => false,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            TargetError::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            TargetError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// A short, bounded label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            TargetError::Http { status: 501, .. } => "http_501",
            TargetError::Http { status, .. } if *status >= 500 => "http_5xx",
            TargetError::Http { status: 429, .. } => "http_429",
            TargetError::Http { .. } => "http_4xx",
            TargetError::Transport { .. } => "transport",
            TargetError::Decode { .. } => "decode",
            TargetError::Io { .. } | TargetError::InvalidFile { .. } => "io",
            TargetError::Refused { .. } => "refused",
            TargetError::Ldap(_) => "ldap",
            TargetError::Conflict(_) => "conflict",
            TargetError::NotConfigured(_) | TargetError::InvalidConfig(_) | TargetError::Template(_) | TargetError::Client(_) => "config",
            TargetError::Missing(_) => "missing",
            TargetError::Blocked(_) => "blocked",
            TargetError::Unexpected(_) => "unexpected",
            TargetError::Schema(_) => "schema",
        }
    }
}

pub type TResult<'a, T> = BoxFuture<'a, Result<T, TargetError>>;

/// How every target retries a transient failure: exponential from 200 ms
/// to 30 s, with jitter, at most `retries` times.
pub(crate) fn backoff(retries: usize) -> backon::ExponentialBuilder {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(30))
        .with_max_times(retries)
        .with_jitter()
}

/// One request a target sent: never headers, bodies or the query (where
/// secrets may travel), only what says what happened.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RequestRecord {
    pub method: String,
    /// The URL's path, without the query.
    pub path: String,
    /// The answer's status; none when no answer came.
    pub status: Option<u16>,
    pub millis: u64,
    /// Why it failed, where it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The requests of the run under way, taken by the run at its end.
#[derive(Debug, Default)]
pub struct RequestLog(std::sync::Mutex<Vec<RequestRecord>>);

impl RequestLog {
    /// Record one request that took since `started`.
    pub fn push(&self, method: &str, path: &str, started: std::time::Instant, status: Option<u16>, error: Option<String>) {
        let path = path.split('?').next().unwrap_or(path);
        let r = RequestRecord {
            method: method.to_owned(),
            path: crate::redact::redact(path).into_owned(),
            status,
            millis: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            error: error.map(|e| crate::redact::redact(&e).into_owned()),
        };
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(r);
    }

    pub fn take(&self) -> Vec<RequestRecord> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

/// One target system. Departments and users arrive resolved: parents and
/// memberships as target ids.
/// The target users an on-demand run or `explain` is about: those bound
/// to the objects named, and those the named users could match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Wanted {
    pub users: Vec<TargetId>,
    /// Match key values (`policy.users.match_by`) of the named users.
    pub keys: Vec<(crate::reconcile::MatchKey, String)>,
    /// The named users' source ids, as the externalId they are written with.
    pub external_ids: Vec<String>,
}

impl Wanted {
    /// For the objects named: their bound target users, and the match keys
    /// and external ids of the named users `source` holds.
    pub fn of(
        only: &crate::reconcile::only::Only,
        source: &crate::model::Snapshot,
        bindings: &crate::model::Bindings,
        match_by: &[crate::reconcile::MatchKey],
    ) -> Wanted {
        let users: Vec<&crate::model::User> = source.users.iter().filter(|u| only.users.contains(&u.source_id)).collect();
        let keys = users
            .iter()
            .flat_map(|u| {
                match_by.iter().filter_map(move |k| {
                    crate::reconcile::user_key(u, *k).as_ref().filter(|v| !v.trim().is_empty()).map(|v| (*k, v.clone()))
                })
            })
            .collect();
        Wanted {
            users: only.users.iter().filter_map(|s| bindings.users.get(s).cloned()).collect(),
            keys,
            external_ids: only.users.iter().map(|s| s.to_string()).collect(),
        }
    }
}

pub trait Target: Send + Sync {
    /// How this target holds departments (a tree unless it says otherwise).
    fn departments(&self) -> crate::reconcile::DepartmentShape {
        crate::reconcile::DepartmentShape::Tree
    }
    /// The user fields this target cannot hold (known after [`Target::load`]).
    fn unheld(&self) -> crate::reconcile::FieldSet {
        crate::reconcile::FieldSet::default()
    }
    /// Whether a user holds only its primary department here (an entry
    /// lives under one OU): only that one is written and compared.
    fn primary_only(&self) -> bool {
        false
    }
    /// For `sync --dry-run`: the plan's writes in the target's own terms
    /// (the LDAP target: add / modify / modrdn / delete with DNs), after
    /// [`Target::load`]. `resolve` gives a bound department's target id.
    fn describe(&self, _ops: &[crate::reconcile::Op], _resolve: &dyn Fn(&crate::model::SourceId) -> Option<TargetId>) -> Vec<String> {
        Vec::new()
    }
    /// The requests sent since the last call (HTTP targets), for the run's
    /// request log (`orgsync runs requests ID`).
    fn requests(&self) -> Vec<RequestRecord> {
        Vec::new()
    }
    /// What `orgsync check-target` prints: how orgsync will talk to the
    /// target, found without writing anything.
    fn check(&self) -> TResult<'_, Vec<(&'static str, String)>> {
        Box::pin(async { Ok(Vec::new()) })
    }
    fn load(&self) -> TResult<'_, TargetSnapshot>;
    /// What an on-demand run or `explain` needs of the target: the users
    /// [`Wanted`] names or could match, and every department (for names
    /// and memberships). This default reads the whole target.
    fn load_for<'a>(&'a self, _wanted: &'a Wanted) -> TResult<'a, TargetSnapshot> {
        self.load()
    }

    /// Whether [`Target::load_for`] reads less than the whole target.
    fn reads_in_part(&self) -> bool {
        false
    }
    /// Carry out one write ([`dispatch`] to the target's [`Operations`]).
    fn write<'a>(&'a self, w: Write<'a>) -> TResult<'a, Option<TargetId>>;
    /// Carry out what the target deferred to the end of the run (the file
    /// target's document, the SCIM target's group memberships, one request
    /// per group) and say how each went.
    fn flush(&self) -> TResult<'_, Vec<Deferred>>;
    /// The fields a user just created (`id`) was seen not to keep as sent
    /// (the create's answer showed them otherwise), each with what it showed
    /// instead; asked once per create.
    fn not_kept_at_create(&self, _id: &TargetId) -> Vec<(crate::reconcile::Field, Option<String>)> {
        Vec::new()
    }
    /// Whether a department just created (`id`) was written with the values
    /// sent (not found there already: an "already exists" bound an existing
    /// group, named or nested otherwise); asked once per create. Only then
    /// are its values remembered, so that one the target did not keep is
    /// not sent again.
    fn created_as_sent(&self, _id: &TargetId) -> bool {
        false
    }
    /// Before the removals (user disables and deletes, department
    /// deletes): the users to be deleted with the departments they leave,
    /// and the departments to be deleted. A target that batches memberships
    /// carries those departures in the batch of each group, not one request
    /// per leaver, and answers true: a [`Target::flush`] then sends the
    /// batches before the removals.
    fn leaving(&self, _users: &[(&TargetId, &[TargetId])], _departments: &[&TargetId]) -> bool {
        false
    }
}

/// One write to the target, its departments and parents resolved to
/// target ids: what [`Target::write`] is given.
#[derive(Clone, Copy, Debug)]
pub enum Write<'a> {
    CreateDepartment(DepartmentCreate<'a>),
    UpdateDepartment(DepartmentUpdate<'a>),
    DeleteDepartment(&'a TargetId),
    CreateUser(UserCreate<'a>),
    UpdateUser(UserUpdate<'a>),
    DisableUser(&'a TargetId),
    /// Delete a user, leaving its `departments` first where membership is
    /// kept on the department.
    DeleteUser(UserDelete<'a>),
}

#[derive(Clone, Copy, Debug)]
pub struct DepartmentCreate<'a> {
    pub spec: &'a DeptSpec,
    pub parent: Option<&'a TargetId>,
}

/// `old_parent` / `parent` matter only when `changes` names `parent`.
#[derive(Clone, Copy, Debug)]
pub struct DepartmentUpdate<'a> {
    pub id: &'a TargetId,
    pub spec: &'a DeptSpec,
    pub changes: &'a [Change],
    pub old_parent: Option<&'a TargetId>,
    pub parent: Option<&'a TargetId>,
    /// `spec.leaders` resolved (matters only when `changes` names `leaders`).
    pub leaders: &'a [TargetId],
}

#[derive(Clone, Copy, Debug)]
pub struct UserCreate<'a> {
    pub spec: &'a UserSpec,
    pub departments: &'a [TargetId],
    /// `spec.manager` resolved: its account's target id.
    pub manager: Option<&'a TargetId>,
}

/// Send exactly the changed fields; `departments` matters only when
/// `changes` names `departments`.
#[derive(Clone, Copy, Debug)]
pub struct UserUpdate<'a> {
    pub id: &'a TargetId,
    pub spec: &'a UserSpec,
    pub changes: &'a [Change],
    pub old_departments: &'a [TargetId],
    pub departments: &'a [TargetId],
    /// `spec.manager` resolved (matters only when `changes` names `manager`).
    pub manager: Option<&'a TargetId>,
}

#[derive(Clone, Copy, Debug)]
pub struct UserDelete<'a> {
    pub id: &'a TargetId,
    pub departments: &'a [TargetId],
}

/// The writes of a real target, one method per [`Write`]; its
/// [`Target::write`] is [`dispatch`].
pub(crate) trait Operations: Sync {
    fn create_department<'a>(&'a self, op: DepartmentCreate<'a>) -> TResult<'a, TargetId>;
    fn update_department<'a>(&'a self, op: DepartmentUpdate<'a>) -> TResult<'a, ()>;
    fn delete_department<'a>(&'a self, id: &'a TargetId) -> TResult<'a, ()>;
    fn create_user<'a>(&'a self, op: UserCreate<'a>) -> TResult<'a, TargetId>;
    fn update_user<'a>(&'a self, op: UserUpdate<'a>) -> TResult<'a, ()>;
    fn disable_user<'a>(&'a self, id: &'a TargetId) -> TResult<'a, ()>;
    fn delete_user<'a>(&'a self, op: UserDelete<'a>) -> TResult<'a, ()>;
}

/// Hand one write to its operation: the id of what a create made.
pub(crate) fn dispatch<'a, T: Operations>(target: &'a T, w: Write<'a>) -> TResult<'a, Option<TargetId>> {
    Box::pin(async move {
        Ok(match w {
            Write::CreateDepartment(op) => Some(target.create_department(op).await?),
            Write::UpdateDepartment(op) => target.update_department(op).await.map(|()| None)?,
            Write::DeleteDepartment(id) => target.delete_department(id).await.map(|()| None)?,
            Write::CreateUser(op) => Some(target.create_user(op).await?),
            Write::UpdateUser(op) => target.update_user(op).await.map(|()| None)?,
            Write::DisableUser(id) => target.disable_user(id).await.map(|()| None)?,
            Write::DeleteUser(op) => target.delete_user(op).await.map(|()| None)?,
        })
    })
}

/// One write a target deferred to [`Target::flush`], and how it went: a run
/// item (`op`, e.g. `members`) on the object `target_id`.
#[derive(Debug)]
pub struct Deferred {
    pub kind: crate::model::Kind,
    pub op: crate::reconcile::Verb,
    pub target_id: TargetId,
    /// What was done ("3 added, 1 removed"), or the error.
    pub result: Result<String, TargetError>,
}

pub fn build(config: &TargetConfig, users: &crate::reconcile::UserPolicy) -> Result<Box<dyn Target>, TargetError> {
    Ok(match config {
        TargetConfig::Scim(c) => Box::new(scim::ScimTarget::new(c, users)?),
        TargetConfig::File { path } => Box::new(file::FileTarget::new(path.clone())),
        TargetConfig::Ldap(c) => Box::new(ldap::LdapTarget::new(c, users)),
        TargetConfig::Rest(c) => Box::new(rest::RestTarget::new(c, users)?),
    })
}
