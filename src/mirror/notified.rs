//! Each notification channel's last announcement: its condition and when,
//! set by compare-and-set so that no announcement is said twice.

use super::{Mirror, MirrorError};
use crate::config::notify::Condition;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

/// The last announcement on a channel: its condition and when.
pub type Last = Option<(Condition, DateTime<Utc>)>;

impl Mirror {
    /// The last notification on a channel: its condition and when.
    pub fn notified(&self, channel: &str) -> Result<Last, MirrorError> {
        let row: Option<(String, String)> = self.with(|c| {
            c.query_row("SELECT condition, at FROM notified WHERE channel = ?1", [channel], |r| Ok((r.get(0)?, r.get(1)?))).optional()
        })?;
        Ok(row.and_then(|(c, at)| {
            let c = Condition::parse(&c)?;
            let at = DateTime::parse_from_rfc3339(&at).ok()?.with_timezone(&Utc);
            Some((c, at))
        }))
    }

    /// Set a channel's last notification to `new` only if it is still
    /// `expected` (a compare-and-set): whether it was set. Announcements
    /// are claimed this way before they are sent.
    pub fn claim_notified(&self, channel: &str, expected: Last, new: Last) -> Result<bool, MirrorError> {
        let stored = |l: Last| l.map(|(c, at)| (c.as_str(), at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)));
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
    pub fn set_notified(&self, channel: &str, last: Last) -> Result<(), MirrorError> {
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
}
