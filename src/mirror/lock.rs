//! An exclusive lock on the state directory (`state_dir/orgsync.lock`), held
//! for as long as the process may write the mirror. The OS drops it when the
//! process dies, so a crash never leaves a stale lock.

use super::MirrorError;
use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The state directory, created 0700 and made 0700 whatever the umask:
/// the mirror holds attribute changes (`runs show --changes`).
pub(super) fn private_dir(state_dir: &Path) -> Result<(), MirrorError> {
    let fail = |source| MirrorError::StateDir { path: state_dir.to_owned(), source };
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(state_dir).map_err(fail)?;
    restrict(state_dir, 0o700).map_err(fail)
}

/// A state file, created 0600 (or made 0600) before anything is written to
/// it. SQLite creates the `-wal` and `-shm` files with the database's mode.
pub(super) fn private_file(path: &Path) -> Result<File, MirrorError> {
    let fail = |source| MirrorError::StateDir { path: path.to_owned(), source };
    let file = OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(path).map_err(fail)?;
    restrict(path, 0o600).map_err(fail)?;
    Ok(file)
}

/// Take away group and other bits (a file the admin made wider, or one an
/// older release left 0644).
fn restrict(path: &Path, mode: u32) -> std::io::Result<()> {
    let now = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if now & !mode != 0 { std::fs::set_permissions(path, std::fs::Permissions::from_mode(now & mode)) } else { Ok(()) }
}

#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

impl StateLock {
    pub fn acquire(state_dir: &Path) -> Result<Self, MirrorError> {
        private_dir(state_dir)?;
        let path = state_dir.join("orgsync.lock");
        let file = private_file(&path)?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(TryLockError::WouldBlock) => Err(MirrorError::Locked { path: state_dir.to_owned() }),
            Err(TryLockError::Error(source)) => Err(MirrorError::StateDir { path, source }),
        }
    }
}
