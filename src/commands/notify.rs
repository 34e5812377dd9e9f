//! `orgsync notify test`: one test message on every channel.

use super::{ExitCode, Result};
use orgsync::settings;

pub async fn exec(cfg: &settings::Config) -> Result<ExitCode> {
    if cfg.notify.is_empty() {
        say!("no [[notify]] channel is configured");
        return Ok(ExitCode::SUCCESS);
    }
    let msg = orgsync::notify::Message::test(cfg.source.kind(), &cfg.daemon.instance());
    let mut failed = false;
    for (i, channel) in cfg.notify.iter().enumerate() {
        match orgsync::notify::send(channel, &msg, chrono::Utc::now()).await {
            Ok(()) => say!("notify[{i}] ({}): ok", channel.kind.as_str()),
            Err(e) => {
                failed = true;
                say!("notify[{i}] ({}): failed: {e}", channel.kind.as_str());
            }
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
