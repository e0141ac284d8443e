//! `closeout demo` as a process, small: it closes every simulated tenant
//! (both billing kinds), exits 0, prints the summary with each tenant
//! completed and no ledger change missing from the log, attests each
//! tenant's backup through its simulated operator (the audit shows it), and
//! keeps the data dir, whose log `closeout verify` accepts.

use std::process::Command;

fn closeout() -> Command {
    Command::new(env!("CARGO_BIN_EXE_closeout"))
}

#[test]
fn demo_closes_every_tenant_and_prints_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("demo");
    let out = closeout()
        .args([
            "demo",
            "--tenants",
            "2",
            "--users",
            "30",
            "--timeout",
            "60s",
            "--dir",
        ])
        .arg(&out_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let summary = stdout
        .split("\nsummary (")
        .nth(1)
        .unwrap_or_else(|| panic!("no summary in {stdout}"));
    let rows: Vec<&str> = summary
        .lines()
        .filter(|l| l.contains(" completed "))
        .collect();
    assert_eq!(rows.len(), 2, "{summary}");
    for row in rows {
        // tenant, state, users deleted (all but the kept admin), subscriptions.
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(&cols[1..4], ["completed", "29", "2"], "{row}");
    }
    assert!(
        summary.contains("ledger changes missing from the log: 0"),
        "{summary}"
    );
    // The simulated operator attested each tenant's backup, and the audit
    // shows it as a person's word.
    let audit = std::fs::read_to_string(out_dir.join("audit.txt")).unwrap();
    // Once per saga in its summary's operator actions (and again in its
    // detail lines).
    assert_eq!(
        audit
            .lines()
            .filter(|l| l.trim_start().starts_with("operator ")
                && l.contains("attested a backup outside the tenant (on a person's word"))
            .count(),
        2,
        "{audit}"
    );
    assert!(audit.contains("data at stake: mail "), "{audit}");
    let data_dir = out_dir.join("data");
    assert!(
        summary.contains(&data_dir.display().to_string()),
        "{summary}"
    );
    assert!(data_dir.is_dir());
    for secret in std::fs::read_dir(out_dir.join("secrets")).unwrap() {
        let text = std::fs::read_to_string(secret.unwrap().path()).unwrap();
        assert!(!stdout.contains(text.trim()), "a secret reached stdout");
    }
}

#[test]
fn demo_refuses_a_non_empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("something"), "x").unwrap();
    let out = closeout()
        .args(["demo", "--tenants", "1", "--users", "5", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not empty"));
}

/// `--dir` relative to the current directory: the generated config names
/// its secret, data dir and socket by absolute paths, so they are not
/// resolved against the config's own directory (`demo1/demo1/secrets/...`).
/// The smallest demo the CLI allows.
#[test]
fn demo_with_a_relative_dir() {
    let cwd = tempfile::tempdir().unwrap();
    let out = closeout()
        .args([
            "demo",
            "--tenants",
            "1",
            "--users",
            "1",
            "--no-faults",
            "--timeout",
            "60s",
            "--dir",
            "demo1",
        ])
        .current_dir(cwd.path())
        .env_remove("CLOSEOUT_CONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(!stderr.contains("demo1/demo1"), "{stderr}");
    let made = cwd.path().join("demo1");
    let config = std::fs::read_to_string(made.join("closeout.toml")).unwrap();
    let secret = made.join("secrets").join("partner");
    assert!(
        config.contains(&format!("client_secret_file = \"{}\"", secret.display())),
        "{config}"
    );
    assert!(made.join("data").is_dir() && made.join("audit.txt").is_file());
    assert!(!made.join("demo1").exists());
}
