//! The file target's document on disk: read whole, written atomically
//! (streamed to a temporary file, then renamed over the old one).

use crate::model::TargetSnapshot;
use crate::targets::TargetError;
use std::path::Path;

/// The document at `path`; `None`: there is none yet.
pub(super) async fn read(path: &Path) -> Result<Option<TargetSnapshot>, TargetError> {
    let owned = path.to_owned();
    tokio::task::spawn_blocking(move || read_now(&owned))
        .await
        .map_err(|e| TargetError::Unexpected(format!("reading {}: {e}", path.display())))?
}

/// [`read`], on this thread (an operation's first change). Parsed as it
/// is read, a record at a time: the document (45 MB at 100,000 users) is
/// never in memory as text beside the records made from it. A document not
/// of the plain shape, or a record that does not parse, is read again by
/// serde_json's reader, whose answer (and error) stands.
pub(super) fn read_now(path: &Path) -> Result<Option<TargetSnapshot>, TargetError> {
    let io = |source| TargetError::Io { path: path.to_owned(), source };
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(io(source)),
    };
    let mut snap = TargetSnapshot::default();
    let read = crate::json_lists::read::<_, ()>(&mut f, &["departments", "users"], |list, _, el| {
        let unusual = |_| crate::json_lists::Stop::Unusual;
        match list {
            0 => snap.departments.push(el.parse()?.map_err(unusual)?),
            _ => snap.users.push(el.parse()?.map_err(unusual)?),
        }
        Ok(())
    });
    match read {
        // Both lists are required, as serde's own read of the document has them.
        Ok(0b11) => {
            // The lists grew by doubling: up to half of them empty room, held through the run.
            snap.departments.shrink_to_fit();
            snap.users.shrink_to_fit();
            Ok(Some(snap))
        }
        Err(crate::json_lists::Stop::Io(e)) => Err(io(e)),
        _ => {
            drop(snap);
            std::io::Seek::rewind(&mut f).map_err(io)?;
            serde_json::from_reader(std::io::BufReader::with_capacity(1 << 16, f))
                .map(Some)
                .map_err(|e| TargetError::InvalidFile { path: path.to_owned(), message: e.to_string() })
        }
    }
}

/// Write `snapshot` to `path`: the document is never built whole in memory
/// (42 MB at 100,000 users), and a reader never sees half of it.
pub(super) fn write(path: &Path, snapshot: &TargetSnapshot) -> Result<(), TargetError> {
    let io = |source| TargetError::Io { path: path.to_owned(), source };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("json.tmp");
    let file = std::fs::File::create(&tmp).map_err(io)?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    serde_json::to_writer_pretty(&mut w, snapshot).map_err(|e| io(e.into()))?;
    drop(w.into_inner().map_err(|e| io(e.into_error()))?);
    std::fs::rename(&tmp, path).map_err(io)
}
