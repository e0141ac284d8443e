//! Reading a config or batch file, bounded: only a regular file is read, and
//! only up to a cap. `/dev/zero`, a FIFO or a file that grows while read
//! would otherwise make the CLI (or the daemon) read forever.

use super::Error;
use std::fs::Metadata;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The largest config file read: 1 MiB (the shipped one is a few KiB).
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The largest batch file read: 16 MiB (a batch of 10,000 tenants is a few
/// MiB).
pub const MAX_BATCH_BYTES: u64 = 16 << 20;

/// The text of the `what` file (`config file`, `batch file`) at `path`.
///
/// Its metadata (symlinks followed) is read first: a FIFO, device, socket or
/// directory is refused without being opened, so a FIFO never blocks. The
/// regular file is then opened non-blocking (should the path have been
/// swapped meanwhile, the descriptor's own type is checked again) and read
/// through a reader that stops one byte past `cap`, so a file that grows
/// while read is refused as well.
pub(super) fn read_capped(path: &Path, what: &str, cap: u64) -> Result<String, Error> {
    let read_error = |source| Error::Read {
        path: path.to_path_buf(),
        source,
    };
    let unusable = |message: String| Error::Unusable {
        path: path.to_path_buf(),
        message,
    };
    let not_regular = |meta: &Metadata| {
        unusable(format!(
            "is {}, not a regular file: a {what} must be a regular file (it was not read)",
            kind(meta)
        ))
    };
    let too_large = || {
        unusable(format!(
            "is larger than {}, the most a {what} may be (it was not read)",
            size(cap)
        ))
    };
    let meta = std::fs::metadata(path).map_err(read_error)?;
    if !meta.is_file() {
        return Err(not_regular(&meta));
    }
    if meta.len() > cap {
        return Err(too_large());
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(path)
        .map_err(read_error)?;
    let meta = file.metadata().map_err(read_error)?;
    if !meta.is_file() {
        return Err(not_regular(&meta));
    }
    let mut bytes = Vec::with_capacity(meta.len().min(cap) as usize);
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > cap {
        return Err(too_large());
    }
    String::from_utf8(bytes).map_err(|_| {
        read_error(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        ))
    })
}

/// What a file that is not a regular file is, as a message says it.
fn kind(meta: &Metadata) -> &'static str {
    let ft = meta.file_type();
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO (named pipe)"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

/// `cap` bytes, in MiB when whole.
fn size(cap: u64) -> String {
    if cap.is_multiple_of(1 << 20) {
        format!("{} MiB", cap >> 20)
    } else {
        format!("{cap} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_devices_directories_fifos_and_large_files_naming_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_capped(Path::new("/dev/zero"), "config file", 1024)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/dev/zero: is a character device") && e.contains("config file"),
            "{e}"
        );
        let e = read_capped(dir.path(), "batch file", 1024)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is a directory"), "{e}");
        let fifo = dir.path().join("fifo");
        nix_mkfifo(&fifo);
        let e = read_capped(&fifo, "batch file", 1024)
            .unwrap_err()
            .to_string();
        assert!(e.contains("FIFO"), "{e}");
        let big = dir.path().join("big.toml");
        std::fs::write(&big, vec![b'#'; 2 << 20]).unwrap();
        let e = read_capped(&big, "config file", MAX_CONFIG_BYTES)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("big.toml") && e.contains("larger than 1 MiB, the most a config file"),
            "{e}"
        );
        let ok = dir.path().join("ok.toml");
        std::fs::write(&ok, "a = 1\n").unwrap();
        assert_eq!(read_capped(&ok, "config file", 6).unwrap(), "a = 1\n");
        assert!(read_capped(&ok, "config file", 5).is_err());
    }

    fn nix_mkfifo(path: &Path) {
        let st = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap();
        assert!(st.success());
    }
}
