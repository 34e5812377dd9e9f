//! Runs and their items: started, recorded item by item (each outcome with
//! its binding change in one transaction), finished, listed and pruned.

use super::{BindingChange, Mirror, MirrorError};
use crate::model::{Kind, SourceId, TargetId};
use crate::reconcile::{Outcome, Verb, unkept};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

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

/// A vocabulary written to SQLite as its text (`as_str` / `FromStr`): an
/// unknown text in the file is an error, never a guess.
macro_rules! sql_text {
    ($($ty:ty),+) => {$(
        impl rusqlite::ToSql for $ty {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(self.as_str().into())
            }
        }
        impl rusqlite::types::FromSql for $ty {
            fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
                let text = v.as_str()?;
                text.parse().map_err(|()| rusqlite::types::FromSqlError::Other(format!("unknown {}: {text:?}", stringify!($ty)).into()))
            }
        }
    )+};
}

sql_text!(Verb, Outcome);

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
    pub fn count(&self, op: Option<Verb>, outcome: Outcome) -> u64 {
        self.counts
            .iter()
            .filter(|(key, _)| {
                let mut parts = key.splitn(3, '.');
                let (_kind, o, out) = (parts.next(), parts.next(), parts.next());
                op.is_none_or(|op| o == Some(op.as_str())) && out == Some(outcome.as_str())
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

/// Which of a run's items to show (`None`: any).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ItemFilter {
    pub kind: Option<Kind>,
    pub op: Option<Verb>,
    pub outcome: Option<Outcome>,
}

/// One recorded operation outcome or plan item of a run.
#[derive(Clone, Debug, Serialize)]
pub struct ItemRecord {
    pub kind: Kind,
    pub op: Verb,
    pub source_id: Option<String>,
    pub target_id: Option<String>,
    pub outcome: Outcome,
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
    pub op: Verb,
    pub source_id: Option<&'a SourceId>,
    pub target_id: Option<&'a TargetId>,
    pub outcome: Outcome,
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

/// A run's items counted as they are committed, so that closing a run
/// does not count them again in SQL (at 100,000 items, a scan of every
/// item's row). Kept for the runs this process started through this mirror
/// or its clones, the only writer of their items; a run it did not start
/// (or one from before a restart) is counted in SQL.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tally(Arc<Mutex<HashMap<RunId, Counts>>>);

/// Items per kind, op and outcome.
type Counts = BTreeMap<(Kind, Verb, Outcome), u64>;

impl Tally {
    fn start(&self, run: RunId) {
        if let Ok(mut t) = self.0.lock() {
            t.insert(run, BTreeMap::new());
        }
    }

    /// Add the items of a committed transaction.
    fn add<'a, 'b: 'a>(&self, run: RunId, items: impl Iterator<Item = &'a ItemRow<'b>>) {
        let Ok(mut t) = self.0.lock() else { return };
        let Some(counts) = t.get_mut(&run) else { return };
        for i in items {
            *counts.entry((i.kind, i.op, i.outcome)).or_default() += 1;
        }
    }

    fn clear(&self) {
        if let Ok(mut t) = self.0.lock() {
            t.clear();
        }
    }

    /// A run's counts as `counts` makes them in SQL (`kind.op.outcome`), if kept.
    fn take(&self, run: RunId) -> Option<BTreeMap<String, u64>> {
        let counts = self.0.lock().ok()?.remove(&run)?;
        Some(
            counts
                .into_iter()
                .map(|((kind, op, outcome), n)| (format!("{}.{}.{}", kind.as_str(), op.as_str(), outcome.as_str()), n))
                .collect(),
        )
    }
}

const INSERT_ITEM: &str = "INSERT INTO run_items (run_id, kind, op, source_id, target_id, outcome, error, at, changes)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

/// One item, with [`INSERT_ITEM`] prepared once per transaction.
fn insert_item(insert: &mut rusqlite::Statement<'_>, run: RunId, i: &ItemRow<'_>, now: &str) -> rusqlite::Result<()> {
    insert
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

pub(super) fn counts(c: &Connection, run: RunId) -> rusqlite::Result<BTreeMap<String, u64>> {
    let mut st = c.prepare("SELECT kind || '.' || op || '.' || outcome, COUNT(*) FROM run_items WHERE run_id = ?1 GROUP BY 1")?;
    let rows = st.query_map([run], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))?;
    rows.collect()
}

impl Mirror {
    /// Mark runs a crash left `running` as failed ("interrupted"). Call with the lock held.
    pub fn mark_interrupted(&self) -> Result<usize, MirrorError> {
        // No count of a run left unfinished is kept on (one closed later is counted in SQL).
        self.tally.clear();
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
        .inspect(|&run| self.tally.start(run))
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
            // Prepared once for the batch (thousands of rows each).
            let mut item = tx.prepare_cached(INSERT_ITEM)?;
            let mut unbind_other = tx.prepare_cached("DELETE FROM bindings WHERE kind = ?1 AND target_id = ?2 AND source_id <> ?3")?;
            let mut bind = tx.prepare_cached(
                "INSERT INTO bindings (kind, source_id, target_id, hash, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (kind, source_id) DO UPDATE SET
                   target_id = excluded.target_id,
                   hash = COALESCE(excluded.hash, bindings.hash),
                   updated_at = excluded.updated_at",
            )?;
            // Most mirrors keep no tombstone: then no binding has one to clear.
            let mut tombstones: bool = tx.query_row("SELECT EXISTS (SELECT 1 FROM tombstones)", [], |r| r.get(0))?;
            for r in batch {
                insert_item(&mut item, run, &r.item, &now)?;
                let kind = r.item.kind.as_str();
                match &r.binding {
                    BindingChange::None => {}
                    BindingChange::Set { source_id, target_id, hash } => {
                        // Bound again (a re-hire): no longer a tombstone.
                        if tombstones {
                            tx.prepare_cached("DELETE FROM tombstones WHERE target_id = ?1")?.execute([target_id.as_str()])?;
                        }
                        let binding = params![kind, source_id.as_str(), target_id.as_str(), hash, now];
                        match bind.execute(binding) {
                            // The target was bound to another source: it moves
                            // here (a target has one source). Only then is the
                            // other binding looked for: most binds are new.
                            Err(e) if e.sqlite_extended_error_code() == Some(rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE) => {
                                unbind_other.execute(params![kind, target_id.as_str(), source_id.as_str()])?;
                                bind.execute(binding)?;
                            }
                            done => drop(done?),
                        }
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
                            tombstones = true;
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
            drop((item, unbind_other, bind));
            tx.commit()?;
            // Counted with the connection still held: no close comes between.
            self.tally.add(run, batch.iter().map(|r| &r.item));
            Ok(())
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
            let mut insert = tx.prepare_cached(INSERT_ITEM)?;
            for item in items {
                insert_item(&mut insert, run, item, &now)?;
            }
            drop(insert);
            tx.commit()?;
            self.tally.add(run, items.iter());
            Ok(())
        })
    }

    /// Close a run: its status, message, and counts per kind, op and outcome.
    pub fn finish_run(&self, run: RunId, status: RunStatus, message: Option<&str>) -> Result<RunRecord, MirrorError> {
        let now = self.now();
        self.with(|c| {
            let counts = match self.tally.take(run) {
                Some(counts) => counts,
                None => counts(c, run)?,
            };
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

    /// When the last succeeded run finished.
    pub fn last_success(&self) -> Result<Option<String>, MirrorError> {
        self.with(|c| {
            c.query_row(&format!("SELECT finished_at FROM runs WHERE status = 'succeeded' AND {WHOLE} ORDER BY id DESC LIMIT 1"), [], |r| {
                r.get(0)
            })
            .optional()
            .map(Option::flatten)
        })
    }

    /// Finished whole runs that failed since the last one that did not.
    pub fn consecutive_failures(&self) -> Result<u64, MirrorError> {
        self.with(|c| {
            c.query_row(
                &format!(
                    "SELECT COUNT(*) FROM runs WHERE status = 'failed' AND {WHOLE}
                     AND id > COALESCE((SELECT MAX(id) FROM runs WHERE status IN ('succeeded', 'partial') AND {WHOLE}), 0)"
                ),
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

    /// Runs newest first, `limit` of them after the first `offset`, and how many there are.
    pub fn runs_page(&self, offset: usize, limit: usize) -> Result<(u64, Vec<RunRecord>), MirrorError> {
        self.with(|c| {
            let total: i64 = c.query_row("SELECT count(*) FROM runs", [], |r| r.get(0))?;
            let mut st = c.prepare(&format!("{RUN_SELECT} ORDER BY id DESC LIMIT ?1 OFFSET ?2"))?;
            let rows = st.query_map([limit as i64, offset as i64], run_row)?.collect::<Result<Vec<_>, _>>()?;
            Ok((total as u64, rows.into_iter().map(|r| with_live_counts(c, r)).collect::<Result<_, _>>()?))
        })
    }

    /// The latest finished run that read the whole source (its objects are
    /// recorded): where the guard's held-back deletions are.
    pub fn last_full_run(&self) -> Result<Option<RunRecord>, MirrorError> {
        self.with(|c| {
            let r = c
                .query_row(
                    &format!("{RUN_SELECT} WHERE finished_at IS NOT NULL AND objects IS NOT NULL ORDER BY id DESC LIMIT 1"),
                    [],
                    run_row,
                )
                .optional()?;
            r.map(|r| with_live_counts(c, r)).transpose()
        })
    }

    /// One run's items that match `filter`, `limit` of them after the
    /// first `offset`, and how many match.
    pub fn items_page(&self, run: RunId, filter: &ItemFilter, offset: usize, limit: usize) -> Result<(u64, Vec<ItemRecord>), MirrorError> {
        let (kind, op, outcome) = (filter.kind.map(Kind::as_str), filter.op.map(Verb::as_str), filter.outcome.map(Outcome::as_str));
        const WHERE: &str = "WHERE run_id = ?1 AND (?2 IS NULL OR kind = ?2) AND (?3 IS NULL OR op = ?3) AND (?4 IS NULL OR outcome = ?4)";
        self.with(|c| {
            let total: i64 =
                c.query_row(&format!("SELECT count(*) FROM run_items {WHERE}"), params![run, kind, op, outcome], |r| r.get(0))?;
            let mut st = c.prepare(&format!("SELECT {ITEM_COLUMNS} FROM run_items {WHERE} ORDER BY id LIMIT ?5 OFFSET ?6"))?;
            let rows = st.query_map(params![run, kind, op, outcome, limit as i64, offset as i64], item_row)?;
            Ok((total as u64, rows.collect::<Result<_, _>>()?))
        })
    }

    pub fn run(&self, id: RunId) -> Result<Option<RunRecord>, MirrorError> {
        self.with(|c| {
            let r = c.query_row(&format!("{RUN_SELECT} WHERE id = ?1"), [id], run_row).optional()?;
            r.map(|r| with_live_counts(c, r)).transpose()
        })
    }

    pub fn items(&self, run: RunId) -> Result<Vec<ItemRecord>, MirrorError> {
        self.with(|c| {
            let mut st = c.prepare(&format!("SELECT {ITEM_COLUMNS} FROM run_items WHERE run_id = ?1 ORDER BY id"))?;
            let rows = st.query_map([run], item_row)?;
            rows.collect()
        })
    }

    /// The last `limit` items of one object (by its source id or its
    /// target id), newest first, each with its run and the run's trigger.
    pub fn object_items(
        &self,
        kind: Kind,
        source_id: Option<&SourceId>,
        target_id: Option<&TargetId>,
        limit: usize,
    ) -> Result<Vec<(RunId, String, ItemRecord)>, MirrorError> {
        self.with(|c| {
            let mut st = c.prepare(&format!(
                "SELECT i.run_id, r.trigger, {} FROM run_items i JOIN runs r ON r.id = i.run_id \
                 WHERE i.kind = ?1 AND (i.source_id = ?2 OR i.target_id = ?3) ORDER BY i.id DESC LIMIT ?4",
                ITEM_COLUMNS.split(", ").map(|c| format!("i.{c}")).collect::<Vec<_>>().join(", ")
            ))?;
            let rows = st
                .query_map(params![kind.as_str(), source_id.map(SourceId::as_str), target_id.map(TargetId::as_str), limit as i64], |r| {
                    Ok((RunId(r.get(0)?), r.get::<_, String>(1)?, item_row_at(r, 2)?))
                })?;
            rows.collect()
        })
    }

    /// User disables and deletes done by on-demand and event runs since
    /// the last full run (for the deletion guard of the next one).
    pub fn removals_since_full_run(&self) -> Result<u64, MirrorError> {
        self.with(|c| {
            c.query_row(
                &format!(
                    "SELECT COUNT(*) FROM run_items i JOIN runs r ON r.id = i.run_id \
                 WHERE i.kind = 'user' AND i.op IN ('disable', 'delete') AND i.outcome = 'ok' \
                 AND r.trigger LIKE '% %' \
                 AND r.id > COALESCE((SELECT MAX(id) FROM runs WHERE status <> 'running' AND {WHOLE}), 0)"
                ),
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
        })
    }

    /// The binding of one object: its target id, and when it was last set.
    pub fn binding(&self, kind: Kind, source_id: &SourceId) -> Result<Option<(TargetId, String)>, MirrorError> {
        self.with(|c| {
            c.query_row(
                "SELECT target_id, updated_at FROM bindings WHERE kind = ?1 AND source_id = ?2",
                params![kind.as_str(), source_id.as_str()],
                |r| Ok((TargetId(r.get(0)?), r.get(1)?)),
            )
            .optional()
        })
    }
}

/// Runs of the whole source (not an on-demand or event run of some
/// objects, whose trigger names them): the sync's health is theirs.
const WHOLE: &str = "trigger NOT LIKE '% %'";

const ITEM_COLUMNS: &str = "kind, op, source_id, target_id, outcome, error, at, changes";

fn item_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ItemRecord> {
    item_row_at(r, 0)
}

/// An item from the columns of [`ITEM_COLUMNS`], starting at column `at`.
fn item_row_at(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<ItemRecord> {
    Ok(ItemRecord {
        kind: if r.get::<_, String>(at)? == "department" { Kind::Department } else { Kind::User },
        op: r.get(at + 1)?,
        source_id: r.get(at + 2)?,
        target_id: r.get(at + 3)?,
        outcome: r.get(at + 4)?,
        error: r.get(at + 5)?,
        at: r.get(at + 6)?,
        changes: r.get::<_, Option<String>>(at + 7)?.and_then(|c| changes_read(&c)),
    })
}

/// An item's changes as every reader takes them, `[{"field", "from", "to"}]`:
/// a create's are kept as `[field, value]` pairs (see `sync::apply`).
fn changes_read(text: &str) -> Option<serde_json::Value> {
    let mut changes: serde_json::Value = serde_json::from_str(text).ok()?;
    for c in changes.as_array_mut().into_iter().flatten() {
        if let Some([field, to]) = c.as_array().map(Vec::as_slice) {
            *c = serde_json::json!({"field": field, "from": null, "to": to});
        }
    }
    Some(changes)
}
