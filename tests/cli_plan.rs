//! `closeout plan`, the real binary against a real `closeout sim` process:
//! it prints what would be done per tenant (text and `--json`), refuses a keep
//! list without a Global Administrator with exit 2, and changes nothing — the
//! simulator's effects ledger stays empty and no data dir is created.

use closeout::cli::demo::setup::{self, Tuning};
use closeout::sim::state::Partner;
use closeout::sim::TenantInfo;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

fn closeout() -> Command {
    Command::new(env!("CARGO_BIN_EXE_closeout"))
}

/// A `closeout sim` process, killed on drop.
struct SimProcess {
    child: Child,
    url: String,
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_sim(generate: &str) -> SimProcess {
    let mut child = closeout()
        .args([
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--seed",
            "3",
            "--generate",
        ])
        .arg(generate)
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
    SimProcess { child, url }
}

async fn get<T: serde::de::DeserializeOwned>(url: &str) -> T {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

fn plan(config: &Path, batch: &Path, json: bool) -> Output {
    let mut cmd = closeout();
    cmd.arg("plan").arg("--config").arg(config);
    if json {
        cmd.arg("--json");
    }
    cmd.arg(batch).output().unwrap()
}

#[tokio::test]
async fn plan_prints_what_would_be_done_and_changes_nothing() {
    let sim = start_sim("tenants=3,users=25,apps=1,synced=1");
    let dir = tempfile::tempdir().unwrap();
    let tenants: Vec<TenantInfo> = get(&format!("{}/_sim/tenants", sim.url)).await;
    let partner: Partner = get(&format!("{}/_sim/partner", sim.url)).await;
    assert_eq!(tenants.len(), 3);
    let files = setup::write(dir.path(), &sim.url, &tenants, &partner, &Tuning::default()).unwrap();

    let out = plan(&files.config, &files.batch, false);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for t in &tenants {
        assert!(
            stdout.contains(&format!("tenant {}", t.tenant_id)),
            "{stdout}"
        );
    }
    assert!(
        stdout.contains("step 1: delete 24 users: user00001@tenant0000.onmicrosoft.com"),
        "{stdout}"
    );
    assert!(stdout.contains("(point of no return)"), "{stdout}");
    assert!(stdout.contains("Global Administrator)"), "{stdout}");
    assert!(stdout.contains("Line-of-business app"), "{stdout}");
    assert!(stdout.contains("WARNING: 2 users are synced"), "{stdout}");
    // The synced tenant's preflight finding is a gate (exit 0), named once.
    assert_eq!(stdout.matches("GATE before step 1").count(), 1, "{stdout}");
    assert!(
        stdout.contains(&format!(
            "Turn off directory synchronization in tenant {}",
            tenants[0].tenant_id
        )),
        "{stdout}"
    );
    assert!(
        !stdout.contains(&tenants[0].client_secret),
        "a secret reached stdout"
    );

    let out = plan(&files.config, &files.batch, true);
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let plans = json.as_array().unwrap();
    assert_eq!(plans.len(), 3);
    for (p, t) in plans.iter().zip(&tenants) {
        assert_eq!(p["tenant_id"], t.tenant_id.as_str());
        assert_eq!(p["users_to_delete"], 24);
        assert_eq!(p["users"].as_array().unwrap().len(), 24);
        assert_eq!(p["keep"][0]["global_admin"], true);
        assert!(p["refused"].is_null());
        assert_eq!(p["delete_subscriptions"].as_array().unwrap().len(), 2);
        let mode = match t.billing {
            closeout::sim::state::Billing::Partner => "partner-center",
            closeout::sim::state::Billing::Direct => "manual",
        };
        assert_eq!(p["subscriptions"], mode);
    }
    assert_eq!(plans[0]["applications"][0], "Line-of-business app");
    assert_eq!(plans[0]["gates"][0]["gate"], "turn_off_directory_sync");
    assert_eq!(plans[0]["gates"][0]["step"], 1);
    assert_eq!(plans[0]["gates"][0]["users"].as_array().unwrap().len(), 2);
    assert!(plans[1]["gates"].as_array().unwrap().is_empty());
    assert!(plans[1]["applications"].as_array().unwrap().is_empty());

    let effects: serde_json::Value = get(&format!("{}/_sim/effects", sim.url)).await;
    assert_eq!(effects, serde_json::json!([]), "plan changed the tenants");
    assert!(!files.data_dir.exists(), "plan created the data dir");
    let now: Vec<TenantInfo> = get(&format!("{}/_sim/tenants", sim.url)).await;
    assert_eq!(now, tenants);
}

#[tokio::test]
async fn plan_shows_each_subscriptions_kind_seller_action_and_end() {
    let sim = start_sim(
        "tenants=1,users=4,direct=0,subscriptions=2,outside_window=1,term_ends_in=60days,trials=1,other_partner=1",
    );
    let dir = tempfile::tempdir().unwrap();
    let tenants: Vec<TenantInfo> = get(&format!("{}/_sim/tenants", sim.url)).await;
    let partner: Partner = get(&format!("{}/_sim/partner", sim.url)).await;
    let files = setup::write(dir.path(), &sim.url, &tenants, &partner, &Tuning::default()).unwrap();
    let out = plan(&files.config, &files.batch, true);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let subs = json[0]["subscription_plan"].as_array().unwrap();
    let row = |s: &serde_json::Value| {
        format!(
            "{} {} {}",
            s["kind"].as_str().unwrap(),
            s["seller"].as_str().unwrap(),
            s["action"].as_str().unwrap()
        )
    };
    let rows: Vec<String> = subs.iter().map(row).collect();
    assert_eq!(
        rows,
        vec![
            "nce partner auto_renew_off",
            "nce partner cancel",
            "trial microsoft operator",
            "unknown other_partner operator",
        ],
        "{json}"
    );
    assert!(subs[0]["term_end"].is_string() && subs[0]["expected_end"].is_string());
    assert!(subs[3]["place"]
        .as_str()
        .unwrap()
        .contains("the partner of tenant"));
    let warnings = json[0]["warnings"].to_string();
    assert!(warnings.contains("restored for 30 days only"), "{warnings}");
    let text = plan(&files.config, &files.batch, false);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("nce sold by partner: auto_renew_off; term ends"),
        "{text}"
    );
    let effects: serde_json::Value = get(&format!("{}/_sim/effects", sim.url)).await;
    assert_eq!(effects, serde_json::json!([]), "plan changed the tenants");
}

#[tokio::test]
async fn plan_refuses_a_keep_list_without_a_global_administrator() {
    let sim = start_sim("tenants=2,users=10");
    let dir = tempfile::tempdir().unwrap();
    let mut tenants: Vec<TenantInfo> = get(&format!("{}/_sim/tenants", sim.url)).await;
    let partner: Partner = get(&format!("{}/_sim/partner", sim.url)).await;
    // Tenant 1 keeps an ordinary user only.
    tenants[1].keep = vec!["user00003@tenant0001.onmicrosoft.com".into()];
    let files = setup::write(dir.path(), &sim.url, &tenants, &partner, &Tuning::default()).unwrap();

    let out = plan(&files.config, &files.batch, false);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stdout.contains("REFUSED: tenant")
            && stdout.contains("no keep account holds the Global Administrator role"),
        "{stdout}"
    );
    assert!(stdout.contains("not a Global Administrator"), "{stdout}");
    assert!(
        stderr.contains("1 of 2 tenants would be refused"),
        "{stderr}"
    );
    let effects: serde_json::Value = get(&format!("{}/_sim/effects", sim.url)).await;
    assert_eq!(effects, serde_json::json!([]));
}

#[tokio::test]
async fn plan_shows_when_step_one_starts_for_a_term_that_runs_out() {
    let sim = start_sim(
        "tenants=1,users=4,direct=0,subscriptions=1,outside_window=1,term_ends_in=60days",
    );
    let dir = tempfile::tempdir().unwrap();
    let tenants: Vec<TenantInfo> = get(&format!("{}/_sim/tenants", sim.url)).await;
    let partner: Partner = get(&format!("{}/_sim/partner", sim.url)).await;
    let files = setup::write(dir.path(), &sim.url, &tenants, &partner, &Tuning::default()).unwrap();
    let out = plan(&files.config, &files.batch, true);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let term_end = json[0]["subscription_plan"][0]["term_end"]
        .as_str()
        .unwrap();
    let from = json[0]["users_deleted_from"]
        .as_str()
        .expect("a start date");
    let days = |s: &str| {
        humantime::parse_rfc3339_weak(s)
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            / 86_400
    };
    // The default lead: a week before the term ends.
    assert_eq!(days(term_end) - days(from), 7, "{json}");
    let text = plan(&files.config, &files.batch, false);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!("from {from} (auto-renew off first)")),
        "{text}"
    );
}
