//! The request log: every request a run sent to the target (never headers
//! or bodies).

use super::{Mirror, MirrorError, RunId};

impl Mirror {
    /// Keep a run's target requests, in the order sent.
    pub fn record_requests(&self, run: RunId, requests: &[crate::targets::RequestRecord]) -> Result<(), MirrorError> {
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
    /// How many requests a run logged, and the first `limit` of them.
    pub fn requests_page(&self, run: RunId, limit: usize) -> Result<(u64, Vec<crate::targets::RequestRecord>), MirrorError> {
        self.with(|c| {
            let total: i64 = c.query_row("SELECT count(*) FROM run_requests WHERE run_id = ?1", [run], |r| r.get(0))?;
            let mut st =
                c.prepare("SELECT method, path, status, millis, error FROM run_requests WHERE run_id = ?1 ORDER BY seq LIMIT ?2")?;
            let rows = st.query_map(rusqlite::params![run, limit as i64], request_row)?;
            Ok((total as u64, rows.collect::<Result<Vec<_>, _>>()?))
        })
    }

    pub fn requests(&self, run: RunId, failed_only: bool) -> Result<Vec<crate::targets::RequestRecord>, MirrorError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT method, path, status, millis, error FROM run_requests WHERE run_id = ?1
                 AND (?2 = 0 OR status IS NULL OR status >= 400 OR error IS NOT NULL) ORDER BY seq",
            )?;
            let rows = st.query_map(rusqlite::params![run, failed_only], request_row)?;
            rows.collect::<Result<Vec<_>, _>>()
        })
    }
}

fn request_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<crate::targets::RequestRecord> {
    Ok(crate::targets::RequestRecord {
        method: r.get(0)?,
        path: r.get(1)?,
        status: r.get(2)?,
        millis: r.get::<_, i64>(3)?.try_into().unwrap_or(0),
        error: r.get(4)?,
    })
}
