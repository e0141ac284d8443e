//! `closeout sim` as a process: the first stdout line names the URL, the
//! server answers, SIGTERM stops it with status 0, bad input exits 2.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn closeout() -> Command {
    Command::new(env!("CARGO_BIN_EXE_closeout"))
}

#[tokio::test]
async fn prints_its_url_serves_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = dir.path().join("f.toml");
    std::fs::write(&fixture, include_str!("../config/sim/example.toml")).unwrap();
    let mut child = closeout()
        .args(["sim", "--listen", "127.0.0.1:0", "--fixture"])
        .arg(&fixture)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("closeout sim listening on ")
        .expect(&line)
        .to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let tenants: serde_json::Value = reqwest::get(format!("{url}/_sim/tenants"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        tenants[0]["tenant_id"],
        "3f2b8c1e-6a4d-4e5f-9b7a-1c2d3e4f5a6b"
    );
    assert_eq!(tenants[0]["keep"][0], "admin@contoso.onmicrosoft.com");
    let partner: serde_json::Value = reqwest::get(format!("{url}/_sim/partner"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(partner["client_secret"].is_string());
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn invalid_input_exits_2_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[tenant]]\ntenant_id = 1\n").unwrap();
    let out = closeout()
        .args(["sim", "--fixture"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("tenant_id"),
        "{err}"
    );
    let out = closeout()
        .args(["sim", "--generate", "tenants=x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = closeout()
        .args(["sim", "--error-rate", "1.5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
