//! `closeout sim` throughput: simple Graph GETs and DELETEs from a concurrent
//! client over loopback, faults and throttling off. Prints
//! `bench sim.requests_per_s <value> req/s` (and the GET and DELETE figures
//! separately). `CLOSEOUT_BENCH_QUICK=1` shrinks it to a few seconds.

use closeout::sim::{self, Options};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CONCURRENCY: usize = 32;

async fn token(http: &reqwest::Client, base: &str, t: &sim::TenantInfo) -> String {
    let v: serde_json::Value = http
        .post(format!("{base}/{}/oauth2/v2.0/token", t.tenant_id))
        .form(&[
            ("client_id", t.client_id.as_str()),
            ("client_secret", t.client_secret.as_str()),
            ("grant_type", "client_credentials"),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token json");
    v["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// Runs `urls` with CONCURRENCY workers; returns requests per second.
async fn drive(
    http: &reqwest::Client,
    tok: &str,
    method: reqwest::Method,
    urls: Vec<String>,
    expect: u16,
) -> f64 {
    let urls = Arc::new(urls);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (http, tok, urls, next, method) = (
                http.clone(),
                tok.to_string(),
                urls.clone(),
                next.clone(),
                method.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(url) = urls.get(i) else { return };
                    let r = http
                        .request(method.clone(), url)
                        .bearer_auth(&tok)
                        .send()
                        .await
                        .expect("request");
                    assert_eq!(r.status().as_u16(), expect, "{url}");
                    let _ = r.bytes().await;
                }
            })
        })
        .collect();
    for w in workers {
        w.await.expect("worker");
    }
    urls.len() as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let quick = std::env::var("CLOSEOUT_BENCH_QUICK").is_ok_and(|v| v == "1");
    let (runs, per_run) = if quick { (3, 3_000) } else { (5, 20_000) };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let spec = sim::GenerateSpec {
            tenants: 1,
            users: runs * per_run + 10,
            ..Default::default()
        };
        let options = Options {
            fixture: sim::fixture::generate(&spec, 1),
            throttling: false,
            ..Options::default()
        };
        let handle = sim::Sim::start(options).await.expect("sim");
        let base = handle.base_url();
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(CONCURRENCY)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        let t = handle.tenants()[0].clone();
        let tok = token(&http, &base, &t).await;
        let ids: Vec<String> = handle
            .tenant(&t.tenant_id)
            .expect("tenant")
            .users
            .keys()
            .cloned()
            .collect();
        let (mut gets, mut deletes, mut all) = (Vec::new(), Vec::new(), Vec::new());
        for run in 0..runs {
            let slice = &ids[run * per_run..(run + 1) * per_run];
            let get_urls: Vec<String> = slice
                .iter()
                .map(|id| format!("{base}/v1.0/users/{id}"))
                .collect();
            let del_urls: Vec<String> = slice
                .iter()
                .map(|id| format!("{base}/v1.0/users/{id}"))
                .collect();
            let g = drive(&http, &tok, reqwest::Method::GET, get_urls, 200).await;
            let d = drive(&http, &tok, reqwest::Method::DELETE, del_urls, 204).await;
            gets.push(g);
            deletes.push(d);
            all.push(2.0 / (1.0 / g + 1.0 / d));
        }
        assert_eq!(
            handle.effects(0).len(),
            runs * per_run,
            "every delete recorded"
        );
        println!("bench sim.requests_per_s {:.0} req/s", median(all));
        println!("bench sim.get_per_s {:.0} req/s", median(gets));
        println!("bench sim.delete_per_s {:.0} req/s", median(deletes));
        handle.shutdown().await;
    });
}
