//! Objects whose operations keep failing (`reconcile::retry` decides):
//! their failures in a row, when they are tried next, and whether they are
//! quarantined.

use super::{Mirror, MirrorError};
use crate::model::Kind;
use crate::reconcile::retry::{Changes, Failure, Failures};
use chrono::DateTime;
use rusqlite::params;

/// A quarantined or backing-off object, for `status` and `/status`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Failing {
    pub kind: Kind,
    /// Its source id (its target id when it has none).
    pub id: String,
    pub failures: u32,
    pub error: String,
    pub next_at: String,
    pub quarantined: bool,
}

fn kind(s: &str) -> Kind {
    if s == Kind::Department.as_str() { Kind::Department } else { Kind::User }
}

impl Mirror {
    /// Every object with failures in a row.
    pub fn failures(&self) -> Result<Failures, MirrorError> {
        Ok(self
            .failing()?
            .into_iter()
            .filter_map(|f| {
                let next_at = DateTime::parse_from_rfc3339(&f.next_at).ok()?.with_timezone(&chrono::Utc);
                Some(((f.kind, f.id), Failure { count: f.failures, error: f.error, next_at, quarantined: f.quarantined }))
            })
            .collect())
    }

    /// The same as rows, quarantined first.
    pub fn failing(&self) -> Result<Vec<Failing>, MirrorError> {
        self.with(|c| {
            let mut st =
                c.prepare("SELECT kind, key, count, error, next_at, quarantined FROM failures ORDER BY quarantined DESC, kind, key")?;
            let rows = st.query_map([], |r| {
                Ok(Failing {
                    kind: kind(&r.get::<_, String>(0)?),
                    id: r.get(1)?,
                    failures: r.get(2)?,
                    error: r.get(3)?,
                    next_at: r.get(4)?,
                    quarantined: r.get::<_, i64>(5)? != 0,
                })
            })?;
            rows.collect()
        })
    }

    /// Keep what a run's outcomes changed.
    pub fn keep_failures(&self, changes: &Changes) -> Result<(), MirrorError> {
        if changes.failed.is_empty() && changes.cleared.is_empty() {
            return Ok(());
        }
        self.with(|c| {
            let tx = c.transaction()?;
            for ((k, id), f) in &changes.failed {
                tx.prepare_cached(
                    "INSERT INTO failures (kind, key, count, error, next_at, quarantined) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (kind, key) DO UPDATE SET count = excluded.count, error = excluded.error,
                       next_at = excluded.next_at, quarantined = excluded.quarantined",
                )?
                .execute(params![
                    k.as_str(),
                    id,
                    f.count,
                    crate::redact::redact(&f.error),
                    f.next_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    i64::from(f.quarantined)
                ])?;
            }
            for (k, id) in &changes.cleared {
                tx.prepare_cached("DELETE FROM failures WHERE kind = ?1 AND key = ?2")?.execute(params![k.as_str(), id])?;
            }
            tx.commit()
        })
    }

    /// Release objects to be tried at the next run: one by its id (source or
    /// target id, any kind), or all. Returns how many were released.
    pub fn release(&self, id: Option<&str>) -> Result<usize, MirrorError> {
        self.with(|c| match id {
            Some(id) => c.execute("DELETE FROM failures WHERE key = ?1", [id]),
            None => c.execute("DELETE FROM failures", []),
        })
    }
}
