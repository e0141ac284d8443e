//! Benchmark of `closeout audit --format jsonl` and `closeout verify` on a
//! large log built from real saga events through the real store.
//!
//! Prints `bench audit.jsonl_events_per_s`, `bench audit.jsonl_peak_rss_mb`
//! (peak resident memory of the export process, sampled from
//! `/proc/<pid>/status` `VmHWM`) and `bench audit.verify_events_per_s`.
//! Both commands run as the real `closeout` binary in a child process.
//! `CLOSEOUT_BENCH_QUICK=1` shrinks the log from 1,000,000 events to 50,000.
//!
//! Baseline in the same run: sled alone scanning the same records (this
//! bench re-run as a child with `CLOSEOUT_BENCH_SLED_SCAN=<sled dir>`, the
//! page cache as small as the export's), printed as `sled.scan_events_per_s`
//! and `sled.scan_peak_rss_mb`: what any reader of this database pays.

#[path = "../tests/audit_support/mod.rs"]
mod audit_support;

use audit_support::{build, events, Script};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Runs `closeout args`, stdout to /dev/null; returns its wall time and peak RSS (kB).
fn run(args: &[&str]) -> (Duration, u64) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_closeout"));
    cmd.args(args);
    measure(cmd, args)
}

/// The bare sled scan: every block's key and value, split into its records
/// (their lengths only), nothing decoded.
fn sled_scan(dir: &str) -> u64 {
    use closeout::store::{blocks, layout};
    let db = sled::Config::new()
        .path(dir)
        .cache_capacity(4 << 20)
        .open()
        .expect("sled open");
    let (mut n, mut bytes) = (0u64, 0u64);
    for item in db.range([layout::BLOCK]..[layout::BLOCK + 1]) {
        let (_, v) = item.expect("sled read");
        for frame in blocks::frames(&v) {
            let (_, len) = frame.expect("a sound block");
            n += 1;
            bytes += len as u64;
        }
    }
    eprintln!("sled scan: {n} records, {bytes} bytes");
    n
}

/// Runs `cmd`, stdout to /dev/null; returns its wall time and peak RSS (kB).
fn measure(mut cmd: Command, what: &[&str]) -> (Duration, u64) {
    let devnull = std::fs::File::create("/dev/null").expect("/dev/null");
    let start = Instant::now();
    let mut child = cmd
        .stdout(devnull)
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn closeout");
    let pid = child.id();
    let mut peak = 0;
    loop {
        if let Some(kb) = vm_hwm_kb(pid) {
            peak = peak.max(kb);
        }
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "{what:?} failed");
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    (start.elapsed(), peak)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if let Some(dir) = std::env::var_os("CLOSEOUT_BENCH_SLED_SCAN") {
        let expected = std::env::var("CLOSEOUT_BENCH_SLED_SCAN_RECORDS").ok();
        let n = sled_scan(dir.to_str().expect("utf-8 path"));
        // A baseline that scanned something else is no baseline.
        assert_eq!(Some(n.to_string()), expected, "records scanned");
        return;
    }
    let quick = std::env::var("CLOSEOUT_BENCH_QUICK").is_ok_and(|v| v == "1");
    let target: usize = if quick { 50_000 } else { 1_000_000 };
    let dir = tempfile::tempdir().expect("tempdir");
    let dir_path = std::env::var_os("CLOSEOUT_BENCH_AUDIT_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.path().to_path_buf());
    let build_start = Instant::now();
    // Sagas of 400 users each (about 500 events, throttled every 50th
    // deletion), appended 8 sagas at a time, interleaved, until the target.
    let (mut records, mut entries, mut n) = (0usize, 0usize, 0usize);
    while records < target {
        let mut group = Vec::new();
        for _ in 0..8 {
            let mut s = Script::new(
                &format!("saga-{n:05}"),
                &format!("tenant{n:05}.onmicrosoft.com"),
                400,
            );
            s.throttle_every = Some(50);
            s.in_doubt = n % 3 == 0;
            n += 1;
            let ev = events(&s);
            records += ev.len();
            entries += ev.iter().map(audit_support::entries_of).sum::<usize>();
            group.push((s.saga_id.clone(), ev));
        }
        build(&dir_path, &group, 256);
    }
    eprintln!(
        "built {records} records ({entries} audit entries, {n} sagas) in {:.1}s",
        build_start.elapsed().as_secs_f64()
    );
    let d = dir_path.to_str().expect("utf-8 path");
    let runs = if quick { 1 } else { 3 };
    let (mut jsonl, mut rss, mut verify) = (Vec::new(), Vec::new(), Vec::new());
    let (mut scan, mut scan_rss) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let mut cmd = Command::new(std::env::current_exe().expect("this bench's path"));
        cmd.env(
            "CLOSEOUT_BENCH_SLED_SCAN",
            dir_path.join(closeout::store::SLED_DIR),
        );
        cmd.env("CLOSEOUT_BENCH_SLED_SCAN_RECORDS", records.to_string());
        let (t, peak) = measure(cmd, &["sled scan"]);
        scan.push(records as f64 / t.as_secs_f64());
        scan_rss.push(peak as f64 / 1024.0);
        let (t, peak) = run(&["audit", "--data-dir", d, "--format", "jsonl"]);
        jsonl.push(records as f64 / t.as_secs_f64());
        rss.push(peak as f64 / 1024.0);
        let (t, _) = run(&["verify", "--data-dir", d]);
        verify.push(records as f64 / t.as_secs_f64());
    }
    println!(
        "bench audit.jsonl_events_per_s {:.0} events/s",
        median(jsonl)
    );
    println!("bench audit.jsonl_peak_rss_mb {:.1} MB", median(rss));
    println!(
        "bench audit.verify_events_per_s {:.0} events/s",
        median(verify)
    );
    println!("bench sled.scan_events_per_s {:.0} events/s", median(scan));
    println!("bench sled.scan_peak_rss_mb {:.1} MB", median(scan_rss));
}
