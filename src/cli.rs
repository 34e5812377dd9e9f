//! The command line (clap). Exit codes: 0 succeeded, 1 failed, 2 invalid
//! config or usage, 3 partial (including held-back deletions), 4 no such
//! object (`explain`).

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "orgsync", version, about = "Keep a target system's users and departments in step with one identity source")]
pub struct Cli {
    /// The config file.
    #[arg(long, global = true, env = "ORGSYNC_CONFIG", default_value = crate::config::DEFAULT_PATH)]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// A readable table.
    #[default]
    Table,
    /// JSON, for machines.
    Json,
}

/// What `orgsync explain` explains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExplainKind {
    User,
    Department,
}

impl ExplainKind {
    pub fn kind(self) -> crate::model::Kind {
        match self {
            ExplainKind::User => crate::model::Kind::User,
            ExplainKind::Department => crate::model::Kind::Department,
        }
    }
}

/// How `orgsync plan` prints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum PlanOutput {
    #[default]
    Table,
    Json,
    /// One line per difference: kind,id,current,proposed,reason,detail.
    Csv,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The service: run on the configured schedule and serve /metrics,
    /// /healthz, /readyz, /status and POST /sync until SIGTERM.
    Run,
    /// Ask the running service for a sync now (POST /sync on daemon.listen).
    Trigger {
        /// Let up to N deletes/disables held back by the deletion guard through, once.
        #[arg(long, value_name = "N", default_value_t = 0)]
        allow_deletes: u64,
        /// On demand: only this object, `user:<source id>` or
        /// `department:<source id>` (repeatable), as `orgsync sync --only`.
        #[arg(long, value_name = "KIND:ID")]
        only: Vec<String>,
        /// The service's base URL, when not derived from daemon.listen.
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
    /// Run one sync now.
    ///
    /// Exit codes: 0 succeeded, 1 failed (source or target unreachable, nothing
    /// applied), 2 invalid config or usage, 3 partial (some items failed, or
    /// the deletion guard held deletions back). Under the running service,
    /// use `orgsync trigger` instead (the service holds the mirror's lock).
    Sync {
        /// Print the plan and change nothing (not even the mirror).
        #[arg(long)]
        dry_run: bool,
        /// Let up to N deletes/disables held back by the deletion guard through, once.
        #[arg(long, value_name = "N", default_value_t = 0)]
        allow_deletes: u64,
        /// On demand: only this object, `user:<source id>` or
        /// `department:<source id>` (repeatable), with the departments a user
        /// needs; the same policies, scope and guard. The run's trigger is
        /// `on_demand` with the objects named.
        #[arg(long, value_name = "KIND:ID", conflicts_with = "dry_run")]
        only: Vec<String>,
        /// How to print: a table for people, or JSON for machines.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Validate the config: exit 0 when valid, 2 (listing every problem) when not.
    CheckConfig,
    /// Run notifications (`[[notify]]`).
    #[command(subcommand)]
    Notify(NotifyCommand),
    /// Connect to the target, read what it supports (SCIM: its service
    /// provider config, resource types and schemas) and print how orgsync
    /// will talk to it. Writes nothing. Exit 0 when reachable, 1 when not.
    CheckTarget {
        /// How to print: a table for people, or JSON for machines.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Show the last runs.
    Status {
        /// How to print: a table for people, or JSON for machines.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
        /// How many runs to show (at least 1).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..))]
        limit: u16,
    },
    /// Release objects whose operations kept failing (quarantined, or
    /// waiting out their backoff): they are tried again at the next run.
    Retry {
        /// The object's source id (or target id), as `orgsync status` lists it.
        #[arg(conflicts_with = "all")]
        id: Option<String>,
        /// Every failing object.
        #[arg(long)]
        all: bool,
    },
    /// Plan the config given with --config (the proposed one) beside the
    /// current one, against the current config's mirror and target, and
    /// print what only one of them would write, with the part of the config
    /// that explains it and the deletion guard's verdict under each.
    /// Writes nothing; runs beside the service. Exit 0 (differences or not),
    /// 2 when a config is invalid.
    Plan {
        /// The current config (default: the default config path).
        #[arg(long, value_name = "PATH", default_value = crate::config::DEFAULT_PATH)]
        against: PathBuf,
        /// How to print: a table for people, JSON or CSV for machines.
        #[arg(long, value_enum, default_value_t)]
        output: PlanOutput,
    },
    /// Explain one user (by source id, username or email) or department
    /// (by source id or name): the source's record, read by id where the
    /// vendor can, the mapped record, the scope's decision, the binding
    /// and the match keys tried, what the next run does to it and why, the
    /// difference with the target field by field, what the mirror
    /// remembers of it, and its last runs' items. Writes nothing. Exit 0;
    /// 4 when neither the source nor the mirror knows the object.
    Explain {
        kind: ExplainKind,
        /// A source id; for a user also a username or email, for a
        /// department its name.
        key: String,
        /// How to print: readable sections, or JSON for machines.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Inspect recorded runs.
    Runs {
        #[command(subcommand)]
        command: RunsCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Show one run and its items.
    Show {
        /// The run's id, as `orgsync status` lists it.
        id: i64,
        /// How to print: a table for people, or JSON for machines.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
        /// Each item's changes, attribute by attribute (old -> new).
        #[arg(long)]
        changes: bool,
    },
    /// Every target request of one run: method, path, status, time, error
    /// (never headers, bodies or queries).
    Requests {
        /// The run's id, as `orgsync status` lists it.
        id: i64,
        /// Only the requests that failed (no answer, or 4xx/5xx).
        #[arg(long)]
        failed: bool,
        /// How to print: a table for people, or JSON for machines.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Send one test message through each configured channel and report each result.
    Test,
}
