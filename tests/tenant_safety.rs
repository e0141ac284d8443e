//! Issue 16's safety cases against the real binary and `closeout sim`: one
//! saga per tenant, by the tenant's GUID whatever spelling a batch uses
//! (`plan`, `submit`, the control socket, concurrent submits, a restart),
//! and the keep invariant where the delete happens (a disabled keep Global
//! Administrator, and one whose role is taken away during step 1).

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::*;

const GUID: &str = "6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e";
const DOMAIN: &str = "fabrikam.onmicrosoft.com";
const SECRET: &str = "fabrikam-secret";
const CLIENT: &str = "9a8b7c6d-0000-4000-8000-00000000c1ef";

/// A fixture with one direct-billed tenant: `keep` (a Global Administrator,
/// disabled when asked), `other` (a second Global Administrator, the keep
/// account of the "other" batch entries), two more Global Administrators,
/// and `plain` users; every administrator but `keep` sorts after them.
fn fixture(dir: &Path, keep_disabled: bool, plain: usize) -> PathBuf {
    let mut text = format!(
        "[[tenant]]\ntenant_id = \"{GUID}\"\ndomain = \"{DOMAIN}\"\nclient_id = \"{CLIENT}\"\nclient_secret = \"{SECRET}\"\nbilling = \"direct\"\nkeep = [\"keep@{DOMAIN}\"]\n\n\
         [[tenant.subscription]]\nid = \"sub-g1\"\ncommerce_id = \"sub-c1\"\nsku = \"SPE_E3\"\n\n\
         [[tenant.user]]\nid = \"a-keep\"\nupn = \"keep@{DOMAIN}\"\nroles = [\"global_administrator\"]\ndisabled = {keep_disabled}\n\n\
         [[tenant.user]]\nid = \"zz-other\"\nupn = \"other@{DOMAIN}\"\nroles = [\"global_administrator\"]\n\n"
    );
    for i in 0..plain {
        text.push_str(&format!(
            "[[tenant.user]]\nid = \"u{i:03}\"\nupn = \"user{i}@{DOMAIN}\"\n\n"
        ));
    }
    for n in ["zz-admin-1", "zz-admin-2"] {
        text.push_str(&format!(
            "[[tenant.user]]\nid = \"{n}\"\nupn = \"{n}@{DOMAIN}\"\nroles = [\"global_administrator\"]\n\n"
        ));
    }
    let path = dir.join("fixture.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// One `[[tenant]]` entry naming the fixture's tenant as `tenant_id`.
fn entry(env: &Env, tenant_id: &str, keep: &str) -> String {
    let secret = env.path("secret");
    write_secret(&secret, SECRET);
    format!(
        "[[tenant]]\ntenant_id = \"{tenant_id}\"\nclient_id = \"{CLIENT}\"\nclient_secret_file = \"{}\"\nkeep = [\"{keep}@{DOMAIN}\"]\nsubscriptions = \"manual\"\n\n",
        secret.display()
    )
}

fn batch(env: &Env, name: &str, entries: &[String]) -> PathBuf {
    let path = env.path(name);
    std::fs::write(&path, entries.concat()).unwrap();
    path
}

fn code(out: &std::process::Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

struct Setup {
    sim: Sim,
    env: Env,
}

fn setup(keep_disabled: bool, plain: usize, sim_args: &[&str]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let fx = fixture(dir.path(), keep_disabled, plain);
    let mut args = vec!["--fixture", fx.to_str().unwrap()];
    args.extend_from_slice(sim_args);
    let sim = Sim::start(&args);
    let env = Env::new(
        &sim,
        ConfigOpts {
            on_failure: "pause",
            ..ConfigOpts::default()
        },
    );
    drop(dir);
    Setup { sim, env }
}

/// Waits until some saga shows in `status --json` with a `tenant_guid`.
fn wait_resolved(env: &Env, daemon: &Daemon) -> Vec<Value> {
    wait_status(
        env,
        daemon,
        Duration::from_secs(20),
        "a resolved saga",
        |rows| rows.iter().any(|r| r["tenant_guid"] == GUID),
    )
}

#[test]
fn the_sim_serves_the_discovery_document_by_guid_and_by_domain_in_any_case() {
    let s = setup(false, 1, &[]);
    for name in [GUID.to_string(), GUID.to_uppercase(), DOMAIN.to_uppercase()] {
        let doc = s
            .sim
            .get(&format!("/{name}/v2.0/.well-known/openid-configuration"));
        assert_eq!(
            doc["issuer"].as_str().unwrap(),
            format!("{}/{GUID}/v2.0", s.sim.url),
            "{name}"
        );
        assert!(doc["token_endpoint"].as_str().unwrap().contains(GUID));
    }
    // An unknown tenant is refused by name, before anything is read.
    let env = &s.env;
    let b = batch(
        env,
        "unknown.toml",
        &[entry(env, "nobody.onmicrosoft.com", "keep")],
    );
    let plan = env.cli("plan", &[b.to_str().unwrap()]);
    assert_eq!(code(&plan), 2, "{}", stderr(&plan));
    assert!(stderr(&plan).contains("AADSTS90002"), "{}", stderr(&plan));
}

#[test]
fn a_tenant_named_twice_in_one_batch_is_refused_by_plan_and_submit() {
    let s = setup(false, 2, &[]);
    let env = &s.env;
    let b = batch(
        env,
        "twice.toml",
        &[entry(env, GUID, "keep"), entry(env, DOMAIN, "other")],
    );
    let file = b.display().to_string();
    let plan = env.cli("plan", &[&file]);
    let err = stderr(&plan);
    assert_eq!(code(&plan), 2, "{err}");
    assert!(
        err.contains(&format!("{file}:1")) && err.contains(&format!("{file}:8")),
        "names both entries: {err}"
    );
    assert!(err.contains(GUID) && err.contains(DOMAIN), "{err}");

    let daemon = Daemon::start(env);
    let out = env.cli("submit", &[&file]);
    let err = stderr(&out);
    assert_eq!(code(&out), 2, "{err}\n{}", daemon.tail());
    assert!(
        err.contains(&format!("{file}:1")) && err.contains(&format!("{file}:8")),
        "{err}"
    );
    assert_eq!(env.status().unwrap(), Vec::<Value>::new());
    assert!(s.sim.client_effects().is_empty());
}

#[test]
fn one_saga_per_tenant_across_batches_requests_concurrent_submits_and_restarts() {
    let s = setup(false, 2, &[]);
    let env = &s.env;
    let mut daemon = Daemon::start(env);

    // Two simultaneous submits of the same tenant, spelled differently.
    let by_guid = batch(env, "guid.toml", &[entry(env, GUID, "keep")]);
    let by_domain = batch(env, "domain.toml", &[entry(env, DOMAIN, "other")]);
    let spawn = |b: &Path| {
        std::process::Command::new(bin())
            .args(["submit", "--config"])
            .arg(&env.config)
            .arg(b)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (one, two) = (spawn(&by_guid), spawn(&by_domain));
    let (one, two) = (
        one.wait_with_output().unwrap(),
        two.wait_with_output().unwrap(),
    );
    let codes = [code(&one), code(&two)];
    assert!(
        codes.contains(&0) && codes.contains(&2),
        "exactly one submit wins: {codes:?}\n{}\n{}",
        stderr(&one),
        stderr(&two)
    );
    let loser = if codes[0] == 2 { &one } else { &two };
    // Either spelling may win the race: the saga keeps the one it was given.
    let spelled = if codes[0] == 0 { GUID } else { DOMAIN };
    assert!(
        stderr(loser).contains("already has an active saga")
            || stderr(loser).contains("being submitted"),
        "{}",
        stderr(loser)
    );
    let rows = wait_resolved(env, &daemon);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let first = rows[0]["saga_id"].as_str().unwrap().to_string();

    // A case variant of the domain in another batch.
    let upper = batch(
        env,
        "upper.toml",
        &[entry(env, &DOMAIN.to_uppercase(), "keep")],
    );
    let out = env.cli("submit", &[upper.to_str().unwrap()]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&first),
        "names the active saga: {}",
        stderr(&out)
    );

    // The same tenant twice in one control-socket request (no CLI checks).
    let spec = |tenant_id: &str| closeout::model::TenantSpec {
        tenant_id: tenant_id.into(),
        client_id: CLIENT.into(),
        secret: closeout::model::SecretSource::File(env.path("secret")),
        keep: vec![format!("keep@{DOMAIN}")],
        subscriptions: closeout::model::SubscriptionMode::Manual,
    };
    let sock = env.dir.path().join("control.sock");
    let answer = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut c = closeout::runtime::control::Client::connect(&sock)
            .await
            .unwrap();
        c.call(&closeout::runtime::control::Request::Submit {
            tenants: vec![spec(GUID), spec(&DOMAIN.to_uppercase())],
            finish_with: Vec::new(),
            domains: Vec::new(),
        })
        .await
        .unwrap()
    });
    let text = format!("{answer:?}");
    assert!(
        text.contains("Invalid") && text.contains("entry 1") && text.contains("entry 2"),
        "{text}"
    );
    assert_eq!(env.status().unwrap().len(), 1);

    // A restart: the recovered saga still holds its tenant.
    daemon.signal("TERM");
    assert!(daemon.wait_exit(Duration::from_secs(30)).success());
    let daemon = Daemon::start(env);
    let out = env.cli("submit", &[by_domain.to_str().unwrap()]);
    assert_eq!(code(&out), 2, "{}\n{}", stderr(&out), daemon.tail());
    assert!(stderr(&out).contains(&first), "{}", stderr(&out));
    let rows = env.status().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["tenant_id"], spelled, "the spelling the batch used");
    assert_eq!(rows[0]["tenant_guid"], GUID);
}

#[test]
fn a_disabled_keep_global_administrator_fails_plan_and_the_saga_before_any_delete() {
    let s = setup(true, 2, &[]);
    let env = &s.env;
    let b = batch(env, "b.toml", &[entry(env, DOMAIN, "keep")]);
    let plan = env.cli("plan", &[b.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&plan.stdout).to_string();
    assert_eq!(code(&plan), 2, "{out}{}", stderr(&plan));
    assert!(
        out.contains("is disabled (accountEnabled = false)"),
        "{out}"
    );

    let daemon = Daemon::start(env);
    let ids = env.submit(&b);
    let rows = wait_status(
        env,
        &daemon,
        Duration::from_secs(30),
        "the saga to fail",
        all_terminal,
    );
    assert_eq!(state_of(&rows, &ids[0].0), "failed");
    assert!(
        rows[0]["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("disabled"),
        "{rows:?}"
    );
    assert_eq!(rows[0]["tenant_guid"], GUID);
    let deletes: Vec<_> = s
        .sim
        .client_effects()
        .into_iter()
        .filter(|e| e.method == "DELETE" || e.path.contains("$batch"))
        .collect();
    assert!(deletes.is_empty(), "nothing deleted: {deletes:?}");
}

#[test]
fn a_keep_administrator_losing_its_role_during_step_one_stops_every_admin_delete() {
    // Two writes per two seconds: step 1's first call deletes a few plain
    // users and leaves the rest (the admins sort last) for later calls.
    let s = setup(false, 12, &["--write-limit", "2/2s"]);
    let env = &s.env;
    let b = batch(env, "b.toml", &[entry(env, DOMAIN, "keep")]);
    let daemon = Daemon::start(env);
    let ids = env.submit(&b);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !s.sim.client_effects().iter().any(|e| e.method == "DELETE") {
        assert!(
            Instant::now() < deadline,
            "no delete within 30s\n{}",
            daemon.tail()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, body) = s.sim.post(&format!(
        "/_sim/tenants/{GUID}/operator/users/a-keep/roles/global_administrator/remove"
    ));
    assert_eq!(status, 200, "{body}");
    let rows = wait_status(
        env,
        &daemon,
        Duration::from_secs(60),
        "the saga to pause",
        |rows| state_of(rows, &ids[0].0) == "paused",
    );
    let why = rows[0]["last_error"].as_str().unwrap_or("").to_string();
    assert!(
        why.contains("no keep account holds the Global Administrator role"),
        "{why}"
    );
    let deleted: Vec<String> = s
        .sim
        .client_effects()
        .into_iter()
        .filter(|e| e.method == "DELETE" && e.status < 300)
        .map(|e| e.path)
        .collect();
    for admin in ["a-keep", "zz-other", "zz-admin-1", "zz-admin-2"] {
        assert!(
            !deleted
                .iter()
                .any(|p| p.ends_with(&format!("/users/{admin}"))),
            "{admin} deleted: {deleted:?}"
        );
    }
    let (_, tenant) = s.sim.tenant(GUID);
    let users = tenant["users"].as_object().expect("users").clone();
    assert!(users.contains_key("a-keep") && users.contains_key("zz-other"));
    // The audit shows the check that let the first deletes through.
    let audit = env.cli("audit", &["--format", "jsonl"]);
    let text = String::from_utf8_lossy(&audit.stdout);
    assert!(
        text.contains("\"kind\":\"keep_admin_verified\""),
        "{}",
        stderr(&audit)
    );
    assert!(text.contains("\"kind\":\"keep_admin_missing\""));
    assert!(text.contains(&format!("\"tenant_guid\":\"{GUID}\"")));
    assert!(text.contains(&format!("\"tenant_id\":\"{DOMAIN}\"")));
}

#[test]
fn the_runtime_guard_refuses_keep_accounts_and_unguarded_admins_whatever_was_decided() {
    use closeout::ports::TenantApi;
    let s = setup(false, 2, &[]);
    let url = url::Url::parse(&s.sim.url).unwrap();
    let graph = closeout::graph::Client::new(
        closeout::graph::Endpoints::all_at(&url),
        closeout::graph::ClientOptions::default(),
    )
    .unwrap();
    let api = |keep: &str| {
        closeout::runtime::tenant::Api::Ready(
            graph.tenant(GUID, CLIENT, closeout::model::Secret::new(SECRET)),
            vec![format!("{keep}@{DOMAIN}")],
        )
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    // A saga that decided to delete its own keep account and an admin.
    let ids: Vec<String> = ["a-keep", "u000"].map(String::from).to_vec();
    let (check, outcomes) = rt.block_on(api("keep").delete_users_checked(&ids));
    let check = check.expect("the role is read before deleting");
    assert_eq!(check.verdict, Ok(vec!["a-keep".to_string()]));
    let code = |id: &str| {
        outcomes
            .iter()
            .find(|(t, _)| t == id)
            .map(|(_, o)| o.result.as_ref().err().map(|e| e.code.clone()))
            .unwrap()
    };
    assert_eq!(code("a-keep").as_deref(), Some("keep_account_refused"));
    assert_eq!(code("u000"), None, "a plain user is deleted");

    // The keep account loses the role: admins are refused, plain users go.
    let (status, _) = s.sim.post(&format!(
        "/_sim/tenants/{GUID}/operator/users/a-keep/roles/global_administrator/remove"
    ));
    assert_eq!(status, 200);
    let ids: Vec<String> = ["zz-other", "zz-admin-1", "u001"]
        .map(String::from)
        .to_vec();
    let (check, outcomes) = rt.block_on(api("keep").delete_users_checked(&ids));
    assert!(check.unwrap().verdict.is_err());
    let code = |id: &str| {
        outcomes
            .iter()
            .find(|(t, _)| t == id)
            .map(|(_, o)| o.result.as_ref().err().map(|e| e.code.clone()))
            .unwrap()
    };
    assert_eq!(code("zz-other").as_deref(), Some("keep_admin_missing"));
    assert_eq!(code("zz-admin-1").as_deref(), Some("keep_admin_missing"));
    assert_eq!(code("u001"), None);
    let deleted: Vec<String> = s
        .sim
        .client_effects()
        .into_iter()
        .filter(|e| e.method == "DELETE")
        .map(|e| e.path)
        .collect();
    assert_eq!(deleted.len(), 2, "{deleted:?}");
    assert!(
        deleted
            .iter()
            .all(|p| p.ends_with("/u000") || p.ends_with("/u001")),
        "{deleted:?}"
    );
}

#[test]
fn a_recovered_saga_without_a_recorded_guid_still_holds_its_tenant() {
    let s = setup(false, 2, &[]);
    let env = &s.env;
    // A saga as a daemon before tenant GUIDs wrote it: started under the
    // tenant's domain (mixed case), then paused by an operator.
    std::fs::create_dir_all(&env.data_dir).unwrap();
    let saga = closeout::model::SagaId("0ld5a6a0-0000-4000-8000-000000000001".into());
    let events = [
        closeout::saga::Event::SagaStarted {
            saga_id: saga.clone(),
            spec: closeout::model::TenantSpec {
                tenant_id: "Fabrikam.onmicrosoft.com".into(),
                client_id: CLIENT.into(),
                secret: closeout::model::SecretSource::File(env.path("secret")),
                keep: vec![format!("keep@{DOMAIN}")],
                subscriptions: closeout::model::SubscriptionMode::Manual,
            },
            policy: closeout::saga::SagaPolicy::default(),
            at: closeout::model::Timestamp(1_800_000_000_000),
            submitted_by: "operator".into(),
        },
        closeout::saga::Event::Paused {
            who: "operator".into(),
            why: "waiting for a decision".into(),
        },
    ];
    let payloads = events.iter().map(|e| e.encode().unwrap()).collect();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = closeout::store::Store::open(&env.data_dir).unwrap();
        store
            .append(&saga, closeout::store::FIRST_SEQ, payloads, None)
            .await
            .unwrap();
        store.close().await.unwrap();
    });
    let daemon = Daemon::start(env);
    let rows = wait_resolved(env, &daemon);
    assert_eq!(rows[0]["saga_id"], saga.0.as_str());
    assert_eq!(rows[0]["state"], "paused");
    let by_guid = batch(env, "guid.toml", &[entry(env, GUID, "keep")]);
    let out = env.cli("submit", &[by_guid.to_str().unwrap()]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains(&saga.0), "{}", stderr(&out));
    assert_eq!(env.status().unwrap().len(), 1);
}
