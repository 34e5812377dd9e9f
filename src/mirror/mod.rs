//! The SQLite mirror in `state_dir/mirror.db` (WAL): bindings (source id <->
//! target id per kind, with the hash last pushed), runs and run items.
//! Each operation's outcome is committed in its own transaction as soon as it
//! is known, so a crash loses nothing and the next run resumes from the truth.

mod failures;
mod lock;
pub mod schema;

pub use failures::Failing;

pub use lock::StateLock;

use crate::clock::{Clock, SystemClock};
use crate::model::{Bindings, Kind, SourceId, TargetId};
use crate::reconcile::{Field, unkept};
use chrono::DateTime;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub const DB_FILE: &str = "mirror.db";

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("mirror database {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("mirror schema migration failed for {path}: {source}")]
    Migrate {
        path: PathBuf,
        #[source]
        source: rusqlite_migration::Error,
    },
    #[error("cannot create state directory {path}: {source}")]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "another orgsync process holds the lock on {path} (is the service running? then use `orgsync trigger`); \
         only one process may sync a mirror at a time"
    )]
    Locked { path: PathBuf },
    #[error("mirror {path}: the lock is poisoned")]
    Poisoned { path: PathBuf },
    /// The file is not a database any more (truncated, overwritten).
    #[error(
        "mirror database {path} is damaged ({source}). Stop orgsync, move the file aside (keep it for a look: \
         `mv {path} {path}.damaged`), and run again: the next run starts a new mirror and binds the target's \
         objects again by externalId and match keys, without duplicates (run history is lost)",
        path = path.display()
    )]
    Corrupt {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
}

impl MirrorError {
    /// An SQLite error of the mirror at `path`: a damaged file is said so,
    /// with the way out.
    pub fn sqlite(path: &std::path::Path, source: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
        match source.sqlite_error_code() {
            Some(DatabaseCorrupt | NotADatabase) => MirrorError::Corrupt { path: path.to_owned(), source },
            _ => MirrorError::Sqlite { path: path.to_owned(), source },
        }
    }
}

/// A run's status as docs/design.md defines it (`never_synced` is the absence of runs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Succeeded,
    Partial,
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Partial => "partial",
            RunStatus::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "running" => RunStatus::Running,
            "succeeded" => RunStatus::Succeeded,
            "partial" => RunStatus::Partial,
            _ => RunStatus::Failed,
        }
    }
}

/// A run's number in the mirror (1, 2, 3, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct RunId(pub i64);

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl rusqlite::ToSql for RunId {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        self.0.to_sql()
    }
}

impl rusqlite::types::FromSql for RunId {
    fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        i64::column_result(v).map(RunId)
    }
}

/// One recorded run.
#[derive(Clone, Debug, Serialize)]
pub struct RunRecord {
    pub id: RunId,
    pub trigger: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub status: RunStatus,
    /// `"kind.op.outcome" -> count`, e.g. `"user.create.ok": 12`.
    pub counts: BTreeMap<String, u64>,
    pub message: Option<String>,
    /// What the run saw; absent when it failed before planning.
    pub objects: Option<ObjectCounts>,
}

impl RunRecord {
    /// How many items had this op and outcome, users and departments together
    /// (`op` `None`: any op).
    pub fn count(&self, op: Option<&str>, outcome: &str) -> u64 {
        self.counts
            .iter()
            .filter(|(key, _)| {
                let mut parts = key.splitn(3, '.');
                let (_kind, o, out) = (parts.next(), parts.next(), parts.next());
                op.is_none_or(|op| o == Some(op)) && out == Some(outcome)
            })
            .map(|(_, n)| n)
            .sum()
    }
}

/// Objects seen by a run, per kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectCounts {
    pub users: Sides,
    pub departments: Sides,
}

/// `source`: in the fetched snapshot; `target`: listed in the target before
/// applying; `bound`: bindings after the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sides {
    pub source: u64,
    pub target: u64,
    pub bound: u64,
}

/// One recorded operation outcome or plan item of a run.
#[derive(Clone, Debug, Serialize)]
pub struct ItemRecord {
    pub kind: Kind,
    pub op: String,
    pub source_id: Option<String>,
    pub target_id: Option<String>,
    pub outcome: String,
    pub error: Option<String>,
    pub at: String,
    /// What it changed, attribute by attribute: `[{"field", "from", "to"}]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<serde_json::Value>,
}

/// One outcome or plan item of a run, as it is written.
#[derive(Clone, Copy, Debug)]
pub struct ItemRow<'a> {
    pub kind: Kind,
    pub op: &'a str,
    pub source_id: Option<&'a SourceId>,
    pub target_id: Option<&'a TargetId>,
    pub outcome: &'a str,
    /// The error, or for an `ok` outcome a note (e.g. created without a match key).
    pub error: Option<&'a str>,
    /// What it changed, as JSON (`[{"field", "from", "to"}]`).
    pub changes: Option<&'a str>,
}

/// One outcome to record: its item, its binding change, and the values it
/// sent (for the unkept memory).
#[derive(Debug)]
pub struct Recorded<'a> {
    pub item: ItemRow<'a>,
    pub binding: BindingChange,
    pub sent: Vec<unkept::SentValue>,
}

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

pub struct Mirror {
    path: PathBuf,
    conn: Mutex<Connection>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror").field("path", &self.path).finish_non_exhaustive()
    }
}

impl Mirror {
    /// Open (creating and migrating) the mirror for writing.
    pub fn open(state_dir: &Path) -> Result<Self, MirrorError> {
        Self::open_with_clock(state_dir, Arc::new(SystemClock))
    }

    /// [`Mirror::open`] with the clock its timestamps read.
    pub fn open_with_clock(state_dir: &Path, clock: Arc<dyn Clock>) -> Result<Self, MirrorError> {
        lock::private_dir(state_dir)?;
        let path = state_dir.join(DB_FILE);
        drop(lock::private_file(&path)?);
        for side in ["-wal", "-shm"] {
            let mut p = path.clone().into_os_string();
            p.push(side);
            if std::path::Path::new(&p).exists() {
                drop(lock::private_file(std::path::Path::new(&p))?);
            }
        }
        let sql = |source| MirrorError::sqlite(&path, source);
        let mut conn = Connection::open(&path).map_err(sql)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(sql)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(sql)?;
        // Checkpoint the WAL less often (every ~40 MB, not ~4 MB): a run's
        // batches go into the WAL and are folded in once, not page by page.
        conn.pragma_update(None, "wal_autocheckpoint", 10_000).map_err(sql)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(sql)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(sql)?;
        schema::migrations().to_latest(&mut conn).map_err(|source| MirrorError::Migrate { path: path.clone(), source })?;
        Ok(Self { path, conn: Mutex::new(conn), clock })
    }

    /// Tests: let the database grow by no page from now on, as a full disk would.
    #[cfg(test)]
    pub fn fill_the_disk(&self) {
        self.with(|c| {
            let pages: i64 = c.pragma_query_value(None, "page_count", |r| r.get(0))?;
            c.pragma_update(None, "max_page_count", pages)
        })
        .unwrap();
    }

    /// Now, as the mirror stores it.
    fn now(&self) -> String {
        self.clock.now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }

    /// Open an existing mirror read-only (dry runs, `status`); `None` when there is none yet.
    pub fn open_read_only(state_dir: &Path) -> Result<Option<Self>, MirrorError> {
        let path = state_dir.join(DB_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let conn =
            Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|source| MirrorError::sqlite(&path, source))?;
        let version: i64 =
            conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(|source| MirrorError::sqlite(&path, source))?;
        if version == 0 {
            return Ok(None);
        }
        // A mirror an earlier release wrote: migrated first (as `sync` would),
        // so that every command reads it. When another process holds it, that
        // process is this release's service and has migrated it already.
        if usize::try_from(version).is_ok_and(|v| v < schema::latest())
            && let Ok(_lock) = StateLock::acquire(state_dir)
        {
            drop(conn);
            drop(Self::open(state_dir)?);
            tracing::info!(path = %path.display(), from = version, to = schema::latest(), "Migrated a mirror an earlier release wrote");
            return Self::open_read_only(state_dir);
        }
        Ok(Some(Self { path, conn: Mutex::new(conn), clock: Arc::new(SystemClock) }))
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T, MirrorError> {
        let mut conn = self.conn.lock().map_err(|_| MirrorError::Poisoned { path: self.path.clone() })?;
        f(&mut conn).map_err(|source| MirrorError::sqlite(&self.path, source))
    }

    pub fn bindings(&self) -> Result<Bindings, MirrorError> {
        self.with(|c| {
            let mut b = Bindings::default();
            let mut st = c.prepare("SELECT target_id, at FROM grace_periods")?;
            for row in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
                let (t, at) = row?;
                if let Ok(at) = DateTime::parse_from_rfc3339(&at) {
                    b.disabled.insert(TargetId(t), at.with_timezone(&chrono::Utc));
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

    /// Mark runs a crash left `running` as failed ("interrupted"). Call with the lock held.
    pub fn mark_interrupted(&self) -> Result<usize, MirrorError> {
        let now = self.now();
        self.with(|c| {
            c.execute(
                "UPDATE runs SET status = 'failed', finished_at = ?1,
                 message = 'interrupted: the process stopped before the run finished' WHERE status = 'running'",
                [now],
            )
        })
    }

    pub fn start_run(&self, trigger: &str) -> Result<RunId, MirrorError> {
        let now = self.now();
        self.with(|c| {
            c.execute("INSERT INTO runs (trigger, started_at, status) VALUES (?1, ?2, 'running')", params![trigger, now])?;
            Ok(RunId(c.last_insert_rowid()))
        })
    }

    /// Record one outcome (and its binding change) in one transaction.
    pub fn record(&self, run: RunId, item: &ItemRow<'_>, binding: BindingChange) -> Result<(), MirrorError> {
        self.record_batch(run, &[Recorded { item: *item, binding, sent: Vec::new() }])
    }

    /// Record outcomes, their binding changes and the values they sent, in
    /// one transaction.
    pub fn record_batch(&self, run: RunId, batch: &[Recorded<'_>]) -> Result<(), MirrorError> {
        let now = self.now();
        self.with(|c| {
            let tx = c.transaction()?;
            for r in batch {
                insert_item(&tx, run, &r.item, &now)?;
                let kind = r.item.kind.as_str();
                match &r.binding {
                    BindingChange::None => {}
                    BindingChange::Set { source_id, target_id, hash } => {
                        tx.prepare_cached("DELETE FROM bindings WHERE kind = ?1 AND target_id = ?2 AND source_id <> ?3")?
                            .execute(params![kind, target_id.as_str(), source_id.as_str()])?;
                        // Bound again (a re-hire): no longer a tombstone.
                        tx.prepare_cached("DELETE FROM tombstones WHERE target_id = ?1")?.execute([target_id.as_str()])?;
                        tx.prepare_cached(
                            "INSERT INTO bindings (kind, source_id, target_id, hash, updated_at)
                             VALUES (?1, ?2, ?3, ?4, ?5)
                             ON CONFLICT (kind, source_id) DO UPDATE SET
                               target_id = excluded.target_id,
                               hash = COALESCE(excluded.hash, bindings.hash),
                               updated_at = excluded.updated_at",
                        )?
                        .execute(params![kind, source_id.as_str(), target_id.as_str(), hash, now])?;
                    }
                    BindingChange::RemoveSource(s) => {
                        tx.prepare_cached("DELETE FROM bindings WHERE kind = ?1 AND source_id = ?2")?.execute(params![kind, s.as_str()])?;
                    }
                    BindingChange::RemoveTarget(t) => {
                        tx.prepare_cached("DELETE FROM bindings WHERE kind = ?1 AND target_id = ?2")?.execute(params![kind, t.as_str()])?;
                        tx.prepare_cached("DELETE FROM grace_periods WHERE target_id = ?1")?.execute([t.as_str()])?;
                        // Deleted: if the target keeps listing it (inactive), it is a tombstone.
                        if kind == Kind::User.as_str() {
                            tx.prepare_cached("INSERT OR IGNORE INTO tombstones (target_id, at) VALUES (?1, ?2)")?
                                .execute(params![t.as_str(), now])?;
                        }
                    }
                    BindingChange::Disabled(t) => {
                        tx.prepare_cached("INSERT OR IGNORE INTO grace_periods (target_id, at) VALUES (?1, ?2)")?
                            .execute(params![t.as_str(), now])?;
                    }
                }

                if let Some(source_id) = r.item.source_id {
                    for v in &r.sent {
                        tx.prepare_cached(
                            "INSERT INTO unkept (kind, source_id, field, value_hash, from_hash, state, run_id)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                             ON CONFLICT (kind, source_id, field) DO UPDATE SET value_hash = excluded.value_hash,
                               from_hash = excluded.from_hash, state = excluded.state, run_id = excluded.run_id",
                        )?
                        .execute(params![
                            kind,
                            source_id.as_str(),
                            v.field.as_str(),
                            v.hash,
                            v.from,
                            v.state.as_str(),
                            run
                        ])?;
                    }
                }
            }
            tx.commit()
        })
    }

    /// Record many outcomes without binding changes in one transaction
    /// (plan items, operations not attempted after a stop).
    pub fn record_all(&self, run: RunId, items: &[ItemRow<'_>]) -> Result<(), MirrorError> {
        if items.is_empty() {
            return Ok(());
        }
        let now = self.now();
        self.with(|c| {
            let tx = c.transaction()?;
            for item in items {
                insert_item(&tx, run, item, &now)?;
            }
            tx.commit()
        })
    }

    /// Close a run: its status, message, and counts per kind, op and outcome.
    pub fn finish_run(&self, run: RunId, status: RunStatus, message: Option<&str>) -> Result<RunRecord, MirrorError> {
        let now = self.now();
        self.with(|c| {
            let counts = counts(c, run)?;
            let json = serde_json::to_string(&counts).unwrap_or_else(|_| "{}".into());
            c.execute(
                "UPDATE runs SET status = ?2, finished_at = ?3, message = ?4, counts = ?5 WHERE id = ?1",
                params![run, status.as_str(), now, crate::redact::redact_opt(message), json],
            )?;
            Ok(())
        })?;
        self.run(run).and_then(|r| r.ok_or(MirrorError::Sqlite { path: self.path.clone(), source: rusqlite::Error::QueryReturnedNoRows }))
    }

    /// Store what a run saw (before `finish_run`).
    pub fn set_objects(&self, run: RunId, objects: &ObjectCounts) -> Result<(), MirrorError> {
        let json = serde_json::to_string(objects).unwrap_or_else(|_| "{}".into());
        self.with(|c| c.execute("UPDATE runs SET objects = ?2 WHERE id = ?1", params![run, json]).map(drop))
    }

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

    /// Apply what [`unkept::skip_unkept`] found: values not kept, entries to forget.
    pub fn update_unkept(&self, changes: &unkept::MemoryChanges) -> Result<(), MirrorError> {
        if changes.not_kept.is_empty() && changes.forget.is_empty() {
            return Ok(());
        }
        self.with(|c| {
            let tx = c.transaction()?;
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

    /// What the source `kind` kept after its last successful fetch.
    pub fn source_state(&self, kind: &str) -> Result<Option<Vec<u8>>, MirrorError> {
        self.with(|c| c.query_row("SELECT state FROM source_state WHERE source = ?1", [kind], |r| r.get(0)).optional())
    }

    /// Keep (or with `None` drop) what the source `kind` needs next run.
    pub fn save_source_state(&self, kind: &str, state: Option<&[u8]>) -> Result<(), MirrorError> {
        let now = self.now();
        self.with(|c| {
            match state {
                Some(s) => c.execute(
                    "INSERT INTO source_state (source, state, saved_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (source) DO UPDATE SET state = excluded.state, saved_at = excluded.saved_at",
                    params![kind, s, now],
                )?,
                None => c.execute("DELETE FROM source_state WHERE source = ?1", [kind])?,
            };
            Ok(())
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

    /// The last notification on a channel: its condition and when.
    pub fn notified(&self, channel: &str) -> Result<crate::notify::Last, MirrorError> {
        let row: Option<(String, String)> = self.with(|c| {
            c.query_row("SELECT condition, at FROM notified WHERE channel = ?1", [channel], |r| Ok((r.get(0)?, r.get(1)?))).optional()
        })?;
        Ok(row.and_then(|(c, at)| {
            let c = crate::config::notify::Condition::parse(&c)?;
            let at = DateTime::parse_from_rfc3339(&at).ok()?.with_timezone(&chrono::Utc);
            Some((c, at))
        }))
    }

    /// Set a channel's last notification to `new` only if it is still
    /// `expected` (a compare-and-set): whether it was set. Announcements
    /// are claimed this way before they are sent.
    pub fn claim_notified(&self, channel: &str, expected: crate::notify::Last, new: crate::notify::Last) -> Result<bool, MirrorError> {
        let stored = |l: crate::notify::Last| l.map(|(c, at)| (c.as_str(), at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)));
        let (expected, new) = (stored(expected), stored(new));
        if expected == new {
            return Ok(true);
        }
        // One transaction under the connection's lock: this process's
        // announcements and another's are serialised alike.
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let now: Option<(String, String)> = tx
                .query_row("SELECT condition, at FROM notified WHERE channel = ?1", [channel], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            if now.as_ref().map(|(c, at)| (c.as_str(), at.clone())) != expected {
                return Ok(false);
            }
            match &new {
                Some((cond, at)) => tx.execute(
                    "INSERT INTO notified (channel, condition, at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (channel) DO UPDATE SET condition = excluded.condition, at = excluded.at",
                    params![channel, cond, at],
                )?,
                None => tx.execute("DELETE FROM notified WHERE channel = ?1", [channel])?,
            };
            tx.commit()?;
            Ok(true)
        })
    }

    /// Keep (or with `None` forget) the last notification on a channel.
    pub fn set_notified(&self, channel: &str, last: crate::notify::Last) -> Result<(), MirrorError> {
        self.with(|c| {
            match last {
                Some((cond, at)) => c.execute(
                    "INSERT INTO notified (channel, condition, at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (channel) DO UPDATE SET condition = excluded.condition, at = excluded.at",
                    params![channel, cond.as_str(), at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)],
                )?,
                None => c.execute("DELETE FROM notified WHERE channel = ?1", [channel])?,
            };
            Ok(())
        })
    }

    /// Fold the write-ahead log into the database and truncate it (after a
    /// run: the WAL may have grown to ~40 MB during it).
    pub fn checkpoint(&self) -> Result<(), MirrorError> {
        self.with(|c| c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())))
    }

    /// Keep the newest `keep` runs and their items; forget the rest.
    /// Returns how many runs were pruned.
    pub fn prune_runs(&self, keep: u64) -> Result<usize, MirrorError> {
        self.with(|c| {
            let tx = c.transaction()?;
            let cutoff: Option<i64> = tx
                .query_row(
                    "SELECT id FROM runs ORDER BY id DESC LIMIT 1 OFFSET ?1",
                    [i64::try_from(keep.saturating_sub(1)).unwrap_or(i64::MAX)],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(cutoff) = cutoff else { return Ok(0) };
            tx.execute("DELETE FROM run_items WHERE run_id < ?1", [cutoff])?;
            tx.execute("DELETE FROM run_requests WHERE run_id < ?1", [cutoff])?;
            // The last success is kept (without its items): the no-success
            // alert measures from it, also after a restart.
            let n =
                tx.execute("DELETE FROM runs WHERE id < ?1 AND id IS NOT (SELECT MAX(id) FROM runs WHERE status = 'succeeded')", [cutoff])?;
            tx.commit()?;
            Ok(n)
        })
    }

    /// Bindings per kind: (users, departments).
    pub fn binding_counts(&self) -> Result<(u64, u64), MirrorError> {
        self.with(|c| {
            let n = |kind: &str| c.query_row("SELECT COUNT(*) FROM bindings WHERE kind = ?1", [kind], |r| r.get::<_, i64>(0));
            Ok((n("user")? as u64, n("department")? as u64))
        })
    }

    /// When the last succeeded run finished.
    pub fn last_success(&self) -> Result<Option<String>, MirrorError> {
        self.with(|c| {
            c.query_row("SELECT finished_at FROM runs WHERE status = 'succeeded' ORDER BY id DESC LIMIT 1", [], |r| r.get(0))
                .optional()
                .map(Option::flatten)
        })
    }

    /// Finished runs that failed since the last one that did not.
    pub fn consecutive_failures(&self) -> Result<u64, MirrorError> {
        self.with(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM runs WHERE status = 'failed'
                 AND id > COALESCE((SELECT MAX(id) FROM runs WHERE status IN ('succeeded', 'partial')), 0)",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
        })
    }

    pub fn runs(&self, limit: usize) -> Result<Vec<RunRecord>, MirrorError> {
        self.with(|c| {
            let mut st = c.prepare(&format!("{RUN_SELECT} ORDER BY id DESC LIMIT ?1"))?;
            let rows = st.query_map([limit as i64], run_row)?.collect::<Result<Vec<_>, _>>()?;
            rows.into_iter().map(|r| with_live_counts(c, r)).collect()
        })
    }

    pub fn run(&self, id: RunId) -> Result<Option<RunRecord>, MirrorError> {
        self.with(|c| {
            let r = c.query_row(&format!("{RUN_SELECT} WHERE id = ?1"), [id], run_row).optional()?;
            r.map(|r| with_live_counts(c, r)).transpose()
        })
    }

    /// Keep a run's target requests, in the order sent.
    pub fn record_requests(&self, run: RunId, requests: &[crate::target::RequestRecord]) -> Result<(), MirrorError> {
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let last: i64 = tx.query_row("SELECT COALESCE(MAX(seq), 0) FROM run_requests WHERE run_id = ?1", [run], |r| r.get(0))?;
                let mut st = tx.prepare_cached(
                    "INSERT INTO run_requests (run_id, seq, method, path, status, millis, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?;
                for (seq, r) in (last + 1..).zip(requests) {
                    st.execute(rusqlite::params![
                        run,
                        seq,
                        r.method,
                        r.path,
                        r.status,
                        i64::try_from(r.millis).unwrap_or(i64::MAX),
                        r.error
                    ])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// A run's target requests (only the failed ones: no answer, or 4xx/5xx).
    pub fn requests(&self, run: RunId, failed_only: bool) -> Result<Vec<crate::target::RequestRecord>, MirrorError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT method, path, status, millis, error FROM run_requests WHERE run_id = ?1
                 AND (?2 = 0 OR status IS NULL OR status >= 400 OR error IS NOT NULL) ORDER BY seq",
            )?;
            let rows = st.query_map(rusqlite::params![run, failed_only], |r| {
                Ok(crate::target::RequestRecord {
                    method: r.get(0)?,
                    path: r.get(1)?,
                    status: r.get(2)?,
                    millis: r.get::<_, i64>(3)?.try_into().unwrap_or(0),
                    error: r.get(4)?,
                })
            })?;
            rows.collect::<Result<Vec<_>, _>>()
        })
    }

    pub fn items(&self, run: RunId) -> Result<Vec<ItemRecord>, MirrorError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT kind, op, source_id, target_id, outcome, error, at, changes FROM run_items WHERE run_id = ?1 ORDER BY id",
            )?;
            let rows = st.query_map([run], |r| {
                Ok(ItemRecord {
                    kind: if r.get::<_, String>(0)? == "department" { Kind::Department } else { Kind::User },
                    op: r.get(1)?,
                    source_id: r.get(2)?,
                    target_id: r.get(3)?,
                    outcome: r.get(4)?,
                    error: r.get(5)?,
                    at: r.get(6)?,
                    changes: r.get::<_, Option<String>>(7)?.and_then(|c| serde_json::from_str(&c).ok()),
                })
            })?;
            rows.collect()
        })
    }
}

fn insert_item(tx: &rusqlite::Transaction<'_>, run: RunId, i: &ItemRow<'_>, now: &str) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO run_items (run_id, kind, op, source_id, target_id, outcome, error, at, changes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        run,
        i.kind.as_str(),
        i.op,
        i.source_id.map(SourceId::as_str),
        i.target_id.map(TargetId::as_str),
        i.outcome,
        crate::redact::redact_opt(i.error),
        now,
        crate::redact::redact_opt(i.changes)
    ])
    .map(drop)
}

const RUN_SELECT: &str = "SELECT id, trigger, started_at, finished_at, status, counts, message, objects FROM runs";

fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRecord> {
    let counts: Option<String> = r.get(5)?;
    Ok(RunRecord {
        id: r.get(0)?,
        trigger: r.get(1)?,
        started_at: r.get(2)?,
        finished_at: r.get(3)?,
        status: RunStatus::parse(&r.get::<_, String>(4)?),
        counts: counts.and_then(|c| serde_json::from_str(&c).ok()).unwrap_or_default(),
        message: r.get(6)?,
        objects: r.get::<_, Option<String>>(7)?.and_then(|o| serde_json::from_str(&o).ok()),
    })
}

/// Runs that never finished (crashed) have no stored counts: count their items.
fn with_live_counts(c: &Connection, mut r: RunRecord) -> rusqlite::Result<RunRecord> {
    if r.counts.is_empty() {
        r.counts = counts(c, r.id)?;
    }
    Ok(r)
}

fn counts(c: &Connection, run: RunId) -> rusqlite::Result<BTreeMap<String, u64>> {
    let mut st = c.prepare("SELECT kind || '.' || op || '.' || outcome, COUNT(*) FROM run_items WHERE run_id = ?1 GROUP BY 1")?;
    let rows = st.query_map([run], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))?;
    rows.collect()
}

#[cfg(test)]
mod tests;
