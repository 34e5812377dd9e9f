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

/// mimalloc: a run is millions of small strings (ids, names, emails)
/// made, compared and mostly dropped. It packs them without a header
/// each, and with transparent huge pages off (`no_thp`) and freed memory
/// given back after [`PURGE_DELAY_MS`] the peak of an idle run of 100,000
/// users is about 160 MB instead of glibc's 190.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc 3's `mi_option_purge_delay`: its place in `mi_option_e`
/// (libmimalloc-sys names no constant for it; a test pins it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// mimalloc 2's default; 3's (1 s) holds a whole phase's garbage through
/// the run's peak.
const PURGE_DELAY_MS: std::ffi::c_long = 10;

fn main() -> ExitCode {
    // SAFETY: sets one of mimalloc's options, read as it purges.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The option set at start is the purge delay: mimalloc 3's default
    /// for it is 1,000 ms, and the option next to it (`use_numa_nodes`,
    /// which the crate names) is one place further.
    #[test]
    fn the_purge_delay_is_the_option_set() {
        assert_eq!(libmimalloc_sys::mi_option_use_numa_nodes, MI_OPTION_PURGE_DELAY + 1);
        // SAFETY: reads an option.
        let delay = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert!(delay == 1000 || delay == PURGE_DELAY_MS, "mimalloc's option {MI_OPTION_PURGE_DELAY} is {delay}, not the purge delay");
    }
}
