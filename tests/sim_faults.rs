//! Fault injection: rates honoured within tolerance, ghosts applied and
//! recorded, dropped and hung requests, latency, reproducibility by seed, and
//! no faults on `/_sim/` nor (by default) the token endpoint.

mod sim_support;

use closeout::sim::Options;
use sim_support::{generated, Harness};
use std::time::{Duration, Instant};

fn faulty(spec: &str, seed: u64, f: impl FnOnce(&mut Options)) -> Options {
    let mut o = generated(spec, seed);
    f(&mut o);
    o
}

#[tokio::test]
async fn error_rate_is_honoured_and_changes_nothing() {
    let h = Harness::start(faulty("tenants=1,users=3", 20, |o| o.error_rate = 0.2)).await;
    let tok = h.token(0).await;
    let mut errors = 0;
    for _ in 0..400 {
        let a = h.get("/v1.0/organization", &tok).await;
        if a.status >= 500 {
            assert!([500, 502, 503, 504].contains(&a.status));
            assert!(a.body["error"]["code"].is_string());
            errors += 1;
        } else {
            assert_eq!(a.status, 200);
        }
    }
    assert!(
        (50..=110).contains(&errors),
        "{errors} errors in 400 at rate 0.2"
    );
    assert_eq!(
        h.own("/_sim/tenants").await.status,
        200,
        "/_sim is never faulted"
    );
}

#[tokio::test]
async fn token_endpoint_and_sim_api_are_not_faulted_by_default() {
    let h = Harness::start(faulty("tenants=1,users=3", 21, |o| o.error_rate = 1.0)).await;
    for _ in 0..20 {
        h.token(0).await;
    }
    let tok = h.token(0).await;
    assert_eq!(h.get("/v1.0/users", &tok).await.status / 100, 5);
}

#[tokio::test]
async fn ghost_failures_are_applied_and_recorded_with_the_answered_status() {
    let h = Harness::start(faulty("tenants=1,users=101", 22, |o| o.ghost_rate = 0.3)).await;
    let tok = h.token(0).await;
    let ids = h
        .sim
        .tenant(&h.tenant(0).tenant_id)
        .unwrap()
        .users
        .keys()
        .cloned()
        .collect::<Vec<_>>();
    let mut answered = Vec::new();
    for id in &ids[..100] {
        let a = h
            .call("DELETE", &format!("/v1.0/users/{id}"), &tok, None)
            .await;
        answered.push((format!("/v1.0/users/{id}"), a.status));
    }
    let ghosts = answered.iter().filter(|(_, s)| *s != 204).count();
    assert!(
        (15..=45).contains(&ghosts),
        "{ghosts} ghosts in 100 at rate 0.3"
    );
    assert_eq!(
        h.sim.tenant(&h.tenant(0).tenant_id).unwrap().users.len(),
        1,
        "every change applied"
    );
    let effects: Vec<(String, u16)> = h
        .sim
        .effects(0)
        .into_iter()
        .map(|e| (e.path, e.status))
        .collect();
    assert_eq!(effects, answered);
}

#[tokio::test]
async fn resets_drop_connections_at_the_configured_rate() {
    let h = Harness::start(faulty("tenants=1,users=3", 23, |o| o.reset_rate = 0.25)).await;
    let tok = h.token(0).await;
    let mut dropped = 0;
    for _ in 0..200 {
        match h
            .http
            .get(h.url("/v1.0/organization"))
            .bearer_auth(&tok)
            .send()
            .await
        {
            Ok(r) => assert_eq!(r.status(), 200),
            Err(_) => dropped += 1,
        }
    }
    assert!(
        (25..=75).contains(&dropped),
        "{dropped} drops in 200 at rate 0.25"
    );
}

#[tokio::test]
async fn hung_requests_never_answer() {
    let h = Harness::start(faulty("tenants=1,users=3", 24, |o| o.hang_rate = 0.5)).await;
    let tok = h.token(0).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let calls = (0..40).map(|_| {
        client
            .get(h.url("/v1.0/organization"))
            .bearer_auth(&tok)
            .send()
    });
    let results = futures::future::join_all(calls).await;
    let timeouts = results
        .iter()
        .filter(|r| r.as_ref().err().is_some_and(reqwest::Error::is_timeout))
        .count();
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(timeouts + ok, 40);
    assert!(
        (10..=30).contains(&timeouts),
        "{timeouts} hangs in 40 at rate 0.5"
    );
}

#[tokio::test]
async fn latency_delays_answers() {
    let h = Harness::start(faulty("tenants=1,users=3", 25, |o| {
        o.latency = Duration::from_millis(30);
        o.jitter = Duration::from_millis(10);
    }))
    .await;
    let tok = h.token(0).await;
    let start = Instant::now();
    assert_eq!(h.get("/v1.0/organization", &tok).await.status, 200);
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(30), "{took:?}");
}

#[tokio::test]
async fn same_seed_same_faults() {
    async fn statuses(seed: u64) -> Vec<u16> {
        let h = Harness::start(faulty("tenants=1,users=3", 26, |o| {
            o.seed = seed;
            o.error_rate = 0.3;
            o.ghost_rate = 0.2;
        }))
        .await;
        let tok = h.token(0).await;
        let mut out = Vec::new();
        for _ in 0..60 {
            out.push(h.get("/v1.0/organization", &tok).await.status);
        }
        out
    }
    let a = statuses(1).await;
    assert_eq!(a, statuses(1).await);
    assert_ne!(a, statuses(2).await);
}
