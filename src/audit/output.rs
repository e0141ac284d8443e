//! Where an export goes: stdout, or a file written atomically — into a
//! temporary file beside it, flushed and synced, then moved into place — so
//! that a reader never sees half a report. An existing file is never replaced
//! unless `force` is given: without it the final step is a hard link, which
//! fails if the name exists (no window for a race), then the temporary name
//! is removed.

use super::Error;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// An export's destination.
pub enum Output {
    /// Standard output (buffered); committing it flushes it.
    Stdout(BufWriter<std::io::Stdout>),
    /// A file being written under a temporary name.
    File {
        /// The buffered temporary file.
        file: BufWriter<File>,
        /// Its temporary path (removed if the export is not committed).
        tmp: PathBuf,
        /// The path the export gets when committed (`--output`).
        dest: PathBuf,
        /// Whether an existing file at `dest` may be replaced.
        force: bool,
        /// Set once committed, so that drop leaves the result alone.
        done: bool,
    },
}

impl Output {
    /// Standard output.
    pub fn stdout() -> Output {
        Output::Stdout(BufWriter::with_capacity(1 << 16, std::io::stdout()))
    }

    /// A file written atomically at `dest`. Fails at once if it exists and
    /// `force` is not given.
    pub fn file(dest: &Path, force: bool) -> Result<Output, Error> {
        let shown = dest.display().to_string();
        if !force && dest.exists() {
            return Err(Error::Exists(shown));
        }
        let name = dest
            .file_name()
            .ok_or_else(|| Error::io(&shown, std::io::Error::other("not a file name")))?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".tmp-{}", std::process::id()));
        let tmp = dest.with_file_name(tmp_name);
        // Exports name every user: readable by their owner only, whatever
        // the umask.
        let file = File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|f| {
                f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
                Ok(f)
            })
            .map_err(|e| Error::io(tmp.display().to_string(), e))?;
        Ok(Output::File {
            file: BufWriter::with_capacity(1 << 16, file),
            tmp,
            dest: dest.to_path_buf(),
            force,
            done: false,
        })
    }

    /// The name errors should give.
    pub fn name(&self) -> String {
        match self {
            Output::Stdout(_) => "stdout".into(),
            Output::File { dest, .. } => dest.display().to_string(),
        }
    }

    /// Finishes the export: flushes, and for a file syncs it and moves it into
    /// place.
    pub fn commit(mut self) -> Result<(), Error> {
        let name = self.name();
        match &mut self {
            Output::Stdout(w) => w.flush().map_err(|e| Error::io(name, e)),
            Output::File {
                file,
                tmp,
                dest,
                force,
                done,
            } => {
                file.flush().map_err(|e| Error::io(&name, e))?;
                file.get_ref().sync_all().map_err(|e| Error::io(&name, e))?;
                if *force {
                    std::fs::rename(&*tmp, &*dest).map_err(|e| Error::io(&name, e))?;
                } else {
                    std::fs::hard_link(&*tmp, &*dest).map_err(|e| {
                        if e.kind() == std::io::ErrorKind::AlreadyExists {
                            Error::Exists(name.clone())
                        } else {
                            Error::io(&name, e)
                        }
                    })?;
                    let _ = std::fs::remove_file(&*tmp);
                }
                if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
                    if let Ok(d) = File::open(dir) {
                        let _ = d.sync_all();
                    }
                }
                *done = true;
                Ok(())
            }
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Output::Stdout(w) => w.write(buf),
            Output::File { file, .. } => file.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Output::Stdout(w) => w.write_all(buf),
            Output::File { file, .. } => file.write_all(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Output::Stdout(w) => w.flush(),
            Output::File { file, .. } => file.flush(),
        }
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if let Output::File { tmp, done, .. } = self {
            if !*done {
                let _ = std::fs::remove_file(&*tmp);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_atomically_and_refuses_to_overwrite_without_force() -> Result<(), Error> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tmp", e))?;
        let dest = dir.path().join("report.jsonl");
        let mut out = Output::file(&dest, false)?;
        out.write_all(b"one\n").map_err(|e| Error::io("w", e))?;
        assert!(!dest.exists(), "nothing visible before commit");
        out.commit()?;
        assert_eq!(
            std::fs::read(&dest).map_err(|e| Error::io("r", e))?,
            b"one\n"
        );
        assert!(matches!(Output::file(&dest, false), Err(Error::Exists(_))));
        let mut out = Output::file(&dest, true)?;
        out.write_all(b"two\n").map_err(|e| Error::io("w", e))?;
        out.commit()?;
        assert_eq!(
            std::fs::read(&dest).map_err(|e| Error::io("r", e))?,
            b"two\n"
        );
        // An abandoned export leaves neither the file nor its temporary.
        let other = dir.path().join("other.csv");
        drop(Output::file(&other, false)?);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .map_err(|e| Error::io("d", e))?
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        Ok(())
    }
}
