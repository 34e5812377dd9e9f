//! Schema by migrations (rusqlite_migration, tracked in `user_version`).
//! Append new migrations; never edit a released one.

use rusqlite_migration::{M, Migrations};

/// Every migration, in order: a mirror at version N has had the first N.
pub fn migrations() -> Migrations<'static> {
    Migrations::new(all())
}

/// The schema version of this release (`user_version` once migrated).
pub fn latest() -> usize {
    all().len()
}

/// Each migration's SQL, in order (`M::up`).
const UP: &[&str] = &[
    "CREATE TABLE bindings (
            kind TEXT NOT NULL CHECK (kind IN ('user', 'department')),
            source_id TEXT NOT NULL,
            target_id TEXT NOT NULL,
            hash TEXT,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (kind, source_id)
         );
         CREATE UNIQUE INDEX bindings_target ON bindings (kind, target_id);
         CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            trigger TEXT NOT NULL,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'partial', 'failed')),
            counts TEXT,
            message TEXT
         );
         CREATE TABLE run_items (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id INTEGER NOT NULL REFERENCES runs (id),
            kind TEXT NOT NULL,
            op TEXT NOT NULL,
            source_id TEXT,
            target_id TEXT,
            outcome TEXT NOT NULL,
            error TEXT,
            at TEXT NOT NULL
         );
         CREATE INDEX run_items_run ON run_items (run_id);",
    // Object counts seen by each run (source, target, bound), as JSON.
    "ALTER TABLE runs ADD COLUMN objects TEXT;",
    // Values sent per object and field, and what became of them (sent,
    // not_kept, refused): a hash, never the value.
    "CREATE TABLE unkept (
            kind TEXT NOT NULL CHECK (kind IN ('user', 'department')),
            source_id TEXT NOT NULL,
            field TEXT NOT NULL,
            value_hash TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('sent', 'not_kept', 'refused')),
            run_id INTEGER NOT NULL,
            PRIMARY KEY (kind, source_id, field)
         );",
    // What an incremental source keeps between runs (Entra: the users
    // and groups it read, and its delta links).
    "CREATE TABLE source_state (
            source TEXT PRIMARY KEY,
            state BLOB NOT NULL,
            saved_at TEXT NOT NULL
         );",
    // The last notification per channel (its place and kind, never its URL).
    "CREATE TABLE notified (
            channel TEXT PRIMARY KEY,
            condition TEXT NOT NULL,
            at TEXT NOT NULL
         );",
    // What an item changed, attribute by attribute (JSON: [{field, from, to}]).
    "ALTER TABLE run_items ADD COLUMN changes TEXT;",
    // Users disabled for a grace period (`disable_then_delete`), and when.
    "CREATE TABLE grace_periods (target_id TEXT PRIMARY KEY, at TEXT NOT NULL);",
    // Every target request of a run (never headers, bodies or queries).
    "CREATE TABLE run_requests (
            run_id INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            method TEXT NOT NULL,
            path TEXT NOT NULL,
            status INTEGER,
            millis INTEGER NOT NULL,
            error TEXT,
            PRIMARY KEY (run_id, seq)
         );",
    // Objects whose operations keep failing: how often in a row, the
    // last error, when they are tried next, and whether quarantined.
    "CREATE TABLE failures (
            kind TEXT NOT NULL CHECK (kind IN ('user', 'department')),
            key TEXT NOT NULL,
            count INTEGER NOT NULL,
            error TEXT NOT NULL,
            next_at TEXT NOT NULL,
            quarantined INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (kind, key)
         );",
    // Users deleted with a 2xx that the target still lists, inactive
    // (a soft delete): never deleted again; a re-hire binds them anew.
    "CREATE TABLE tombstones (target_id TEXT PRIMARY KEY, at TEXT NOT NULL);",
    // What the target showed when a remembered value was sent: the value
    // counts as not kept only while the target still shows that.
    "ALTER TABLE unkept ADD COLUMN from_hash TEXT;",
    // Users whose manager has no account, said once: the manager's hash.
    "CREATE TABLE said_managers (source_id TEXT PRIMARY KEY, manager_hash TEXT NOT NULL);",
    // What admins did on the web page (approve, reject, retry): who, from
    // where, when. `held` is the digest of the held-back deletions a
    // rejection keeps silent (the latest rejection counts).
    "CREATE TABLE admin_actions (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at TEXT NOT NULL,
            who TEXT NOT NULL,
            peer TEXT NOT NULL,
            action TEXT NOT NULL,
            detail TEXT NOT NULL,
            held TEXT
         );",
];

fn all() -> Vec<M<'static>> {
    UP.iter().map(|sql| M::up(sql)).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn migrations_are_valid() {
        super::migrations().validate().unwrap();
    }
}
