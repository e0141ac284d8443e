//! Benchmark of the Graph client against the in-process simulator.
//!
//! - `graph.budget_10k_s`: 10,000 users of one tenant deleted through
//!   `delete_users` (which sends each item once, see `graph::bulk`), the
//!   throttled items sent again after their `Retry-After` as the saga
//!   does it (here without recording), with the simulator's
//!   (app, tenant) write budget scaled down to 3,000 per 15 s;
//!   `graph.budget_floor_s` is the least time that budget allows (a full
//!   bucket, then its refill rate: (10,000 - 3,000) / 200 per s = 35 s);
//!   `graph.budget_throttled_pct` is the share of item answers that were 429.
//!   Target: time <= 1.1 x floor, <= 2% 429s.
//! - `graph.concurrent_2k_s` / `graph.sequential_2k_s`: 2,000 users deleted
//!   with 20 ms latency per request and generous limits, by `delete_users`
//!   versus one plain `DELETE` at a time waiting for each answer (as admin
//!   scripts do), in the same run. Target: >= 20x.
//!
//! `CLOSEOUT_BENCH_QUICK=1` shrinks it to 2,000 users on a 1,000 / 5 s
//! budget (same 200/s refill, floor 5 s) and 200 users for the latency pair.

use closeout::graph::{Client, ClientOptions, Endpoints, TenantClient};
use closeout::model::{Applied, Secret};
use closeout::ports::TenantApi;
use closeout::sim::throttle::Budget;
use closeout::sim::{GenerateSpec, Options, Sim, SimHandle};
use std::time::{Duration, Instant};

async fn start(users: usize, tenants: usize, tweak: impl FnOnce(&mut Options)) -> SimHandle {
    let spec: GenerateSpec = format!("tenants={tenants},users={},admins=0", users + 1)
        .parse()
        .expect("spec");
    let mut o = Options {
        fixture: closeout::sim::generate::generate(&spec, 1),
        ..Options::default()
    };
    tweak(&mut o);
    Sim::start(o).await.expect("sim")
}

fn tenant(sim: &SimHandle, n: usize) -> (TenantClient, Vec<String>) {
    let base = url::Url::parse(&sim.base_url()).expect("url");
    let client = Client::new(Endpoints::all_at(&base), ClientOptions::default()).expect("client");
    let info = &sim.tenants()[n];
    let t = client.tenant(
        &info.tenant_id,
        &info.client_id,
        Secret::new(info.client_secret.clone()),
    );
    let state = sim.tenant(&info.tenant_id).expect("tenant");
    let ids = state
        .users
        .iter()
        .filter(|(_, u)| !info.keep.contains(&u.user_principal_name))
        .map(|(id, _)| id.clone())
        .collect();
    (t, ids)
}

/// Deletes `ids` as a saga's retries would: each round sends what is left
/// through `delete_users`, waits out the longest `Retry-After` of the items
/// refused, and sends those again (a delete found gone answers 404, done).
async fn delete_all(
    t: &TenantClient,
    ids: &[String],
) -> Vec<(String, closeout::model::WriteOutcome)> {
    let mut done = Vec::with_capacity(ids.len());
    let mut left: Vec<String> = ids.to_vec();
    for _ in 0..10_000 {
        if left.is_empty() {
            break;
        }
        let out = t.delete_users(&left).await;
        let mut again = Vec::new();
        let mut wait = Duration::ZERO;
        for (id, o) in out {
            match &o.result {
                Err(e) if e.retry_after.is_some() || e.code == "TooManyRequests" => {
                    wait = wait.max(e.retry_after.unwrap_or(Duration::from_millis(10)));
                    again.push(id);
                }
                _ => done.push((id, o)),
            }
        }
        left = again;
        if !left.is_empty() {
            tokio::time::sleep(wait).await;
        }
    }
    done
}

fn check(out: &[(String, closeout::model::WriteOutcome)]) {
    let failed: Vec<_> = out
        .iter()
        .filter(|(_, o)| !matches!(o.result, Ok(Applied::Done | Applied::AlreadyDone)))
        .collect();
    assert!(
        failed.is_empty(),
        "{} deletes failed, e.g. {:?}",
        failed.len(),
        failed.first()
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let quick = std::env::var("CLOSEOUT_BENCH_QUICK").is_ok_and(|v| v == "1");
    let (users, limit, window) = if quick {
        (2_000usize, 1_000.0, Duration::from_secs(5))
    } else {
        (10_000usize, 3_000.0, Duration::from_secs(15))
    };

    // Budget: one tenant, the write bucket scaled down.
    let sim = start(users, 1, |o| o.write_limit = Some(Budget { limit, window })).await;
    let (t, ids) = tenant(&sim, 0);
    assert_eq!(ids.len(), users);
    let started = Instant::now();
    let out = delete_all(&t, &ids).await;
    let took = started.elapsed().as_secs_f64();
    check(&out);
    let stats = t.stats();
    let floor = (users as f64 - limit) / (limit / window.as_secs_f64());
    println!("bench graph.budget_10k_s {took:.2} s");
    println!("bench graph.budget_floor_s {floor:.2} s");
    println!(
        "bench graph.budget_throttled_pct {:.2} %",
        100.0 * stats.throttled as f64 / stats.answered.max(1) as f64
    );
    eprintln!(
        "budget: {} answers, {} throttled, ratio to floor {:.3}",
        stats.answered,
        stats.throttled,
        took / floor
    );
    sim.shutdown().await;

    // Latency: 20 ms per request, generous limits.
    let n = if quick { 200 } else { 2_000 };
    let runs = if quick { 1 } else { 3 };
    let mut concurrent = Vec::new();
    let mut sequential = 0.0;
    for run in 0..runs {
        let sim = start(n, 2, |o| {
            o.latency = Duration::from_millis(20);
            o.write_limit = Some(Budget {
                limit: 1e6,
                window: Duration::from_secs(1),
            });
        })
        .await;
        let (t, ids) = tenant(&sim, 0);
        let started = Instant::now();
        let out = delete_all(&t, &ids).await;
        concurrent.push(started.elapsed().as_secs_f64());
        check(&out);
        if run == 0 {
            let (t, ids) = tenant(&sim, 1);
            let started = Instant::now();
            for id in &ids {
                let o = t.delete_user(id).await;
                assert_eq!(o.result, Ok(Applied::Done), "{id}");
            }
            sequential = started.elapsed().as_secs_f64();
        }
        sim.shutdown().await;
    }
    let concurrent = median(concurrent);
    println!("bench graph.concurrent_2k_s {concurrent:.3} s");
    println!("bench graph.sequential_2k_s {sequential:.2} s");
    eprintln!("speed-up {:.1}x", sequential / concurrent);
}
