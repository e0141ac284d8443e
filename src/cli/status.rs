//! `closeout status [--json] [--watch] [SAGA]`: where the sagas stand.
//!
//! A table by default; `--json` prints exactly the documented array (README);
//! `--watch` redraws the table with progress bars on a terminal (plain lines
//! for changed rows otherwise) until every saga shown is terminal.

use super::common::{block_on, call, connect, unexpected, ConfigArg};
use super::Error;
use crate::runtime::control::{Client, Request, Response, SagaStatus};
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

/// Arguments of `closeout status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArg,
    /// Print a JSON array (saga_id, tenant_id, state, step, progress,
    /// last_error, updated_at, waiting_for, and action_required when a
    /// person must act).
    #[arg(long, conflicts_with = "watch")]
    json: bool,
    /// Keep redrawing until every saga shown has finished.
    #[arg(long)]
    watch: bool,
    /// Exit 0 when the daemon is recovered, its event log writable and its
    /// loop alive; 1 otherwise (for monitoring checks).
    #[arg(long, conflicts_with_all = ["json", "watch", "saga"])]
    health: bool,
    /// Only this saga (its id); every saga when absent.
    #[arg(value_name = "SAGA")]
    saga: Option<String>,
}

/// How often `--watch` asks the daemon.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// Runs `closeout status`.
pub fn run(args: Args) -> Result<(), Error> {
    let (_, config) = args.config.load()?;
    block_on(async {
        let mut client = connect(&config).await?;
        if args.health {
            return health(&mut client).await;
        }
        let rows = fetch(&mut client, &args.saga).await?;
        let mut out = std::io::stdout().lock();
        if args.json {
            let json = serde_json::to_string_pretty(&rows)
                .map_err(|e| Error::Failed(anyhow::anyhow!("cannot encode status: {e}")))?;
            let _ = writeln!(out, "{json}");
            return Ok(());
        }
        if !args.watch {
            let _ = out.write_all(table(&rows, false).as_bytes());
            return Ok(());
        }
        let tty = std::io::stdout().is_terminal();
        let mut seen: HashMap<String, SagaStatus> = HashMap::new();
        let mut rows = rows;
        loop {
            if tty {
                let _ = write!(out, "\x1b[H\x1b[2J{}", table(&rows, true));
            } else {
                for r in &rows {
                    if seen.get(&r.saga_id) != Some(r) {
                        let _ = out.write_all(
                            table(std::slice::from_ref(r), false)
                                .lines()
                                .nth(1)
                                .unwrap_or("")
                                .as_bytes(),
                        );
                        let _ = out.write_all(b"\n");
                        seen.insert(r.saga_id.clone(), r.clone());
                    }
                }
            }
            let _ = out.flush();
            if !rows.is_empty() && rows.iter().all(|r| r.state.is_terminal()) {
                return Ok(());
            }
            tokio::time::sleep(WATCH_EVERY).await;
            rows = fetch(&mut client, &args.saga).await?;
        }
    })?
}

async fn fetch(client: &mut Client, saga: &Option<String>) -> Result<Vec<SagaStatus>, Error> {
    match call(client, &Request::Status { saga: saga.clone() }).await? {
        Response::Status { rows } => Ok(rows),
        other => Err(unexpected(other)),
    }
}

/// The status table: a header line and one line per saga.
pub fn table(rows: &[SagaStatus], bars: bool) -> String {
    let mut s = format!(
        "{:<36}  {:<36}  {:<12}  {:<4}  {:<22}  {:<24}  {}\n",
        "SAGA", "TENANT", "STATE", "STEP", "PROGRESS", "UPDATED", "NOTE"
    );
    for r in rows {
        let step = r
            .step
            .map(|s| format!("{s}/5"))
            .unwrap_or_else(|| "-".into());
        let progress = if bars {
            bar(r.progress.done, r.progress.total)
        } else {
            format!("{}/{}", r.progress.done, r.progress.total)
        };
        let note = r
            .waiting_for
            .as_deref()
            .map(|w| format!("waiting for: {w}"))
            .or_else(|| r.last_error.as_deref().map(|e| format!("last error: {e}")))
            .unwrap_or_default();
        // Tenant ids, errors and waits quote what services and tenants
        // said: escaped, so they neither drive the terminal nor add rows.
        let row = format!(
            "{:<36}  {:<36}  {:<12}  {:<4}  {:<22}  {:<24}  {}",
            r.saga_id,
            r.tenant_id,
            r.state.as_str(),
            step,
            progress,
            r.updated_at.to_rfc3339(),
            note
        );
        s.push_str(&crate::escape::text(&row));
        s.push('\n');
        if let Some(required) = &r.action_required {
            s.push_str(&action_lines(required));
        }
    }
    s
}

/// The indented lines under a saga's row that say what a person must do.
fn action_lines(required: &crate::saga::ActionRequired) -> String {
    let mut lines = vec![format!(
        "    action required: {} (where: {})",
        required.what, required.place
    )];
    for sub in &required.subscriptions {
        let status = serde_json::to_value(sub.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let place = sub
            .place
            .as_ref()
            .map(|p| format!(": {p}"))
            .unwrap_or_default();
        lines.push(format!(
            "      {} subscription {} (id {}, now {status}){place}",
            sub.action, sub.sku, sub.id
        ));
    }
    for failing in &required.failing_preconditions {
        lines.push(format!("      still failing: {failing}"));
    }
    let mut s = String::new();
    for line in lines {
        s.push_str(&crate::escape::text(&line));
        s.push('\n');
    }
    s
}

/// How long `--health` waits for the daemon's answer: a daemon that does not
/// answer (stopped, hung) is unhealthy.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// Asks the daemon for its health: a line on stdout, exit 1 when unhealthy
/// or silent for [`HEALTH_TIMEOUT`].
async fn health(client: &mut Client) -> Result<(), Error> {
    let answer = tokio::time::timeout(HEALTH_TIMEOUT, call(client, &Request::Health))
        .await
        .map_err(|_| {
            Error::Failed(anyhow::anyhow!(
                "the daemon did not answer within {HEALTH_TIMEOUT:?}: its loop is stopped or hung"
            ))
        })?;
    match answer? {
        Response::Health(h) => {
            let state = if h.healthy { "healthy" } else { "unhealthy" };
            println!(
                "closeout {} (pid {}, up since {}): {state}",
                h.version, h.pid, h.started_at
            );
            if h.healthy {
                Ok(())
            } else if !h.dead_tasks.is_empty() {
                let list: Vec<String> = (h.dead_tasks.iter())
                    .map(|(saga, why)| format!("saga {saga}: {why}"))
                    .collect();
                Err(Error::Failed(anyhow::anyhow!(
                    "the daemon is unhealthy: {} saga task(s) stopped without their saga ending ({}); see closeout status, then resume or abort them",
                    list.len(),
                    list.join("; ")
                )))
            } else {
                Err(Error::Failed(anyhow::anyhow!(
                    "the daemon is unhealthy: its event log does not take writes or its loop has stalled"
                )))
            }
        }
        other => Err(unexpected(other)),
    }
}

/// `[#######.......] 7/14` in 22 columns or fewer (for totals under 10^4).
fn bar(done: usize, total: usize) -> String {
    const WIDTH: usize = 12;
    let filled = (done.min(total) * WIDTH).checked_div(total).unwrap_or(0);
    format!(
        "[{}{}] {done}/{total}",
        "#".repeat(filled),
        ".".repeat(WIDTH - filled)
    )
}
