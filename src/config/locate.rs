//! Turns a byte span in a TOML file into what an operator needs to fix it: the
//! line number and the dotted key (`limits.max_concurrent_sagas`,
//! `tenant[2].keep`), and anchors relative paths at the file's directory.

use super::Error;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A `toml` parse or deserialization error, located.
pub(super) fn toml_error(file: &Path, text: &str, e: &toml::de::Error) -> Error {
    let span = e.span().unwrap_or(0..0);
    span_error(file, text, span, e.message().trim_end_matches('.'))
}

/// An error about the value or table at `span`.
pub(super) fn span_error(file: &Path, text: &str, span: Range<usize>, message: &str) -> Error {
    let (line, key) = locate(text, span.start);
    Error::Invalid {
        file: file.to_path_buf(),
        line,
        key,
        message: message.to_string(),
    }
}

/// The 1-based line holding byte `at`.
pub(super) fn line_of(text: &str, at: usize) -> usize {
    text.get(..at.min(text.len()))
        .unwrap_or("")
        .matches('\n')
        .count()
        + 1
}

/// The 1-based line holding byte `at`, and the dotted key defined there.
fn locate(text: &str, at: usize) -> (usize, String) {
    let line_no = line_of(text, at);
    let lines: Vec<&str> = text.lines().collect();
    // The table the line belongs to: the last header at or above it.
    let mut table = String::new();
    for (i, raw) in lines.iter().enumerate().take(line_no) {
        if let Some(h) = header(raw) {
            table = match h {
                Header::Table(name) => name,
                Header::Array(name) => {
                    let n = lines
                        .iter()
                        .take(i + 1)
                        .filter(|l| header(l) == Some(Header::Array(name.clone())))
                        .count();
                    format!("{name}[{n}]")
                }
            };
        }
    }
    let here = lines.get(line_no - 1).copied().unwrap_or("");
    let key = if header(here).is_some() {
        table
    } else {
        let k = here
            .split_once('=')
            .map(|(k, _)| k.trim().trim_matches('"').to_string())
            .unwrap_or_default();
        match (table.is_empty(), k.is_empty()) {
            (_, true) if table.is_empty() => "(top level)".to_string(),
            (_, true) => table,
            (true, false) => k,
            (false, false) => format!("{table}.{k}"),
        }
    };
    (line_no, key)
}

#[derive(Debug, PartialEq)]
enum Header {
    Table(String),
    Array(String),
}

fn header(line: &str) -> Option<Header> {
    let t = line.trim();
    if let Some(rest) = t.strip_prefix("[[") {
        let name = rest.split("]]").next()?.trim();
        return Some(Header::Array(name.to_string()));
    }
    if let Some(rest) = t.strip_prefix('[') {
        let name = rest.split(']').next()?.trim();
        return Some(Header::Table(name.to_string()));
    }
    None
}

/// The directory relative paths in `file` are anchored at (absolute).
pub(super) fn base_dir(file: &Path) -> PathBuf {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    // `absolute` keeps `.` components; drop them for readable messages.
    abs.components().collect()
}

/// `p` if absolute, else `dir/p`.
pub(super) fn anchor(dir: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::locate;

    #[test]
    fn names_tables_array_entries_and_keys() {
        let text =
            "data_dir = \"x\"\n[limits]\nmax = 0\n[[tenant]]\na = 1\n[[tenant]]\n\nkeep = []\n";
        assert_eq!(locate(text, 12), (1, "data_dir".into()));
        assert_eq!(
            locate(text, text.find("max").unwrap()),
            (3, "limits.max".into())
        );
        assert_eq!(
            locate(text, text.find("a = 1").unwrap() + 4),
            (5, "tenant[1].a".into())
        );
        assert_eq!(
            locate(text, text.find("[]").unwrap()),
            (8, "tenant[2].keep".into())
        );
        assert_eq!(
            locate(text, text.rfind("[[tenant]]").unwrap()),
            (6, "tenant[2]".into())
        );
    }
}
