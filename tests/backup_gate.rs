//! The data at stake and the backup gate, against the real binary and a
//! real `closeout sim`:
//! - `plan --json` totals the simulator's fixture (mail, items, OneDrive,
//!   per tenant and for the users step 1 deletes; SharePoint sites and those
//!   step 1 leaves without their owner), says when the reports
//!   are anonymised (totals only), and warns about in-tenant Microsoft 365
//!   Backup policies;
//! - under `backup = "attest"` a saga deletes nothing until an operator
//!   attests through the control socket (`confirm --backup --reason`), the
//!   gate warns that in-tenant backups go with the tenant, and the log
//!   records who attested (the socket peer) and why, before the first
//!   delete;
//! - under `backup = "off"` the choice is recorded and no one is asked.

mod support;

use closeout::saga::stake::BackupMode;
use closeout::saga::{Change, Event};
use serde_json::Value;
use std::time::Duration;
use support::{all_terminal, store_events, wait_status, ConfigOpts, Daemon, Env, Sim};

/// (mail bytes, mail items, OneDrive bytes) of a sim tenant's members: all
/// of them, and those that are not keep accounts.
fn fixture_totals(sim: &Sim, tenant_id: &str) -> ((u64, u64, u64), (u64, u64, u64)) {
    let (status, t) = sim.tenant(tenant_id);
    assert_eq!(status, 200);
    let keep: Vec<String> = t["keep"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_lowercase())
        .collect();
    let mut all = (0, 0, 0);
    let mut delete = (0, 0, 0);
    for u in t["users"].as_object().unwrap().values() {
        if u["userType"] != "Member" {
            continue;
        }
        let n = |k: &str| u[k].as_u64().unwrap();
        let row = (n("mailboxBytes"), n("mailboxItems"), n("onedriveBytes"));
        all = (all.0 + row.0, all.1 + row.1, all.2 + row.2);
        let upn = u["userPrincipalName"].as_str().unwrap().to_lowercase();
        if !keep.contains(&upn) {
            delete = (delete.0 + row.0, delete.1 + row.1, delete.2 + row.2);
        }
    }
    (all, delete)
}

fn plan_json(env: &Env, batch: &std::path::Path) -> Vec<Value> {
    let out = env.cli("plan", &["--json", batch.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "plan failed: {}",
        support::stderr(&out)
    );
    serde_json::from_slice(&out.stdout).expect("plan --json")
}

#[test]
fn plan_totals_match_the_fixture_and_anonymised_reports_give_totals_only() {
    let sim = Sim::start(&[
        "--generate",
        "tenants=3,users=12,backup=1,concealed=2",
        "--seed",
        "5",
    ]);
    let tenants = sim.tenants();
    let env = Env::new(
        &sim,
        ConfigOpts {
            backup: "attest",
            ..ConfigOpts::default()
        },
    );
    let batch = env.write_batch("batch.toml", &tenants);
    let plans = plan_json(&env, &batch);
    assert_eq!(plans.len(), 3);
    let mut anonymised = 0;
    let mut warned = 0;
    for p in &plans {
        let id = p["tenant_id"].as_str().unwrap();
        let (_, t) = sim.tenant(id);
        let ((mail, items, drive), (del_mail, del_items, del_drive)) = fixture_totals(&sim, id);
        let s = &p["data_at_stake"];
        assert_eq!(p["backup"], "attest", "{p}");
        assert_eq!(s["mailbox_bytes"].as_u64(), Some(mail), "{s}");
        assert_eq!(s["mailbox_items"].as_u64(), Some(items), "{s}");
        assert_eq!(s["onedrive_bytes"].as_u64(), Some(drive), "{s}");
        assert!(mail > 0 && drive > 0, "the fixture has sizes: {s}");
        assert_eq!(s["period_days"], "7", "{s}");
        // Two sites: the keep admin's and a member's (orphaned by step 1).
        assert_eq!(s["sites"], 2, "{s}");
        assert!(s["sharepoint_bytes"].as_u64().unwrap() > 0, "{s}");
        let orphaned = if t["concealed_names"] == true { 0 } else { 1 };
        assert_eq!(s["orphaned_sites"], orphaned, "{s}");
        if t["concealed_names"] == true {
            anonymised += 1;
            assert_eq!(s["anonymised"], true, "{s}");
            assert_eq!(s["users_matched"], 0, "{s}");
            assert_eq!(s["delete_mailbox_bytes"], 0, "{s}");
        } else {
            assert_eq!(s["anonymised"], false, "{s}");
            assert_eq!(s["delete_mailbox_bytes"].as_u64(), Some(del_mail), "{s}");
            assert_eq!(s["delete_mailbox_items"].as_u64(), Some(del_items), "{s}");
            assert_eq!(s["delete_onedrive_bytes"].as_u64(), Some(del_drive), "{s}");
            assert!(s["users_matched"].as_u64().unwrap() > 0, "{s}");
        }
        let policies = t["backup_policies"].as_array().unwrap().len() as u64;
        assert_eq!(s["protection_policies"].as_u64(), Some(policies), "{s}");
        let warning = p["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("go with it"));
        assert_eq!(warning, policies > 0, "{p}");
        warned += usize::from(warning);
    }
    assert_eq!((anonymised, warned), (2, 1));
    // The text form shows the same, and labels the gate a person's word.
    let out = env.cli("plan", &[batch.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("data at stake: mail "), "{text}");
    assert!(text.contains("conceal user names"), "{text}");
    assert!(text.contains("rests on a person's word"), "{text}");
}

#[test]
fn attest_mode_deletes_nothing_before_the_operator_attests_and_records_who() {
    let sim = Sim::start(&[
        "--generate",
        "tenants=1,users=10,direct=0,backup=1",
        "--seed",
        "3",
        "--auto-operator",
        "100ms",
        "--deprovision-after",
        "500ms",
    ]);
    let tenants = sim.tenants();
    let env = Env::new(
        &sim,
        ConfigOpts {
            backup: "attest",
            ..ConfigOpts::default()
        },
    );
    let batch = env.write_batch("batch.toml", &tenants);
    let daemon = Daemon::start(&env);
    let sagas = env.submit(&batch);
    let saga = sagas[0].0.clone();
    let at_gate = |rows: &[Value]| {
        rows.iter().any(|r| {
            r["state"] == "waiting"
                && r["action_required"]["where"]
                    .as_str()
                    .is_some_and(|p| p.contains("--backup"))
        })
    };
    let rows = wait_status(
        &env,
        &daemon,
        Duration::from_secs(30),
        "the backup gate",
        at_gate,
    );
    let waiting_for = rows[0]["waiting_for"].as_str().unwrap();
    assert!(waiting_for.contains("OUTSIDE the tenant"), "{waiting_for}");
    assert!(
        waiting_for.contains("rests on a person's word"),
        "{waiting_for}"
    );
    // The tenant keeps Microsoft 365 Backup policies: the gate says their
    // copies go with it.
    assert!(waiting_for.contains("go with it"), "{waiting_for}");
    assert!(
        sim.client_effects().is_empty(),
        "changed before the attestation: {:?}",
        sim.client_effects()
    );
    // A plain confirm does not pass this gate, nor an attestation without
    // a reason.
    let plain = env.cli("confirm", &[&saga]);
    assert_eq!(plain.status.code(), Some(1), "{}", support::stderr(&plain));
    assert!(support::stderr(&plain).contains("--backup"));
    let bare = env.cli("confirm", &[&saga, "--backup"]);
    assert_eq!(bare.status.code(), Some(2), "{}", support::stderr(&bare));
    assert!(sim.client_effects().is_empty());
    let ok = env.cli(
        "confirm",
        &[
            &saga,
            "--backup",
            "--reason",
            "exported to the escrow bucket",
        ],
    );
    assert!(ok.status.success(), "{}", support::stderr(&ok));
    wait_status(
        &env,
        &daemon,
        Duration::from_secs(60),
        "the closure",
        all_terminal,
    );
    drop(daemon);
    let events = &store_events(&env.data_dir)[0].1;
    assert!(events.contains(&Event::BackupPolicyRecorded {
        mode: BackupMode::Attest
    }));
    let submitted_by = events
        .iter()
        .find_map(|e| match e {
            Event::SagaStarted { submitted_by, .. } => Some(submitted_by.clone()),
            _ => None,
        })
        .unwrap();
    let attested = events
        .iter()
        .position(|e| {
            matches!(e, Event::BackupAttested { who, why, in_tenant_policies: 2 }
                if *who == submitted_by && why == "exported to the escrow bucket")
        })
        .unwrap_or_else(|| panic!("no attestation by {submitted_by}: {events:#?}"));
    let first_delete = events
        .iter()
        .position(|e| {
            matches!(
                e,
                Event::ChangeIntended {
                    change: Change::DeleteUser,
                    ..
                }
            )
        })
        .expect("users were deleted");
    assert!(attested < first_delete);
    assert!(events.iter().any(|e| matches!(e, Event::SagaCompleted)));
    // The audit shows the attestation, labelled as a person's word.
    let audit = env.cli("audit", &["--format", "text"]);
    let text = String::from_utf8_lossy(&audit.stdout);
    assert!(
        text.contains("attested a backup outside the tenant (on a person's word"),
        "{text}"
    );
    assert!(text.contains("data at stake: mail"), "{text}");
    // So does the closure receipt a customer is handed.
    let receipt = env.cli("audit", &["--format", "receipt", "--saga", &saga]);
    assert!(receipt.status.success(), "{}", support::stderr(&receipt));
    let html = String::from_utf8_lossy(&receipt.stdout);
    assert!(
        html.contains("on a person&#39;s word") || html.contains("on a person's word"),
        "{html}"
    );
    assert!(html.contains("Data and backup"), "{html}");
    assert!(html.contains("backup policy: attest"), "{html}");
}

#[test]
fn off_mode_is_recorded_and_asks_no_one() {
    let sim = Sim::start(&[
        "--generate",
        "tenants=1,users=5,direct=0",
        "--seed",
        "4",
        "--auto-operator",
        "100ms",
        "--deprovision-after",
        "500ms",
    ]);
    let tenants = sim.tenants();
    let env = Env::new(&sim, ConfigOpts::default());
    let batch = env.write_batch("batch.toml", &tenants);
    let plans = plan_json(&env, &batch);
    assert_eq!(plans[0]["backup"], "off");
    let daemon = Daemon::start(&env);
    env.submit(&batch);
    wait_status(
        &env,
        &daemon,
        Duration::from_secs(60),
        "the closure",
        all_terminal,
    );
    drop(daemon);
    let events = &store_events(&env.data_dir)[0].1;
    assert!(events.contains(&Event::BackupPolicyRecorded {
        mode: BackupMode::Off
    }));
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::DataAtStakeRecorded { .. })));
    assert!(!events
        .iter()
        .any(|e| matches!(e, Event::BackupAttested { .. })));
    assert!(events.iter().any(|e| matches!(e, Event::SagaCompleted)));
}
