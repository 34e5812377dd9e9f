//! The `orgsync` binary: parse the CLI, set up logging, call the library,
//! map outcomes to exit codes (0 succeeded, 1 failed, 2 config/usage, 3 partial).

use anyhow::Result;
use clap::Parser;
use orgsync::cli::{Cli, Command};
use orgsync::config::ConfigError;
use orgsync::settings;
use std::process::ExitCode;

/// `println!` that never panics: a closed stdout (`orgsync status | head -1`)
/// ends the output, not the process (a run goes on and is recorded).
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

/// `eprintln!` that never panics, for the same reason.
macro_rules! esay {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}
mod commands;

use commands::{EXIT_CONFIG, EXIT_FAILED};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            esay!("error: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            esay!("error: {}", orgsync::redact::redact(&format!("{e:#}")));
            ExitCode::from(EXIT_FAILED)
        }
    }
}

fn load(cli: &Cli) -> Result<settings::Config, ExitCode> {
    settings::load(&cli.config).map_err(|e: ConfigError| {
        // check-config lists every problem at once, missing input files included.
        let e = match e {
            ConfigError::Invalid { path, mut problems } if matches!(cli.command, Command::CheckConfig) => {
                for p in settings::preflight_tree(&cli.config) {
                    if !problems.iter().any(|q| q.key == p.key) {
                        problems.push(p);
                    }
                }
                ConfigError::Invalid { path, problems }
            }
            e => e,
        };
        esay!("error: {}", orgsync::redact::redact(&e.to_string()));
        ExitCode::from(EXIT_CONFIG)
    })
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let cfg = match load(&cli) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    orgsync::telemetry::init(cfg.daemon.log_format, &cfg.daemon.log_level);
    commands::exec(cli.command, &cli.config, cfg).await
}
