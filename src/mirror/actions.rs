//! What admins did on the web page: approvals and rejections of held-back
//! deletions, and releases of quarantined objects, with who, from where
//! and when. A rejection keeps the digest of the deletions it rejected:
//! while the guard holds back the same ones, their notification is silent.

use super::{Mirror, MirrorError};
use rusqlite::{OptionalExtension, params};

/// One recorded admin action.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AdminAction {
    pub at: String,
    /// `token` (the admin token) or `loopback` (no token configured).
    pub who: String,
    /// The client's address.
    pub peer: String,
    /// `approve`, `reject` or `retry`.
    pub action: String,
    pub detail: String,
}

impl Mirror {
    /// Record an action; `held` is the digest a rejection silences.
    pub fn record_action(&self, a: &AdminAction, held: Option<&str>) -> Result<(), MirrorError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO admin_actions (at, who, peer, action, detail, held) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![a.at, a.who, a.peer, a.action, a.detail, held],
            )
            .map(drop)
        })
    }

    /// The latest actions, newest first.
    pub fn actions(&self, limit: usize) -> Result<Vec<AdminAction>, MirrorError> {
        self.with(|c| {
            let mut st = c.prepare("SELECT at, who, peer, action, detail FROM admin_actions ORDER BY id DESC LIMIT ?1")?;
            let rows = st.query_map([limit as i64], |r| {
                Ok(AdminAction { at: r.get(0)?, who: r.get(1)?, peer: r.get(2)?, action: r.get(3)?, detail: r.get(4)? })
            })?;
            rows.collect()
        })
    }

    /// A rejection in force ends (a full run held nothing back): recorded
    /// as an `expire` action of orgsync's own.
    pub fn end_rejection(&self, at: &str) -> Result<(), MirrorError> {
        if self.rejected()?.is_none() {
            return Ok(());
        }
        let a = AdminAction {
            at: at.to_owned(),
            who: "orgsync".into(),
            peer: String::new(),
            action: "expire".into(),
            detail: "a full run held nothing back: the rejection ended".into(),
        };
        self.record_action(&a, None)
    }

    /// The held-back deletions' digest the latest approval or rejection
    /// was about, when it was a rejection still in force (an approval, or a
    /// full run that held nothing back, ends it).
    pub fn rejected(&self) -> Result<Option<String>, MirrorError> {
        self.with(|c| {
            c.query_row(
                "SELECT action, held FROM admin_actions WHERE action IN ('approve', 'reject', 'expire') ORDER BY id DESC LIMIT 1",
                [],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?)),
            )
            .optional()
        })
        .map(|row| row.and_then(|(action, held)| (action == "reject").then_some(held).flatten()))
    }
}

/// The held-back deletions of a run: how many removals the guard held
/// (what `--allow-deletes` must allow), and their digest (the same for the
/// same removals in any order; what an approval names), `None` when none.
pub fn held_back(items: &[super::ItemRecord]) -> (u64, Option<String>) {
    use crate::reconcile::Outcome;
    let removals: Vec<&super::ItemRecord> = items
        .iter()
        .filter(|i| i.outcome == Outcome::HeldBack && i.error.as_deref().is_some_and(|e| e.starts_with(crate::reconcile::HELD_BY_GUARD)))
        .collect();
    if removals.is_empty() {
        return (0, None);
    }
    let digest = crate::reconcile::removals_digest(removals.iter().map(|i| (i.kind, i.op, i.target_id.as_deref())));
    (removals.len() as u64, Some(format!("{digest:016x}")))
}
