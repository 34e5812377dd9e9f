//! An exclusive lock on the state directory (`state_dir/orgsync.lock`), held
//! for as long as the process may write the mirror. The OS drops it when the
//! process dies, so a crash never leaves a stale lock.

use super::MirrorError;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

impl StateLock {
    pub fn acquire(state_dir: &Path) -> Result<Self, MirrorError> {
        std::fs::create_dir_all(state_dir).map_err(|source| MirrorError::StateDir { path: state_dir.to_owned(), source })?;
        let path = state_dir.join("orgsync.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| MirrorError::StateDir { path: path.clone(), source })?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(TryLockError::WouldBlock) => Err(MirrorError::Locked { path: state_dir.to_owned() }),
            Err(TryLockError::Error(source)) => Err(MirrorError::StateDir { path, source }),
        }
    }
}
