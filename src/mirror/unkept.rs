//! The memory of values sent to the target and what became of them
//! (`crate::reconcile::unkept`).

use super::{Mirror, MirrorError, RunId};
use crate::model::{Kind, SourceId};
use crate::reconcile::{Field, unkept};
use rusqlite::params;

impl Mirror {
    /// What became of the values last sent, per object and field. The
    /// memberships and parents a run sent count only once that run
    /// succeeded: one that crashed, failed or failed in part may not have
    /// written them (a target writes them after the run's updates), or a
    /// department they left may still be there.
    pub fn unkept(&self) -> Result<unkept::Memory, MirrorError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT kind, source_id, field, value_hash, from_hash, state, run_id FROM unkept u
                 WHERE NOT (u.field IN ('departments', 'parent') AND u.state = 'sent'
                   AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = u.run_id AND r.status = 'succeeded'))",
            )?;
            let rows = st.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, i64>(6)?,
                ))
            })?;
            let mut m = unkept::Memory::new();
            for row in rows {
                let (kind, source_id, field, hash, from, state, run) = row?;
                let kind = if kind == "department" { Kind::Department } else { Kind::User };
                // A field or state this version does not know is forgotten.
                if let (Some(field), Some(state)) = (Field::parse(&field), unkept::Sent::parse(&state)) {
                    m.insert((kind, SourceId(source_id), field), unkept::Remembered { hash, from, state, run });
                }
            }
            Ok(m)
        })
    }

    /// Users whose manager has no account, said already: the manager's hash.
    pub fn said_managers(&self) -> Result<std::collections::HashMap<SourceId, String>, MirrorError> {
        self.with(|c| {
            let mut st = c.prepare("SELECT source_id, manager_hash FROM said_managers")?;
            let rows = st.query_map([], |r| Ok((SourceId(r.get(0)?), r.get(1)?)))?;
            rows.collect()
        })
    }

    /// Apply what [`unkept::skip_unkept`] found: values not kept, entries
    /// to forget, the managers said.
    pub fn update_unkept(&self, changes: &unkept::MemoryChanges) -> Result<(), MirrorError> {
        if changes.not_kept.is_empty() && changes.forget.is_empty() && changes.said.is_none() {
            return Ok(());
        }
        self.with(|c| {
            let tx = c.transaction()?;
            if let Some((said, all)) = &changes.said {
                if *all {
                    tx.execute("DELETE FROM said_managers", [])?;
                }
                for (s, hash) in said {
                    tx.prepare_cached("INSERT OR REPLACE INTO said_managers (source_id, manager_hash) VALUES (?1, ?2)")?
                        .execute(params![s.as_str(), hash])?;
                }
            }
            for (kind, s, f) in &changes.not_kept {
                tx.prepare_cached("UPDATE unkept SET state = 'not_kept' WHERE kind = ?1 AND source_id = ?2 AND field = ?3")?
                    .execute(params![kind.as_str(), s.as_str(), f.as_str()])?;
            }
            for (kind, s, f) in &changes.forget {
                tx.prepare_cached("DELETE FROM unkept WHERE kind = ?1 AND source_id = ?2 AND field = ?3")?.execute(params![
                    kind.as_str(),
                    s.as_str(),
                    f.as_str()
                ])?;
            }
            tx.commit()
        })
    }

    /// Forget the memberships and parents run `run` sent: the target's
    /// deferred writes of them failed (some), so they are sent again.
    pub fn forget_sent_links(&self, run: RunId) -> Result<(), MirrorError> {
        self.with(|c| {
            c.execute("DELETE FROM unkept WHERE run_id = ?1 AND field IN ('departments', 'parent') AND state = 'sent'", [run.0]).map(drop)
        })
    }
}
