//! `closeout audit` / `closeout verify` argument handling through the real
//! binary: usage errors exit 2 with a message naming what is wrong.

use clap::CommandFactory;
use std::process::Command;

fn closeout(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_closeout"))
        .args(args)
        .env("CLOSEOUT_CONFIG", "/nonexistent/default.toml")
        .output()
        .expect("run closeout");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_command_line_is_consistent() {
    closeout::cli::Cli::command().debug_assert();
}

#[test]
fn usage_errors_exit_2_and_say_why() {
    // Without --data-dir the config is read (here the default path, missing).
    let (code, _, err) = closeout(&["audit"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("/nonexistent/default.toml"), "{err}");

    let (code, _, err) = closeout(&["audit", "--data-dir", "/x", "--config", "/y"]);
    assert_eq!(code, 2, "{err}");

    let (code, _, err) = closeout(&["audit", "--data-dir", "/x", "--inventory"]);
    assert_eq!(code, 2, "{err}");

    let (code, _, err) = closeout(&["audit", "--data-dir", "/x", "--format", "pdf"]);
    assert_eq!(code, 2, "{err}");

    let (code, _, err) = closeout(&["audit", "--config", "/nonexistent/closeout.toml"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("/nonexistent/closeout.toml"), "{err}");

    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("closeout.toml");
    std::fs::write(&cfg, "data_dir = 7\n").expect("write config");
    let (code, _, err) = closeout(&["audit", "--config", cfg.to_str().unwrap_or_default()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("data_dir"), "{err}");

    let (code, _, err) = closeout(&["verify"]);
    assert_eq!(code, 2, "{err}");
}
