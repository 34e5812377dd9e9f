//! The SQLite mirror in `state_dir/mirror.db` (WAL): bindings (source id <->
//! target id per kind, with the hash last pushed), runs and run items.
//! Each operation's outcome is committed in its own transaction as soon as it
//! is known, so a crash loses nothing and the next run resumes from the truth.

mod actions;
mod bindings;
mod failures;
mod lock;
mod notified;
mod requests;
mod runs;
pub mod schema;
mod source_state;
mod unkept;

pub use actions::{AdminAction, held_back};
pub use bindings::BindingChange;
pub use failures::Failing;
pub use lock::StateLock;
pub use notified::Last;
pub use runs::{ItemFilter, ItemRecord, ItemRow, ObjectCounts, Recorded, RunId, RunRecord, RunStatus, Sides};

use crate::clock::{Clock, SystemClock};
use rusqlite::{Connection, OpenFlags};
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

#[derive(Clone)]
pub struct Mirror {
    path: PathBuf,
    /// Shared by the clones (a run's mirror writer): one connection, one writer at a time.
    conn: Arc<Mutex<Connection>>,
    clock: Arc<dyn Clock>,
    /// The items committed for each run this process started and has not
    /// finished, counted as they are written (see [`runs::Tally`]).
    tally: runs::Tally,
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
        // An 8 MB page cache, not 2 MB: a batch's bindings go into two
        // indexes at random places (ids are random), and with the smaller
        // cache their pages were written out and read back within a batch.
        conn.pragma_update(None, "cache_size", -8_000).map_err(sql)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(sql)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(sql)?;
        schema::migrations().to_latest(&mut conn).map_err(|source| MirrorError::Migrate { path: path.clone(), source })?;
        Ok(Self { path, conn: Arc::new(Mutex::new(conn)), clock, tally: runs::Tally::default() })
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
        // A run writing at the same moment is waited for, not an error.
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(|source| MirrorError::sqlite(&path, source))?;
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
        Ok(Some(Self { path, conn: Arc::new(Mutex::new(conn)), clock: Arc::new(SystemClock), tally: runs::Tally::default() }))
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T, MirrorError> {
        let mut conn = self.conn.lock().map_err(|_| MirrorError::Poisoned { path: self.path.clone() })?;
        f(&mut conn).map_err(|source| MirrorError::sqlite(&self.path, source))
    }

    /// Fold the write-ahead log into the database and truncate it (after a
    /// run: the WAL may have grown to ~40 MB during it).
    pub fn checkpoint(&self) -> Result<(), MirrorError> {
        self.with(|c| c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())))
    }
}

#[cfg(test)]
mod tests;
