//! Logging: tracing-subscriber to stderr, filter from `RUST_LOG` (default
//! `info`). Under systemd (`JOURNAL_STREAM` set) the journal adds timestamps,
//! so we leave them out.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false);
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().init();
    } else {
        builder.init();
    }
}
