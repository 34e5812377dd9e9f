//! Bindings: source id <-> target id per kind, with the hash last pushed,
//! and the grace periods of users waiting to be deleted.

use super::{Mirror, MirrorError};
use crate::model::{Bindings, Kind, SourceId, TargetId};
use chrono::{DateTime, Utc};

/// What a recorded outcome does to the bindings, in the same transaction.
#[derive(Clone, Debug)]
pub enum BindingChange {
    None,
    /// Bind source to target (dropping any other binding of that target).
    Set {
        source_id: SourceId,
        target_id: TargetId,
        hash: Option<String>,
    },
    /// Forget the binding of this source id.
    RemoveSource(SourceId),
    /// Forget whatever is bound to this target id (it was deleted).
    RemoveTarget(TargetId),
    /// This user was disabled for a grace period, now (`disable_then_delete`).
    Disabled(TargetId),
}

impl Mirror {
    pub fn bindings(&self) -> Result<Bindings, MirrorError> {
        self.with(|c| {
            let mut b = Bindings::default();
            let mut st = c.prepare("SELECT target_id, at FROM grace_periods")?;
            for row in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
                let (t, at) = row?;
                if let Ok(at) = DateTime::parse_from_rfc3339(&at) {
                    b.disabled.insert(TargetId(t), at.with_timezone(&Utc));
                }
            }
            let mut st = c.prepare("SELECT target_id FROM tombstones")?;
            for t in st.query_map([], |r| r.get::<_, String>(0))? {
                b.tombstones.insert(TargetId(t?));
            }
            let mut st = c.prepare("SELECT kind, source_id, target_id FROM bindings")?;
            let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?;
            for row in rows {
                let (kind, s, t) = row?;
                let kind = if kind == "department" { Kind::Department } else { Kind::User };
                b.of_mut(kind).insert(SourceId(s), TargetId(t));
            }
            Ok(b)
        })
    }

    /// Forget when these objects left: they are back (or gone from the target).
    pub fn unschedule(&self, ids: &[TargetId]) -> Result<(), MirrorError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.with(|c| {
            let tx = c.transaction()?;
            for t in ids {
                tx.prepare_cached("DELETE FROM grace_periods WHERE target_id = ?1")?.execute([t.as_str()])?;
            }
            tx.commit()
        })
    }

    /// Users waiting out a grace period: how many, and the earliest time one was disabled.
    pub fn grace(&self) -> Result<(u64, Option<String>), MirrorError> {
        self.with(|c| c.query_row("SELECT COUNT(*), MIN(at) FROM grace_periods", [], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?))))
    }

    /// Bindings per kind: (users, departments).
    pub fn binding_counts(&self) -> Result<(u64, u64), MirrorError> {
        self.with(|c| {
            let n = |kind: &str| c.query_row("SELECT COUNT(*) FROM bindings WHERE kind = ?1", [kind], |r| r.get::<_, i64>(0));
            Ok((n("user")? as u64, n("department")? as u64))
        })
    }
}
