//! Keeps sled's own recovery from destroying evidence.
//!
//! sled, when it opens a database, replays its log from its last snapshot
//! and takes the first message it cannot read for the end of the log: it
//! zeroes everything after it so that new writes start there. After a crash
//! that is right (a torn, never acknowledged tail); after a flipped byte in
//! the middle, or a file swapped in from elsewhere, it erases acknowledged
//! history, and it does so on the first open, whoever opens.
//!
//! So nothing opens a data dir's sled files on an assumption:
//! - readers (`verify`, the audit exports) open a private copy
//!   ([`private_copy`]) and leave the data dir's bytes as they were;
//! - the writer opens the files themselves only after a clean stop left
//!   them exactly as it recorded them (the [`Mark`] in `STORE_STATE`: the
//!   head, and each file's length and modification time). Otherwise it
//!   first opens a copy inside the data dir ([`dry_open`]) and goes on only
//!   if sled reads it whole and its head is not behind (nor beside) the
//!   head recorded at the last open or stop; else it refuses, changing
//!   nothing;
//! - a data dir whose mark exists but whose sled directory is gone was
//!   initialised once: it is refused, not silently started empty.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::layout::Head;
use super::reader;
use super::Error;

/// The mark's file name inside the data dir.
pub const STATE_FILE: &str = "STORE_STATE";
/// The dry open's copy inside the data dir (removed after it).
const CHECK_DIR: &str = ".open-check";
/// What the mark file starts with.
const MAGIC: &str = "closeout-store-state 1";

/// A file of sled's directory as a clean stop left it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileStat {
    /// Its path relative to sled's directory.
    pub name: String,
    /// Its length in bytes.
    pub len: u64,
    /// Its modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
}

/// What the store last recorded of its log, outside sled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mark {
    /// Whether the writer stopped cleanly (and `files` says how it left them).
    pub clean: bool,
    /// The head when it was written: at an open, or at a clean stop.
    pub head: Head,
    /// sled's files after a clean stop (empty otherwise).
    pub files: Vec<FileStat>,
}

/// Reads the mark: `None` when there is none (a new data dir, or one
/// written by an earlier version).
pub fn read(dir: &Path) -> Result<Option<Mark>, Error> {
    let path = dir.join(STATE_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    parse(&text).map(Some).ok_or_else(|| {
        Error::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "not a store state written by closeout",
            ),
        )
    })
}

fn parse(text: &str) -> Option<Mark> {
    let mut lines = text.lines();
    if lines.next()? != MAGIC {
        return None;
    }
    let clean = match lines.next()?.strip_prefix("clean ")? {
        "true" => true,
        "false" => false,
        _ => return None,
    };
    let hex = lines.next()?.strip_prefix("head ")?;
    let head = Head::from_bytes(&unhex(hex)?)?;
    let mut files = Vec::new();
    for line in lines {
        let mut parts = line.strip_prefix("file ")?.splitn(3, ' ');
        let len = parts.next()?.parse().ok()?;
        let mtime_ns = parts.next()?.parse().ok()?;
        let name = parts.next()?.to_string();
        files.push(FileStat {
            name,
            len,
            mtime_ns,
        });
    }
    Some(Mark { clean, head, files })
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Writes the mark durably (write, fsync, rename, fsync the dir).
pub fn write(dir: &Path, mark: &Mark) -> Result<(), Error> {
    let path = dir.join(STATE_FILE);
    let tmp = dir.join(format!("{STATE_FILE}.tmp"));
    let text = render(mark);
    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(|e| Error::io(path.clone(), e))
}

/// The mark's text.
fn render(mark: &Mark) -> String {
    let mut text = format!("{MAGIC}\nclean {}\nhead ", mark.clean);
    for b in mark.head.to_bytes() {
        text.push_str(&format!("{b:02x}"));
    }
    text.push('\n');
    for f in &mark.files {
        text.push_str(&format!("file {} {} {}\n", f.len, f.mtime_ns, f.name));
    }
    text
}

/// sled's files (recursively), sorted by name.
pub fn file_stats(sled_dir: &Path) -> std::io::Result<Vec<FileStat>> {
    let mut out = Vec::new();
    walk(sled_dir, &mut |path, meta| {
        let name = path
            .strip_prefix(sled_dir)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned();
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX));
        out.push(FileStat {
            name,
            len: meta.len(),
            mtime_ns,
        });
        Ok(())
    })?;
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Calls `f` for every regular file under `dir`; refuses anything else
/// (a symlink, a device) rather than follow it.
fn walk(
    dir: &Path,
    f: &mut dyn FnMut(&Path, &std::fs::Metadata) -> std::io::Result<()>,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path)?;
        if meta.is_dir() {
            walk(&path, f)?;
        } else if meta.is_file() {
            f(&path, &meta)?;
        } else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{} is neither a file nor a directory: not part of a sled database",
                    path.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Copies sled's directory `from` into `to` (created private, owner only).
pub fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(to)?;
    walk(from, &mut |path, _| {
        let rel = path.strip_prefix(from).unwrap_or(path);
        let target = to.join(rel);
        if let Some(parent) = target.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)?;
        }
        std::fs::copy(path, &target).map(|_| ())
    })
}

/// A private copy of a data dir's sled files, removed when dropped.
#[derive(Debug)]
pub struct SledCopy {
    /// The directory holding the copy.
    root: PathBuf,
}

impl SledCopy {
    /// The copied sled directory.
    pub fn sled_dir(&self) -> PathBuf {
        self.root.join(super::SLED_DIR)
    }
}

impl Drop for SledCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Copies `sled_dir` into a fresh private directory under `parent`.
fn copy_under(parent: &Path, name: &str, sled_dir: &Path) -> Result<SledCopy, Error> {
    let root = parent.join(name);
    let _ = std::fs::remove_dir_all(&root);
    let copy = SledCopy { root };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&copy.root)
        .map_err(|e| Error::io(copy.root.clone(), e))?;
    copy_dir(sled_dir, &copy.sled_dir()).map_err(|e| Error::io(sled_dir.to_path_buf(), e))?;
    Ok(copy)
}

/// A private copy of `sled_dir` in the system's temporary directory, for a
/// reader: whatever sled's recovery does, it does to the copy.
pub fn private_copy(sled_dir: &Path) -> Result<SledCopy, Error> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let name = format!("closeout-read-{}-{nanos}", std::process::id());
    copy_under(&std::env::temp_dir(), &name, sled_dir)
}

/// A reader's open of `data_dir`: its lock (none on a read-only file
/// system), sled opened on a private copy of its files with `cache_bytes`
/// of page cache, and the copy (to keep until the database is dropped).
/// Messages name the data dir's own sled directory.
pub fn open_for_reading(
    data_dir: &Path,
    cache_bytes: Option<u64>,
) -> Result<(Option<super::dir::DirLock>, PathBuf, sled::Db, SledCopy), Error> {
    let lock = super::dir::lock_for_reading(data_dir)?;
    let sled_dir = data_dir.join(super::SLED_DIR);
    if !sled_dir.is_dir() {
        return Err(Error::SledMissing { dir: sled_dir });
    }
    let copy = private_copy(&sled_dir)?;
    let db = super::open_sled(&copy.sled_dir(), cache_bytes).map_err(|source| Error::Sled {
        dir: sled_dir.clone(),
        source,
    })?;
    Ok((lock, sled_dir, db, copy))
}

/// Whether the writer may open `sled_dir` as it is: a clean stop recorded
/// its files exactly as they are now.
pub fn left_clean(mark: Option<&Mark>, sled_dir: &Path) -> bool {
    mark.is_some_and(|m| {
        m.clean && !m.files.is_empty() && file_stats(sled_dir).ok().as_ref() == Some(&m.files)
    })
}

/// Opens a copy of `sled_dir` (inside `data_dir`, on the same file system)
/// as the writer would, and checks what sled's recovery left: the layout,
/// the head against the last record, and the head against `mark`'s (not
/// behind it, and the same record where they name the same seq). Messages
/// name the data dir's own files. The copy is removed afterwards.
pub fn dry_open(data_dir: &Path, sled_dir: &Path, mark: Option<&Mark>) -> Result<(), Error> {
    let copy = copy_under(data_dir, CHECK_DIR, sled_dir)?;
    let db = super::open_sled(&copy.sled_dir(), Some(4 << 20)).map_err(|source| Error::Sled {
        dir: sled_dir.to_path_buf(),
        source,
    })?;
    let tree: sled::Tree = (*db).clone();
    let head = if tree.is_empty() {
        Head::EMPTY
    } else {
        reader::check_open(&tree, data_dir, sled_dir)?
    };
    if let Some(m) = mark {
        check_against(&tree, sled_dir, &head, &m.head, true)?;
    }
    drop(tree);
    drop(db);
    drop(copy);
    Ok(())
}

/// Refuses a log (`tree`, whose head is `head`) that ends before the
/// recorded head, or whose record at the recorded seq is another than the
/// one recorded (another log's database, a rewritten or rolled-back one).
/// A record there that cannot be read at all is refused too when `strict`
/// (the writer); `verify` walks the chain and names it instead.
pub fn check_against(
    tree: &sled::Tree,
    sled_dir: &Path,
    head: &Head,
    recorded: &Head,
    strict: bool,
) -> Result<(), Error> {
    if head.last_seq < recorded.last_seq {
        return Err(Error::HistoryLost {
            dir: sled_dir.to_path_buf(),
            found: head.last_seq,
            recorded: recorded.last_seq,
        });
    }
    if recorded.last_seq == 0 {
        return Ok(());
    }
    let hash = super::blocks::get_record(tree, recorded.last_seq)
        .ok()
        .flatten()
        .and_then(|bytes| reader::decode_at(recorded.last_seq, &bytes).ok())
        .map(|r| r.hash);
    if hash.is_none() && !strict {
        return Ok(());
    }
    if hash != Some(recorded.last_hash) {
        return Err(Error::NotThisLog {
            dir: sled_dir.to_path_buf(),
            seq: recorded.last_seq,
        });
    }
    Ok(())
}

/// The flusher's record of the durable head: the mark file rewritten in
/// place (same length, one `fdatasync`) after each flush that covered
/// appends, before they are acknowledged. Opened on first use, so that it
/// is the file the open's own mark left.
#[derive(Debug)]
pub struct Marker {
    /// The data dir.
    dir: PathBuf,
    /// The open mark file, once used.
    file: Option<File>,
}

impl Marker {
    /// The marker of `dir`'s mark file.
    pub fn new(dir: PathBuf) -> Marker {
        Marker { dir, file: None }
    }

    /// Records `head` as durable and acknowledged (not a clean stop).
    pub fn record(&mut self, head: &Head) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let text = render(&Mark {
            clean: false,
            head: *head,
            files: Vec::new(),
        });
        // The text's length never changes (a fixed-width head, no files):
        // the file is cut to it once, when first opened.
        let file = match &mut self.file {
            Some(f) => f,
            None => {
                let f = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .mode(0o600)
                    .open(self.dir.join(STATE_FILE))?;
                f.set_len(text.len() as u64)?;
                self.file.insert(f)
            }
        };
        file.write_all_at(text.as_bytes(), 0)?;
        file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_reads_back_as_written() {
        let dir = std::env::temp_dir().join(format!("closeout-guard-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mark = Mark {
            clean: true,
            head: Head {
                last_seq: 42,
                last_hash: [7; 32],
                last_at: 9,
            },
            files: vec![FileStat {
                name: "db with space".into(),
                len: 10,
                mtime_ns: -3,
            }],
        };
        write(&dir, &mark).unwrap();
        assert_eq!(read(&dir).unwrap(), Some(mark));
        std::fs::write(dir.join(STATE_FILE), "garbage").unwrap();
        assert!(read(&dir).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
