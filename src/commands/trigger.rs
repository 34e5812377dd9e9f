//! `orgsync trigger`: ask the running service for a run.

use super::{EXIT_FAILED, ExitCode, Result};
use orgsync::settings;

/// `orgsync trigger`: POST /sync to the running service.
pub async fn exec(cfg: &settings::Config, allow_deletes: u64, only: &[String], url: Option<String>) -> Result<ExitCode> {
    if let Err(e) = orgsync::reconcile::only::Only::parse(only) {
        esay!("error: {e}");
        return Ok(ExitCode::from(super::EXIT_CONFIG));
    }
    let base = url.unwrap_or_else(|| {
        // A wildcard listener is reached over loopback.
        let mut addr = cfg.daemon.listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(if addr.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() });
        }
        format!("http://{addr}")
    });
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)).build()?;
    let mut req = client.post(format!("{}/sync", base.trim_end_matches('/'))).query(&[("allow_deletes", allow_deletes)]);
    if !only.is_empty() {
        req = req.query(&[("only", only.join(","))]);
    }
    if let Some(t) = &cfg.daemon.admin_token {
        req = req.bearer_auth(t.expose());
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            esay!("error: cannot reach orgsync at {base} (is `orgsync run` running? daemon.listen = {}): {e}", cfg.daemon.listen);
            return Ok(ExitCode::from(EXIT_FAILED));
        }
    };
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    if status.is_success() {
        let queued = body.get("queued").and_then(|q| q.as_str()).unwrap_or("?");
        let what = match queued {
            "started" => "a sync run starts now",
            "after_current_run" => "a sync run is in progress; another follows it",
            "merged" => "a follow-up run was already queued; this request joined it",
            _ => "accepted",
        };
        say!("{what} (see `orgsync status`)");
        Ok(ExitCode::SUCCESS)
    } else {
        let msg = body.get("error").and_then(|e| e.as_str()).unwrap_or("");
        esay!("error: orgsync refused the trigger: HTTP {status} {msg}");
        Ok(ExitCode::from(EXIT_FAILED))
    }
}
