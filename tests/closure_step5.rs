//! Steps 4 and 5 end to end against the simulator, its auto-operator acting
//! as a person following closeout's gate: two keep accounts (the second
//! sorting before the Global Administrator), `mfa_scope = "all"` with two
//! Conditional Access policies. The closure completes although the operator
//! removes closeout's own service principal before deleting the tenant; the
//! gate names the other keep account for removal, never the finishing
//! administrator; that administrator's per-user MFA is never changed; and
//! the Conditional Access writes to the tenant are at least a second apart.

mod support;

use closeout::saga::{closure::MfaScope, Event, Gate};
use std::time::{Duration, SystemTime};
use support::{state_of, store_events, wait_status, Daemon, Env, Sim};

const TENANT: &str = "3f2b8c1e-6a4d-4e5f-9b7a-1c2d3e4f5a6b";
const ADMIN: &str = "22222222-2222-4222-8222-222222222222";
const AARON: &str = "11111111-1111-4111-8111-111111111111";
const CLIENT: &str = "8d7c6b5a-4f3e-4d2c-9b1a-0f9e8d7c6b5a";

const FIXTURE: &str = r#"
[partner]
tenant_id = "0a9d1f7e-7b5c-4f0e-9d6e-5a1c2b3d4e5f"
client_id = "5e2c8b1a-3d4f-4a6b-8c9d-0e1f2a3b4c5d"
client_secret = "partner-secret"

[[tenant]]
tenant_id = "3f2b8c1e-6a4d-4e5f-9b7a-1c2d3e4f5a6b"
domain = "contoso.onmicrosoft.com"
client_id = "8d7c6b5a-4f3e-4d2c-9b1a-0f9e8d7c6b5a"
client_secret = "contoso-secret"
billing = "partner"
keep = ["admin@contoso.onmicrosoft.com", "aaron@contoso.onmicrosoft.com"]
security_defaults = true

[[tenant.user]]
id = "22222222-2222-4222-8222-222222222222"
upn = "admin@contoso.onmicrosoft.com"
roles = ["global_administrator"]
mfa = "enforced"

[[tenant.user]]
id = "11111111-1111-4111-8111-111111111111"
upn = "aaron@contoso.onmicrosoft.com"
mfa = "enforced"

[[tenant.user]]
id = "33333333-3333-4333-8333-333333333333"
upn = "bob@contoso.onmicrosoft.com"
mfa = "enabled"

[[tenant.subscription]]
id = "a1a1a1a1-0000-4000-8000-000000000001"
commerce_id = "c1c1c1c1-0000-4000-8000-000000000001"
sku = "O365_BUSINESS_PREMIUM"

[[tenant.ca_policy]]
id = "ca000000-0000-4000-8000-000000000001"
name = "Require MFA for admins"
state = "enabled"
mfa = true

[[tenant.ca_policy]]
id = "ca000000-0000-4000-8000-000000000002"
name = "Require MFA for all users"
state = "enabled"
mfa = true
"#;

fn effects(sim: &Sim) -> Vec<serde_json::Value> {
    serde_json::from_value(sim.get("/_sim/effects")).expect("effects")
}

fn at(e: &serde_json::Value) -> SystemTime {
    humantime::parse_rfc3339_weak(e["at"].as_str().expect("at")).expect("rfc 3339")
}

#[test]
fn a_closure_ends_observed_gone_after_the_operator_removes_closeouts_app() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fixture = dir.path().join("fixture.toml");
    std::fs::write(&fixture, FIXTURE).expect("write fixture");
    let sim = Sim::start(&[
        "--fixture",
        fixture.to_str().expect("utf-8"),
        "--auto-operator",
        "1s",
        "--deprovision-after",
        "1s",
    ]);
    let tenants = sim.tenants();
    let env = Env::new(&sim, Default::default());
    let config = std::fs::read_to_string(&env.config).expect("config");
    std::fs::write(
        &env.config,
        config.replace("[saga]\n", "[saga]\nmfa_scope = \"all\"\n"),
    )
    .expect("write config");
    let batch = env.write_batch("batch.toml", &tenants);
    let mut daemon = Daemon::start(&env);
    let sagas = env.submit(&batch);
    let saga = sagas[0].0.clone();
    let rows = wait_status(&env, &daemon, Duration::from_secs(90), "the end", |rows| {
        matches!(
            state_of(rows, &saga),
            "completed" | "failed" | "rolled_back" | "paused"
        )
    });
    assert_eq!(state_of(&rows, &saga), "completed", "{}", daemon.tail());
    daemon.kill();

    let all = effects(&sim);
    let path_of = |e: &serde_json::Value| e["path"].as_str().unwrap_or("").to_string();
    // The finishing administrator's per-user MFA is never written; aaron's is.
    assert!(
        all.iter()
            .all(|e| !path_of(e).contains(ADMIN) || e["method"] == "POST"),
        "the finishing admin was changed: {all:?}"
    );
    assert!(
        all.iter()
            .any(|e| path_of(e) == format!("/beta/users/{AARON}/authentication/requirements")),
        "aaron's MFA was not turned off: {all:?}"
    );
    // Conditional Access writes a second apart.
    let ca: Vec<SystemTime> = all
        .iter()
        .filter(|e| e["method"] == "PATCH" && path_of(e).contains("/conditionalAccess/policies/"))
        .map(at)
        .collect();
    assert_eq!(ca.len(), 2, "{all:?}");
    assert!(
        ca[1].duration_since(ca[0]).unwrap_or_default() >= Duration::from_secs(1),
        "CA writes closer than a second: {ca:?}"
    );
    // The operator: aaron removed, then closeout's service principal, then the tenant.
    let seq = |p: String| {
        all.iter()
            .find(|e| path_of(e) == p)
            .and_then(|e| e["seq"].as_u64())
            .unwrap_or_else(|| panic!("no {p} in {all:?}"))
    };
    let aaron = seq(format!(
        "/_sim/tenants/{TENANT}/operator/users/{AARON}/delete"
    ));
    let own = seq(format!(
        "/_sim/tenants/{TENANT}/operator/service-principals/{CLIENT}/delete"
    ));
    let deleted = seq(format!("/_sim/tenants/{TENANT}/operator/delete"));
    assert!(aaron < own && own < deleted, "{all:?}");

    // The log: the scope recorded, the gate naming aaron (never the admin),
    // the tenant observed gone twice after a baseline.
    let events = store_events(&env.data_dir);
    let (_, log) = events
        .iter()
        .find(|(id, _)| id.0 == saga)
        .expect("the saga's events");
    assert!(log.iter().any(|e| matches!(
        e,
        Event::ClosurePolicyRecorded {
            mfa_scope: MfaScope::All,
            ..
        }
    )));
    let first_gate = log
        .iter()
        .find_map(|e| match e {
            Event::GateOpened {
                gate: Gate::DeleteTenant,
                instructions,
            } => Some(instructions.clone()),
            _ => None,
        })
        .expect("a step 5 gate");
    assert!(first_gate.contains("not deletable"), "{first_gate}");
    assert!(
        first_gate.contains("other keep accounts aaron@contoso.onmicrosoft.com "),
        "{first_gate}"
    );
    assert!(
        first_gate.contains("Signed in as admin@contoso.onmicrosoft.com"),
        "{first_gate}"
    );
    let baseline = log
        .iter()
        .position(|e| matches!(e, Event::DiscoveryBaselineRecorded { .. }))
        .expect("a baseline");
    let gate = log
        .iter()
        .position(|e| {
            matches!(
                e,
                Event::GateOpened {
                    gate: Gate::DeleteTenant,
                    ..
                }
            )
        })
        .expect("a gate");
    assert!(baseline < gate);
    let gone: Vec<u8> = log
        .iter()
        .filter_map(|e| match e {
            Event::TenantObservedGone { confirmation, .. } => Some(*confirmation),
            _ => None,
        })
        .collect();
    assert_eq!(gone, vec![1, 2], "{log:?}");
    assert!(
        !log.iter()
            .any(|e| matches!(e, Event::TenantFoundGone { .. })),
        "gone on a token error alone"
    );
}
