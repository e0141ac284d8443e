//! The credentials real operators use, the real binary against a real
//! `closeout sim`: a batch whose `[defaults]` names one certificate for
//! every tenant (a tenant overriding it with its own secret), the partner
//! signing in with a certificate too, closed to the end; the event log
//! holds the certificate's path, never its key. A tenant whose `domain` is
//! not its organization's is refused before anything changes.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::{all_terminal, wait_status, write_secret, Daemon, Env, Sim};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/certs")
        .join(name)
}

/// Copies a test key to a 0600 file in the test's dir (git keeps no modes).
fn private_copy(env: &Env, name: &str) -> PathBuf {
    let to = env.path(name);
    write_secret(&to, &fs::read_to_string(fixture(name)).unwrap());
    to
}

/// One raw request on the control socket; the answer's line.
fn control_call(env: &Env, request: &closeout::runtime::control::Request) -> String {
    use std::io::{BufRead, BufReader, Write};
    let mut line = serde_json::to_string(request).unwrap();
    line.push('\n');
    let mut s =
        std::os::unix::net::UnixStream::connect(env.dir.path().join("control.sock")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(line.as_bytes()).unwrap();
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer).unwrap();
    answer
}

fn domain_of(sim: &Sim, id: &str) -> String {
    sim.tenant(id).1["domain"].as_str().unwrap().to_string()
}

#[test]
fn a_batch_with_defaults_and_certificates_closes() {
    let crt = fixture("closeout.crt");
    let sim = Sim::start(&[
        "--generate",
        "tenants=2,users=8",
        "--seed",
        "21",
        "--auto-operator",
        "200ms",
        "--deprovision-after",
        "1s",
        "--certificate",
        crt.to_str().unwrap(),
    ]);
    let tenants = sim.tenants();
    let env = Env::new(&sim, Default::default());
    let pem = private_copy(&env, "closeout.pem");
    // The partner signs in to Partner Center with the certificate.
    let config = fs::read_to_string(&env.config).unwrap();
    let psecret = env.path("partner_secret");
    let config = config.replace(
        &format!("client_secret_file = \"{}\"", psecret.display()),
        &format!("client_certificate_file = \"{}\"", pem.display()),
    );
    assert!(config.contains("client_certificate_file"));
    fs::write(&env.config, config).unwrap();

    let (a, b) = (&tenants[0], &tenants[1]);
    let b_secret = env.path("secret_b");
    write_secret(&b_secret, b["client_secret"].as_str().unwrap());
    let mode = |t: &serde_json::Value| {
        if t["billing"] == "partner" {
            "partner-center"
        } else {
            "manual"
        }
    };
    let batch = env.path("batch.toml");
    fs::write(
        &batch,
        format!(
            r#"[defaults]
client_certificate_file = "{pem}"

[[tenant]]
tenant_id = "{a_id}"
domain = "{a_domain}"
client_id = "{a_client}"
keep = {a_keep}
subscriptions = "{a_mode}"

[[tenant]]
tenant_id = "{b_id}"
client_id = "{b_client}"
client_secret_file = "{b_secret}"
keep = {b_keep}
subscriptions = "{b_mode}"
"#,
            pem = pem.display(),
            a_id = a["tenant_id"].as_str().unwrap(),
            a_domain = domain_of(&sim, a["tenant_id"].as_str().unwrap()),
            a_client = a["client_id"].as_str().unwrap(),
            a_keep = a["keep"],
            a_mode = mode(a),
            b_id = b["tenant_id"].as_str().unwrap(),
            b_client = b["client_id"].as_str().unwrap(),
            b_secret = b_secret.display(),
            b_keep = b["keep"],
            b_mode = mode(b),
        ),
    )
    .unwrap();
    // doctor: a line per tenant and for the partner, all fine.
    let out = env.cli("doctor", &[batch.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", support::stderr(&out));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines.iter().all(|l| l.starts_with("ok")), "{text}");
    assert!(
        lines[0].contains("credential=certificate SHA256:"),
        "{text}"
    );
    assert!(lines[1].contains("credential=secret"), "{text}");
    assert!(lines[2].starts_with("ok   partner"), "{text}");
    assert!(sim.client_effects().is_empty(), "doctor changed something");

    let daemon = Daemon::start(&env);
    let sagas = env.submit(&batch);
    assert_eq!(sagas.len(), 2);
    let rows = wait_status(
        &env,
        &daemon,
        Duration::from_secs(90),
        "both sagas terminal",
        all_terminal,
    );
    for r in &rows {
        assert_eq!(r["state"], "completed", "{r}\n{}", daemon.tail());
    }
    // Tenant a and the partner signed in with the certificate, b with its
    // secret.
    let log = sim.get("/_sim/token-requests");
    let kinds = |tenant: &str| -> Vec<String> {
        log.as_array()
            .unwrap()
            .iter()
            .filter(|r| r["tenant"] == tenant && r["status"] == 200)
            .map(|r| r["credential"].as_str().unwrap().to_string())
            .collect()
    };
    let a_kinds = kinds(a["tenant_id"].as_str().unwrap());
    assert!(!a_kinds.is_empty() && a_kinds.iter().all(|k| k == "certificate"));
    let b_kinds = kinds(b["tenant_id"].as_str().unwrap());
    assert!(!b_kinds.is_empty() && b_kinds.iter().all(|k| k == "secret"));
    if tenants.iter().any(|t| t["billing"] == "partner") {
        let partner = sim.get("/_sim/partner");
        let p_kinds = kinds(partner["tenant_id"].as_str().unwrap());
        assert!(!p_kinds.is_empty() && p_kinds.iter().all(|k| k == "certificate"));
    }
    let mut daemon = daemon;
    daemon.signal("TERM");
    assert!(daemon.wait_exit(Duration::from_secs(10)).success());
    // The log names the certificate's file, never its key.
    let key_text = fs::read_to_string(&pem).unwrap();
    let key_line = key_text.lines().nth(1).unwrap();
    let thumbprint = closeout::cert::Certificate::from_pem(&key_text)
        .unwrap()
        .public
        .thumbprint_hex();
    let mut used = Vec::new();
    for (_, events) in support::store_events(&env.data_dir) {
        let text = format!("{events:?}");
        assert!(!text.contains(key_line), "the key reached the event log");
        assert!(!text.contains("PRIVATE KEY"));
        used.extend(events.iter().filter_map(|e| match e {
            closeout::saga::Event::CertificateUsed { thumbprint } => Some(thumbprint.clone()),
            _ => None,
        }));
    }
    // Tenant a's saga recorded the certificate by its thumbprint; b's, on a
    // secret, recorded none.
    assert_eq!(used, vec![thumbprint]);
}

#[test]
fn a_domain_of_another_tenant_is_refused_before_anything_changes() {
    let sim = Sim::start(&["--generate", "tenants=2,users=5", "--seed", "22"]);
    let tenants = sim.tenants();
    let env = Env::new(&sim, Default::default());
    let (a, b) = (&tenants[0], &tenants[1]);
    let secret = env.path("secret_a");
    write_secret(&secret, a["client_secret"].as_str().unwrap());
    let batch = env.path("batch.toml");
    let b_domain = domain_of(&sim, b["tenant_id"].as_str().unwrap());
    fs::write(
        &batch,
        format!(
            "[defaults]\nclient_id = \"{}\"\nclient_secret_file = \"{}\"\n\n[[tenant]]\ntenant_id = \"{}\"\ndomain = \"{b_domain}\"\nkeep = {}\nsubscriptions = \"manual\"\n",
            a["client_id"].as_str().unwrap(),
            secret.display(),
            a["tenant_id"].as_str().unwrap(),
            a["keep"],
        ),
    )
    .unwrap();
    // `plan` refuses it as invalid input, naming the line and both tenants.
    let out = env.cli("plan", &[batch.to_str().unwrap()]);
    let err = support::stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("batch.toml:5") && err.contains(&b_domain),
        "{err}"
    );
    // So does the daemon, even when asked directly (no saga starts).
    let daemon = Daemon::start(&env);
    let out = env.cli("submit", &[batch.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", support::stderr(&out));
    let request = closeout::runtime::control::Request::Submit {
        tenants: closeout::config::BatchFile::load(&batch).unwrap().tenants,
        finish_with: Vec::new(),
        domains: vec![Some(b_domain.clone())],
    };
    let answer = control_call(&env, &request);
    assert!(
        answer.contains("tenant_mismatch") || answer.contains(&b_domain),
        "{answer}\n{}",
        daemon.tail()
    );
    assert!(env.status().unwrap().is_empty(), "a saga was started");
    assert!(sim.client_effects().is_empty(), "something changed");
}
