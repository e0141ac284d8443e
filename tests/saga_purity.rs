//! The saga core must stay pure: no I/O, no clock. Its crate
//! (`crates/core`) depends on no tokio, reqwest or sled, so the compiler
//! refuses those; this test fails when a file under its `saga/` mentions
//! what the compiler cannot see (the clock, the file system, threads).

#[test]
fn saga_core_imports_no_io_and_reads_no_clock() {
    let forbidden = [
        "tokio",
        "reqwest",
        "sled",
        "SystemTime",
        "Instant::now",
        "std::fs",
        "std::net",
        "std::thread",
        "rand::",
        "crate::runtime",
    ];
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/core/src/saga");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("crates/core/src/saga is readable") {
        let path = entry.expect("directory entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("source is readable");
        for word in forbidden {
            assert!(
                !text.contains(word),
                "{} mentions `{word}`: the saga core must stay pure",
                path.display()
            );
        }
        checked += 1;
    }
    assert!(
        checked >= 5,
        "expected the saga's source files, found {checked}"
    );
}

/// Within each crate of the workspace, the top-level modules' `crate::`
/// imports form no cycle: each layer calls only the layers below it
/// (config does not reach back into what it configures, ...). Between the
/// crates, cargo itself refuses a cycle. A cycle shows which edge closed it.
#[test]
fn top_level_modules_import_no_cycle() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut crates = vec![root.join("src")];
    for entry in std::fs::read_dir(root.join("crates")).expect("crates/ is readable") {
        crates.push(entry.expect("crate dir").path().join("src"));
    }
    assert!(
        crates.len() >= 6,
        "expected the workspace's crates: {crates:?}"
    );
    for src in crates {
        check_crate(&src);
    }
}

fn check_crate(src: &std::path::Path) {
    use std::collections::{BTreeMap, BTreeSet};
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("readable source dir") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().and_then(|e| e.to_str()) == Some("rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(src, &mut files);
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in files {
        let rel = path.strip_prefix(src).expect("under src");
        let top = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .unwrap_or_default()
            .trim_end_matches(".rs")
            .to_string();
        if top == "main" || top == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("source is readable");
        for (i, _) in text.match_indices("crate::") {
            let name: String = text[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !name.is_empty() && name != top {
                deps.entry(top.clone()).or_default().insert(name);
            }
        }
    }
    fn reaches(
        deps: &BTreeMap<String, BTreeSet<String>>,
        from: &str,
        to: &str,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in deps.get(from).into_iter().flatten() {
            if next == to {
                return true;
            }
            if seen.insert(next.clone()) && reaches(deps, next, to, seen) {
                return true;
            }
        }
        false
    }
    for (from, tos) in &deps {
        for to in tos {
            assert!(
                !reaches(&deps, to, from, &mut BTreeSet::new()),
                "{}: an import cycle: {from} imports {to}, which leads back to {from}",
                src.display()
            );
        }
    }
}
