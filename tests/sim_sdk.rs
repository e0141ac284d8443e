//! The simulator driven by Microsoft's official Graph SDK for Python
//! (`msgraph-sdk`, `tests/sdk/drive_sim.py`): if the SDK accepts the sim's
//! answers (shapes, paging, errors), closeout's view of Graph is not a private
//! dialect. The interpreter comes from `CLOSEOUT_SDK_PYTHON` (set by
//! scripts/test.sh); when unset, this test creates `target/sdk-venv` itself,
//! so it never passes without running the SDK.

mod sim_support;

use serde_json::Value;
use sim_support::{generated, Harness};
use std::path::{Path, PathBuf};
use std::process::Command;

fn python() -> PathBuf {
    if let Ok(p) = std::env::var("CLOSEOUT_SDK_PYTHON") {
        return PathBuf::from(p);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let venv = root.join("target/sdk-venv");
    let py = venv.join("bin/python");
    let has_sdk = |py: &Path| {
        Command::new(py)
            .args(["-c", "import msgraph"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !has_sdk(&py) {
        let ok = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .status()
            .expect("python3 runs");
        assert!(ok.success(), "python3 -m venv {}", venv.display());
        let ok = Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "--disable-pip-version-check", "-r"])
            .arg(root.join("tests/sdk/requirements.txt"))
            .status()
            .expect("pip runs");
        assert!(ok.success(), "pip install msgraph-sdk");
    }
    py
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn microsoft_graph_sdk_lists_pages_deletes_reads_and_disables_security_defaults() {
    let h = Harness::start(generated("tenants=1,users=8,subscriptions=2", 30)).await;
    let tenant = h.tenant(0);
    let token = h.token(0).await;
    let py = tokio::task::spawn_blocking(python).await.expect("venv");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/drive_sim.py");
    let base = h.sim.base_url();
    let keep = tenant.keep[0].clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(py)
            .arg(script)
            .arg(base)
            .arg(keep)
            .env("SIM_TOKEN", token)
            .output()
    })
    .await
    .expect("join")
    .expect("the sdk script runs");
    assert!(
        out.status.success(),
        "drive_sim.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).expect("json summary");

    // paging: 8 users at $top=3 → 3 pages, every user once
    assert_eq!(summary["pages"], 3);
    let mut seen: Vec<String> = summary["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 8);
    assert_eq!(
        summary["all_enabled"], true,
        "$select'ed property deserialized"
    );
    assert_eq!(summary["subscriptions"].as_array().unwrap().len(), 2);
    assert_eq!(summary["subscriptions"][0]["status"], "Enabled");
    assert_eq!(summary["skus"].as_array().unwrap().len(), 2);
    assert_eq!(summary["security_defaults"], false);

    let deleted = summary["deleted"].as_str().unwrap();
    let effects: Vec<(String, String, u16)> = h
        .sim
        .effects(0)
        .into_iter()
        .map(|e| (e.method, e.path, e.status))
        .collect();
    assert_eq!(
        effects,
        vec![
            ("DELETE".to_string(), format!("/v1.0/users/{deleted}"), 204),
            (
                "PATCH".to_string(),
                "/v1.0/policies/identitySecurityDefaultsEnforcementPolicy".to_string(),
                204
            ),
        ]
    );
    let state = h.sim.tenant(&tenant.tenant_id).unwrap();
    assert!(!state.users.contains_key(deleted) && state.deleted_users.contains_key(deleted));
    assert!(!state.security_defaults);
}
