//! Source `file`: a JSON document of departments and users (an HR export, a
//! script's output). The format is documented in README and in
//! `config/org.schema.json`. Unknown fields and duplicate ids are errors:
//! a typo must not silently drop a field.

mod api;

pub use api::FormatError;

use super::{IdentitySource, Objects, SourceError};
use crate::model::Snapshot;
use crate::reconcile::only::Only;
use futures::future::BoxFuture;
use std::path::PathBuf;

#[derive(Debug)]
pub struct FileSource {
    path: PathBuf,
    /// `[mapping]`: fields set by expressions over the records.
    mapping: crate::mapping::Mapping,
}

impl FileSource {
    pub fn new(path: PathBuf) -> Self {
        Self { path, mapping: Default::default() }
    }

    /// Fields set by `[mapping]`'s expressions over each record.
    pub fn mapped(mut self, mapping: crate::mapping::Mapping) -> Self {
        self.mapping = mapping;
        self
    }
}

impl IdentitySource for FileSource {
    fn kind(&self) -> &'static str {
        "file"
    }

    fn is_document(&self) -> bool {
        true
    }

    fn fetch(&self) -> BoxFuture<'_, Result<Snapshot, SourceError>> {
        Box::pin(async move { Ok(self.read(None).await?.snapshot) })
    }

    /// The document is read whole (it is one local read), and the records
    /// named are kept as written.
    fn fetch_objects<'a>(&'a self, only: &'a Only) -> BoxFuture<'a, Result<Objects, SourceError>> {
        Box::pin(async move {
            let objects = self.read(Some(only.clone())).await?;
            Ok(Objects { snapshot: super::narrow(objects.snapshot, only), ..objects })
        })
    }
}

impl FileSource {
    /// The document, and the records `only` names as written.
    async fn read(&self, only: Option<Only>) -> Result<Objects, SourceError> {
        // One read is this source's one "request". Parsed off the runtime's
        // thread: the target is read meanwhile.
        let (mapping, path) = (self.mapping.clone(), self.path.clone());
        let r = match tokio::task::spawn_blocking(move || read_now(&path, &mapping, only)).await {
            Ok(r) => r,
            Err(e) => Err(SourceError::Io { path: self.path.clone(), source: std::io::Error::other(e) }),
        };
        crate::telemetry::source_request(r.as_ref().map_or_else(SourceError::metric_label, |_| "ok"));
        r
    }
}

/// [`FileSource::read`], on this thread. A full read parses the document as
/// it reads it (never its whole text beside the records); one for a few
/// objects keeps the text to show their records as written.
fn read_now(path: &std::path::Path, mapping: &crate::mapping::Mapping, only: Option<Only>) -> Result<Objects, SourceError> {
    let io = |source| SourceError::Io { path: path.to_owned(), source };
    let invalid = |source| match source {
        // A read that failed midway is the disk's fault, not the document's.
        api::FormatError::Json(e) if e.is_io() => io(e.into()),
        source => SourceError::Invalid { path: path.to_owned(), source },
    };
    match only {
        None => {
            let file = std::fs::File::open(path).map_err(io)?;
            // A pipe (or any file that cannot be read twice) is read whole:
            // an unusual document is read again from its start.
            let snapshot = if file.metadata().map_err(io)?.is_file() {
                api::parse_reader(file, mapping)
            } else {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut &file, &mut bytes).map_err(io)?;
                api::parse_mapped(&bytes, mapping)
            }
            .map_err(invalid)?;
            Ok(Objects { snapshot, ..Objects::default() })
        }
        Some(only) => {
            let bytes = std::fs::read(path).map_err(io)?;
            let snapshot = api::parse_mapped(&bytes, mapping).map_err(invalid)?;
            Ok(Objects { snapshot, raw: api::records(&bytes, &only), ..Objects::default() })
        }
    }
}

#[cfg(test)]
mod tests;
