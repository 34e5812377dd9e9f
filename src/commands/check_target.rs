//! `orgsync check-target`: how orgsync will talk to the target, found without writing.

use super::{ExitCode, Result};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use orgsync::cli::Output;
use orgsync::mirror::Mirror;
use orgsync::reconcile::Field;
use orgsync::reconcile::unkept::Sent;
use orgsync::settings;

pub async fn exec(cfg: &settings::Config, output: Output) -> Result<ExitCode> {
    let target = orgsync::targets::build(&cfg.target, &cfg.policy.users)?;
    let mut rows = target.check().await?;
    // What the runs learnt: groups the target does not keep in their parents.
    let unnested = match Mirror::open_read_only(&cfg.state_dir)? {
        Some(m) => m.unkept()?.iter().filter(|((_, _, f), r)| *f == Field::Parent && r.state != Sent::Sent).count(),
        None => 0,
    };
    if unnested > 0 {
        rows.push(("nesting", unnested_text(unnested)));
    }
    match output {
        Output::Json => {
            let mut m = serde_json::Map::new();
            m.insert("kind".into(), cfg.target.kind().into());
            for (k, v) in &rows {
                match m.get_mut(*k) {
                    Some(serde_json::Value::Array(a)) => a.push(v.clone().into()),
                    Some(other) => *other = serde_json::json!([other.clone(), v]),
                    None => {
                        m.insert((*k).to_owned(), v.clone().into());
                    }
                }
            }
            say!("{}", serde_json::to_string_pretty(&m)?);
        }
        Output::Table => {
            let mut t = Table::new();
            t.load_preset(UTF8_FULL_CONDENSED).set_header(vec!["target", cfg.target.kind()]);
            for (k, v) in rows {
                t.add_row(vec![k.to_owned(), v]);
            }
            say!("{t}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What check-target says of departments the target did not keep nested.
fn unnested_text(n: usize) -> String {
    format!(
        "{n} departments' groups were not kept in their parents' members after a 2xx (the server does not store groups as \
         members): the tree stays flat there, users only, and the parent links are not sent again"
    )
}
