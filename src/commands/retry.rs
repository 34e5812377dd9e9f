//! `orgsync retry ID | --all`: release failing or quarantined objects.

use super::{EXIT_CONFIG, EXIT_FAILED, ExitCode, Result};
use orgsync::mirror::Mirror;
use orgsync::settings;

pub fn exec(cfg: &settings::Config, id: Option<String>, all: bool) -> Result<ExitCode> {
    if id.is_none() && !all {
        esay!("error: name the object (`orgsync retry ID`, its source or target id) or release every one with --all");
        return Ok(ExitCode::from(EXIT_CONFIG));
    }
    let Some(_) = Mirror::open_read_only(&cfg.state_dir)? else {
        say!("nothing to release: no runs recorded yet in {}", cfg.state_dir.display());
        return Ok(ExitCode::SUCCESS);
    };
    // No state lock: the service may hold it; SQLite orders this one
    // small write with the service's own.
    let n = Mirror::open(&cfg.state_dir)?.release(id.as_deref())?;
    match (&id, n) {
        (Some(id), 0) => {
            esay!("error: no failing object {id:?} (see `orgsync status`)");
            return Ok(ExitCode::from(EXIT_FAILED));
        }
        _ => say!("released {n} object(s): tried again at the next run"),
    }
    Ok(ExitCode::SUCCESS)
}
