//! What `closeout demo` shows: live progress (one line per saga, redrawn on a
//! terminal; periodic plain lines otherwise) and the final summary, read back
//! from the event log after the daemon stopped, with the simulator's effects
//! ledger compared against the changes the log recorded. Also writes the
//! audit reports by running this binary's `closeout audit`.

use crate::model::Timestamp;
use crate::runtime::control::SagaStatus;
use crate::saga::{Change, Event};
use crate::sim::Effect;
use crate::store::{self, Store};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// One saga's figures, from its events.
#[derive(Clone, Debug, Default)]
pub struct SagaFigures {
    /// Users whose deletion was recorded as applied.
    pub users_deleted: usize,
    /// Subscriptions closed: set through Partner Center by the saga, or
    /// deleted by the person at the admin-center gate.
    pub subscriptions: usize,
    /// Failed calls and reads recorded (each retried or resolved).
    pub failures: usize,
    /// Of those, answered 429.
    pub throttled: usize,
    /// From the first event to the last.
    pub duration: Duration,
}

/// The demo's summary.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Per saga, in status order: its last status row and figures.
    pub sagas: Vec<(SagaStatus, SagaFigures)>,
    /// Changes the simulator applied through its API (its effects ledger).
    pub ledger: usize,
    /// Admin-center actions the simulated operator took (not closeout's).
    pub operator: usize,
    /// Change outcomes the event log recorded with an HTTP call.
    pub log_changes: usize,
    /// Ledger effects whose method and path the log does not mention.
    pub ledger_missing: usize,
    /// Those effects, each as a sentence for the report.
    pub missing: Vec<String>,
}

/// Reads the stopped daemon's log in `data_dir` and compares it with the
/// simulator's `effects`.
pub async fn read(
    data_dir: &Path,
    rows: &[SagaStatus],
    effects: &[Effect],
) -> Result<Summary, store::Error> {
    let dir = data_dir.to_path_buf();
    let rows = rows.to_vec();
    let effects = effects.to_vec();
    tokio::task::spawn_blocking(move || read_blocking(&dir, rows, &effects))
        .await
        .map_err(|e| store::Error::WriterStopped(format!("read task failed: {e}")))?
}

fn read_blocking(
    dir: &Path,
    rows: Vec<SagaStatus>,
    effects: &[Effect],
) -> Result<Summary, store::Error> {
    // The stopped daemon's last tasks (a control connection noticing its
    // client left, the health pulse) drop their hold on the log a moment
    // after shutdown returns: wait for the lock, briefly.
    let mut tries = 0;
    let store = loop {
        match Store::open(dir) {
            Err(store::Error::Locked { .. }) if tries < 100 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            other => break other?,
        }
    };
    let mut seen: HashSet<(String, String)> = HashSet::new();
    let mut log_changes = 0;
    let mut sagas = Vec::new();
    for row in rows {
        let id = crate::model::SagaId(row.saga_id.clone());
        let mut fig = SagaFigures::default();
        let mut changes: HashMap<u32, Change> = HashMap::new();
        let mut subscriptions: HashSet<String> = HashSet::new();
        let (mut first, mut last) = (None::<Timestamp>, None::<Timestamp>);
        for record in store.saga_records(&id, store::FIRST_SEQ) {
            let record = record?;
            first.get_or_insert(record.at);
            last = Some(record.at);
            let Ok(event) = Event::decode(&record.payload) else {
                continue;
            };
            if let Some(http) = event.http() {
                seen.insert((http.method.clone(), http.path.clone()));
            }
            match event {
                Event::ChangeIntended {
                    change_id, change, ..
                } => {
                    changes.insert(change_id, change);
                }
                Event::ChangeApplied {
                    change_id, target, ..
                } => {
                    log_changes += 1;
                    match changes.get(&change_id) {
                        Some(Change::DeleteUser) => fig.users_deleted += 1,
                        Some(Change::SetSubscription { .. }) => {
                            subscriptions.insert(target);
                        }
                        _ => {}
                    }
                }
                // A delete whose answer was lost (a ghost 5xx, a dropped
                // connection) and that a read then found applied.
                Event::InDoubtResolved {
                    change: Change::DeleteUser,
                    applied,
                    ..
                } => fig.users_deleted += applied.len(),
                Event::ChangeFailed { http, .. } => {
                    log_changes += 1;
                    fig.failures += 1;
                    fig.throttled += usize::from(http.status == 429);
                }
                Event::ReadFailed { error, .. } => {
                    fig.failures += 1;
                    fig.throttled += usize::from(error.code.contains("429"));
                }
                _ => {}
            }
        }
        // Partner Center changes are in the log; admin-center ones were made
        // by the (simulated) person at the gate.
        let by_operator = effects
            .iter()
            .filter(|e| {
                e.tenant_id == row.tenant_id
                    && e.path.contains("/operator/subscriptions/")
                    && e.path.ends_with("/delete")
            })
            .count();
        fig.subscriptions = subscriptions.len() + by_operator;
        if let (Some(a), Some(b)) = (first, last) {
            fig.duration = Duration::from_millis(b.0.saturating_sub(a.0));
        }
        sagas.push((row, fig));
    }
    // The simulator's own operator (admin-center actions, the clock) is not
    // closeout: only the service's API calls are compared.
    let (operator, service): (Vec<&Effect>, Vec<&Effect>) =
        effects.iter().partition(|e| e.path.starts_with("/_sim/"));
    let missing: Vec<String> = service
        .iter()
        .filter(|e| !seen.contains(&(e.method.clone(), e.path.clone())))
        .map(|e| {
            format!(
                "{} {} {} (answered {})",
                e.tenant_id, e.method, e.path, e.status
            )
        })
        .collect();
    let ledger_missing = missing.len();
    Ok(Summary {
        sagas,
        ledger: service.len(),
        operator: operator.len(),
        log_changes,
        ledger_missing,
        missing,
    })
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

fn line(r: &SagaStatus) -> String {
    let step = r.step.map(|s| format!("step {s}")).unwrap_or_default();
    let bar_len = 20usize;
    let filled = (r.progress.done * bar_len)
        .checked_div(r.progress.total)
        .unwrap_or(0)
        .min(bar_len);
    let waiting = r
        .waiting_for
        .as_deref()
        .map(|w| format!(" · {w}"))
        .unwrap_or_default();
    let mut text = format!(
        "  {:<38} {:<12} {:<7} [{}{}] {}/{}{}",
        short(&r.tenant_id),
        r.state.as_str(),
        step,
        "#".repeat(filled),
        ".".repeat(bar_len - filled),
        r.progress.done,
        r.progress.total,
        waiting
    );
    text.truncate(
        text.char_indices()
            .nth(110)
            .map(|(i, _)| i)
            .unwrap_or(text.len()),
    );
    text
}

fn short(tenant: &str) -> &str {
    tenant
}

/// Redraws the progress lines on a terminal (`drawn`: lines drawn last time).
pub fn redraw(rows: &[SagaStatus], drawn: &mut usize, elapsed: Duration) {
    let mut out = std::io::stdout().lock();
    if *drawn > 0 {
        let _ = write!(out, "\x1b[{}A", *drawn);
    }
    let _ = writeln!(out, "\x1b[2K  {} elapsed", secs(elapsed));
    for r in rows {
        let _ = writeln!(out, "\x1b[2K{}", line(r));
    }
    let _ = out.flush();
    *drawn = rows.len() + 1;
}

/// One plain progress block (not a terminal: a log file, a pipe).
pub fn plain(rows: &[SagaStatus], elapsed: Duration) {
    let done = rows.iter().filter(|r| r.state.is_terminal()).count();
    println!("[{}] {done}/{} sagas finished", secs(elapsed), rows.len());
    for r in rows {
        println!("{}", line(r));
    }
}

/// Prints the final summary.
pub fn print(s: &Summary, elapsed: Duration) {
    println!("\nsummary ({} in all)", secs(elapsed));
    println!(
        "  {:<38} {:<12} {:>7} {:>5} {:>8} {:>9} {:>9}",
        "tenant", "state", "users", "subs", "duration", "failures", "throttled"
    );
    for (row, f) in &s.sagas {
        println!(
            "  {:<38} {:<12} {:>7} {:>5} {:>8} {:>9} {:>9}",
            row.tenant_id,
            format!("{:?}", row.state).to_lowercase(),
            f.users_deleted,
            f.subscriptions,
            secs(f.duration),
            f.failures,
            f.throttled
        );
        if let Some(e) = &row.last_error {
            println!("      last error: {e}");
        }
    }
    println!(
        "  effects ledger: {} changes made through the API (+{} by the simulated operator); event log: {} change outcomes; ledger changes missing from the log: {}",
        s.ledger, s.operator, s.log_changes, s.ledger_missing
    );
    for m in s.missing.iter().take(5) {
        println!("      not in the log: {m}");
    }
}

/// Writes `audit --format html` and `text` into `dir` by running this
/// binary; says how to do it by hand when that fails.
pub fn audit(dir: &Path, data_dir: &Path) {
    let exe = std::env::current_exe().unwrap_or_else(|_| "closeout".into());
    for (format, file) in [("html", "audit.html"), ("text", "audit.txt")] {
        let out = dir.join(file);
        let status = std::process::Command::new(&exe)
            .arg("audit")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--format", format, "--output"])
            .arg(&out)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        if matches!(status, Ok(s) if s.success()) {
            println!("  audit report ({format}): {}", out.display());
        } else {
            println!(
                "  audit report ({format}): run closeout audit --data-dir {} --format {format}",
                data_dir.display()
            );
        }
    }
    // The anchor: kept elsewhere, it lets `verify --expect-head` show later
    // that this log was neither rolled back nor rewritten.
    let verified = std::process::Command::new(&exe)
        .arg("verify")
        .arg("--data-dir")
        .arg(data_dir)
        .stderr(std::process::Stdio::null())
        .output();
    if let Ok(out) = verified {
        let text = String::from_utf8_lossy(&out.stdout);
        if let Some(head) = text.lines().find_map(|l| l.strip_prefix("head: ")) {
            println!("  event log head (keep it for closeout verify --expect-head): {head}");
        }
    }
}
