//! Permissions checked before anything changes, the real binary against a
//! real `closeout sim` whose fixture grants closeout's app all but one of
//! the Microsoft Graph application permissions it needs: `plan` names the
//! missing one (exit 0, a gate), and a saga waits at `grant_permissions`
//! before step 1, changing nothing, until the simulator's operator grants
//! it, then goes on.

mod support;

use std::time::Duration;
use support::{wait_status, Daemon, Env, Sim};

const TENANT: &str = "5b2e7c1d-4a3f-4e6b-9c8d-7e6f5a4b3c2d";
const BOB: &str = "33333333-3333-4333-8333-333333333333";

fn fixture(dir: &std::path::Path) -> std::path::PathBuf {
    let text = format!(
        r#"[[tenant]]
tenant_id = "{TENANT}"
domain = "northwind.onmicrosoft.com"
client_id = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
client_secret = "northwind-secret"
billing = "direct"
keep = ["admin@northwind.onmicrosoft.com"]
security_defaults = false
app_permissions = ["Organization.Read.All", "Directory.Read.All", "Policy.Read.All",
  "RoleManagement.Read.Directory", "Application.Read.All",
  "Policy.ReadWrite.AuthenticationMethod"]

[[tenant.user]]
id = "11111111-1111-4111-8111-111111111111"
upn = "admin@northwind.onmicrosoft.com"
roles = ["global_administrator"]

[[tenant.user]]
id = "{BOB}"
upn = "bob@northwind.onmicrosoft.com"
"#
    );
    let path = dir.join("fixture.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn plan_names_the_missing_permission_and_the_saga_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let fx = fixture(dir.path());
    let sim = Sim::start(&["--fixture", fx.to_str().unwrap()]);
    let env = Env::new(&sim, Default::default());
    let batch = env.write_batch("batch.toml", &sim.tenants());

    // plan: exit 0, the permission named, a gate before step 1.
    let out = env.cli("plan", &[batch.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    assert!(out.status.success(), "{}", support::stderr(&out));
    assert!(
        text.contains("closeout's app lacks User.ReadWrite.All"),
        "{text}"
    );
    assert!(text.contains("GATE before step 1"), "{text}");
    // The fixture grants none of the data-at-stake reads: the simulator
    // answers them 403, and plan says so, as a warning, never a gate.
    assert!(
        text.contains(
            "closeout's app lacks Reports.Read.All, ReportSettings.Read.All, \
             BackupRestore-Configuration.Read.All: the data at stake"
        ),
        "{text}"
    );
    // Unavailable, never a zero.
    assert!(
        text.contains(
            "data at stake: mail unavailable, OneDrive unavailable, SharePoint unavailable"
        ),
        "{text}"
    );
    assert!(!text.contains("mail 0 B"), "{text}");
    let out = env.cli("plan", &["--json", batch.to_str().unwrap()]);
    assert!(out.status.success());
    let plans: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = &plans[0];
    assert_eq!(
        p["missing_permissions"],
        serde_json::json!(["User.ReadWrite.All"])
    );
    assert!(p["gates"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["gate"] == "grant_permissions"));
    let granted = |name: &str| {
        p["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == name)
            .map(|x| x["granted"].clone())
    };
    assert_eq!(granted("Directory.Read.All"), Some(serde_json::json!(true)));
    assert_eq!(
        granted("User.ReadWrite.All"),
        Some(serde_json::json!(false))
    );
    assert_eq!(granted("Reports.Read.All"), Some(serde_json::json!(false)));

    // doctor fails the tenant's line, naming the permission.
    let out = env.cli("doctor", &[batch.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.lines().next().is_some_and(
            |l| l.starts_with("FAIL") && l.contains("closeout's app lacks User.ReadWrite.All")
        ),
        "{text}"
    );

    // The saga waits at the gate, deleting no one.
    let daemon = Daemon::start(&env);
    let sagas = env.submit(&batch);
    let saga = sagas[0].0.clone();
    let rows = wait_status(
        &env,
        &daemon,
        Duration::from_secs(30),
        "the permission gate",
        |rows| {
            rows.iter().any(|r| {
                r["saga_id"] == saga.as_str()
                    && r["state"] == "waiting"
                    && r["waiting_for"]
                        .as_str()
                        .is_some_and(|w| w.contains("User.ReadWrite.All"))
            })
        },
    );
    assert_eq!(rows[0]["step"], 1, "{}", rows[0]);
    let what = rows[0]["action_required"]["what"]
        .as_str()
        .unwrap_or_default();
    assert!(what.contains("permissions"), "{}", rows[0]);
    assert!(
        sim.client_effects().is_empty(),
        "something changed before the permission was granted"
    );

    // The running daemon plans with its own credentials: the same answer.
    let out = env.cli("plan", &["--daemon", "--json", batch.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        support::stderr(&out)
    );
    let plans: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        plans[0]["missing_permissions"],
        serde_json::json!(["User.ReadWrite.All"]),
        "{plans}"
    );
    assert!(
        plans[0]["gates"].to_string().contains("grant_permissions"),
        "{plans}"
    );
    let out = env.cli("plan", &["--daemon", batch.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("permissions: closeout's app lacks User.ReadWrite.All"),
        "{text}"
    );

    // The running daemon answers doctor with its own credentials.
    let out = env.cli("doctor", &["--daemon", batch.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{text}{}",
        support::stderr(&out)
    );
    assert!(
        text.contains("closeout's app lacks User.ReadWrite.All"),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("ok   partner")),
        "{text}"
    );

    // Granted through the operator API: the saga goes on and deletes bob.
    let (status, body) = sim.post(&format!("/_sim/tenants/{TENANT}/operator/app-role"));
    assert_eq!(status, 200, "{body}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if sim
            .client_effects()
            .iter()
            .any(|e| e.method == "DELETE" && e.path.contains(BOB))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "bob was not deleted after the grant\n{}",
            daemon.tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
