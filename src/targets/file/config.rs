//! `[target]` with `kind = "file"`: one key, `path`.

use crate::config::reader::{Problems, Reader};
use crate::targets::TargetConfig;

/// `path`, the JSON document written after each run (required).
pub fn parse(t: &mut Reader<'_>, errs: &mut Problems) -> Option<TargetConfig> {
    t.path("path", errs).map(|path| TargetConfig::File { path }).or_else(|| {
        t.problem(errs, "path", "is required for target kind \"file\"");
        None
    })
}
