//! The data dir around sled: the `FORMAT` file checked before anything is
//! touched, and the lock file that keeps a second process out with a message
//! naming the holder's pid.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{Error, FORMAT_VERSION};

/// The lock file's name inside the data dir.
pub const LOCK_FILE: &str = "closeout.lock";
/// The format file's name inside the data dir.
pub const FORMAT_FILE: &str = "FORMAT";
/// The sled database's directory inside the data dir.
pub const SLED_DIR: &str = "sled";
/// What the format file starts with, before the version number.
const FORMAT_PREFIX: &str = "closeout-store ";

/// The data dir, held exclusively while this value lives (an advisory
/// `flock` on the lock file, released by the OS if the process dies).
#[derive(Debug)]
pub struct DirLock {
    /// The open, locked lock file; dropping it releases the lock.
    file: File,
}

/// Reads the `FORMAT` file: `Ok(false)` if there is none (a new data dir),
/// `Ok(true)` if it names this build's version, [`Error::UnknownFormat`]
/// otherwise. Reads only.
pub fn check_format(dir: &Path) -> Result<bool, Error> {
    let path = dir.join(FORMAT_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io(path, e)),
    };
    let found = text.trim();
    let version = found.strip_prefix(FORMAT_PREFIX).unwrap_or(found);
    if version == FORMAT_VERSION.to_string() {
        Ok(true)
    } else {
        Err(Error::UnknownFormat {
            dir: dir.to_path_buf(),
            found: version.chars().take(40).collect(),
            known: FORMAT_VERSION,
        })
    }
}

/// Creates the data dir (and missing parents) with mode 0700 whatever the
/// umask: the log holds every user's name and UPN. An existing dir is left
/// as the operator made it.
pub fn create_private(dir: &Path) -> std::io::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Opens (creating if needed) a file of the data dir readable by its owner
/// only, whatever the umask.
fn open_private(path: &Path, options: &mut OpenOptions) -> std::io::Result<File> {
    let file = options.mode(0o600).open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

/// Writes the `FORMAT` file of a new data dir (write, fsync, rename, fsync
/// the dir), so that it is either absent or complete after a crash.
pub fn write_format(dir: &Path) -> Result<(), Error> {
    let tmp = dir.join(format!("{FORMAT_FILE}.tmp"));
    let path = dir.join(FORMAT_FILE);
    let write = || -> std::io::Result<()> {
        let mut f = open_private(
            &tmp,
            OpenOptions::new().write(true).create(true).truncate(true),
        )?;
        writeln!(f, "{FORMAT_PREFIX}{FORMAT_VERSION}")?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(|e| Error::io(path.clone(), e))
}

/// [`lock`] for a reader of a private copy. Where the lock file cannot be
/// written (a read-only file system, or a reader who may not write the
/// data dir), a shared lock on it opened for reading keeps a running daemon
/// out the same way; with no lock file at all, no daemon ever ran there.
pub fn lock_for_reading(dir: &Path) -> Result<Option<DirLock>, Error> {
    match lock(dir) {
        Ok(l) => Ok(Some(l)),
        Err(Error::Io { source, .. })
            if matches!(
                source.kind(),
                std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied
            ) =>
        {
            let path = dir.join(LOCK_FILE);
            let file = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(Error::io(path, e)),
            };
            match file.try_lock_shared() {
                Ok(()) => Ok(Some(DirLock { file })),
                Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked {
                    dir: dir.to_path_buf(),
                    pid: "unknown".into(),
                }),
                Err(std::fs::TryLockError::Error(e)) => Err(Error::io(path, e)),
            }
        }
        Err(e) => Err(e),
    }
}

/// Takes the data dir's lock, or says which process holds it. The pid is
/// written by [`DirLock::record_pid`] once opening has succeeded.
pub fn lock(dir: &Path) -> Result<DirLock, Error> {
    let path: PathBuf = dir.join(LOCK_FILE);
    let mut file = open_private(
        &path,
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false),
    )
    .map_err(|e| Error::io(path.clone(), e))?;
    let mine = std::process::id().to_string();
    let mut tries = 0;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(DirLock { file }),
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.seek(SeekFrom::Start(0));
                let pid: String = match file.read_to_string(&mut text) {
                    Ok(_) if !text.trim().is_empty() => text.trim().chars().take(20).collect(),
                    _ => "unknown".to_string(),
                };
                // Held by this very process: a lock this process released a
                // moment ago can stay held while a child it is spawning has
                // not yet exec'd (the child holds a copy of the descriptor
                // until then). That lasts milliseconds: wait it out.
                if pid == mine && tries < SELF_LOCK_TRIES {
                    tries += 1;
                    std::thread::sleep(SELF_LOCK_PAUSE);
                    continue;
                }
                return Err(Error::Locked {
                    dir: dir.to_path_buf(),
                    pid,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(path, e)),
        }
    }
}

/// How often [`lock`] retries a lock held by its own process (see there).
pub const SELF_LOCK_TRIES: u32 = 100;
/// The pause between those tries (2 s in all).
pub const SELF_LOCK_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);

impl DirLock {
    /// Writes this process's pid into the held lock file (for the message a
    /// second process gets). Called once opening has succeeded, so that a
    /// refused open leaves the file as it was.
    pub fn record_pid(&mut self, path: &Path) -> Result<(), Error> {
        let mine = std::process::id().to_string();
        let f = &mut self.file;
        let mut current = String::new();
        let _ = f
            .seek(SeekFrom::Start(0))
            .and_then(|_| f.read_to_string(&mut current));
        if current.trim() == mine {
            return Ok(());
        }
        let write = |f: &mut File| -> std::io::Result<()> {
            f.set_len(0)?;
            f.seek(SeekFrom::Start(0))?;
            writeln!(f, "{mine}")?;
            f.sync_all()
        };
        write(f).map_err(|e| Error::io(path.join(LOCK_FILE), e))
    }
}
