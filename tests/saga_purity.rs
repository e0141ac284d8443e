//! The saga core must stay pure: no I/O, no clock. This test fails when a file
//! under `src/saga/` mentions what would break that.

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
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/saga");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("src/saga is readable") {
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
