//! What an incremental source keeps between fetches (Entra's delta links).

use super::{Mirror, MirrorError};
use rusqlite::{OptionalExtension, params};

impl Mirror {
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
}
