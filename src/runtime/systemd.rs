//! sd_notify: tells systemd (a `Type=notify` unit) that the daemon is ready,
//! alive, or stopping, over the datagram socket named by `$NOTIFY_SOCKET`
//! (a path, or `@name` in the abstract namespace).
//!
//! The watchdog is fed from the main loop's heartbeat, not from a free-running
//! timer: [`Notifier::watchdog_task`] pings at half of `WATCHDOG_USEC` only
//! while [`Heartbeat::beat`] keeps being called, so a stuck loop stops the
//! pings and systemd restarts the daemon.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Where notifications go; a no-op when the daemon is not run by systemd.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    /// The notify socket address, none when `$NOTIFY_SOCKET` is unset.
    target: Option<Target>,
    /// The watchdog period systemd asked for (`WATCHDOG_USEC`), if any.
    watchdog: Option<Duration>,
}

#[derive(Debug, Clone)]
enum Target {
    /// A socket file's path (a `$NOTIFY_SOCKET` not starting with `@`).
    Path(PathBuf),
    /// An abstract-namespace name (given as `@name`).
    Abstract(Vec<u8>),
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID` (the
    /// watchdog applies only if meant for this process).
    pub fn from_env() -> Notifier {
        let socket = std::env::var_os("NOTIFY_SOCKET");
        let usec = std::env::var("WATCHDOG_USEC").ok();
        let pid_ok = std::env::var("WATCHDOG_PID")
            .ok()
            .is_none_or(|p| p.trim() == std::process::id().to_string());
        let watchdog = usec
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|&u| u > 0 && pid_ok)
            .map(Duration::from_micros);
        Notifier::new(socket.as_deref().and_then(|s| s.to_str()), watchdog)
    }

    /// A notifier for an explicit socket address (`@name` for abstract).
    pub fn new(socket: Option<&str>, watchdog: Option<Duration>) -> Notifier {
        let target = socket
            .filter(|s| !s.is_empty())
            .map(|s| match s.strip_prefix('@') {
                Some(name) => Target::Abstract(name.as_bytes().to_vec()),
                None => Target::Path(PathBuf::from(s)),
            });
        Notifier { target, watchdog }
    }

    /// Whether systemd listens.
    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// The watchdog period, if systemd set one.
    pub fn watchdog_period(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Sends `READY=1` with a status line.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    /// Sends `STOPPING=1`.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping");
    }

    /// Sends `RELOADING=1`... then the caller sends [`Notifier::ready`] again.
    pub fn reloading(&self) {
        self.send("RELOADING=1");
    }

    /// Sends `STATUS=...` (shown by `systemctl status`).
    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={}", one_line(status)));
    }

    /// Sends `WATCHDOG=1`.
    pub fn watchdog_ping(&self) {
        self.send("WATCHDOG=1");
    }

    /// Sends one message; failures are logged, never fatal (systemd going
    /// away must not take the daemon down).
    pub fn send(&self, message: &str) {
        let Some(target) = &self.target else { return };
        if let Err(e) = send_to(target, message.as_bytes()) {
            tracing::warn!(error = %e, "sd_notify failed");
        }
    }

    /// Pings the watchdog at half its period for as long as `heartbeat` shows
    /// the main loop alive (a beat within the last period). Returns at once
    /// when no watchdog is configured.
    pub async fn watchdog_task(self, heartbeat: Heartbeat) {
        let Some(period) = self.watchdog.filter(|_| self.enabled()) else {
            return;
        };
        let mut tick = tokio::time::interval(period / 2);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if heartbeat.age() < period {
                self.watchdog_ping();
            } else {
                tracing::error!(
                    stalled_for = ?heartbeat.age(),
                    "main loop stalled: withholding the watchdog ping"
                );
            }
        }
    }
}

fn one_line(s: &str) -> String {
    s.replace('\n', " ")
}

fn send_to(target: &Target, msg: &[u8]) -> std::io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    // Never block the async main loop: when the receiver's queue is full
    // (a notify socket nobody reads), the message is dropped and logged.
    sock.set_nonblocking(true)?;
    match target {
        Target::Path(p) => sock.send_to(msg, p).map(|_| ()),
        Target::Abstract(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(msg, &addr).map(|_| ())
        }
    }
}

/// The main loop's sign of life, shared with the watchdog task.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    /// When the heartbeat was created.
    origin: Instant,
    /// Milliseconds after `origin` of the last beat.
    last: Arc<AtomicU64>,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat {
            origin: Instant::now(),
            last: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl Heartbeat {
    /// Records that the main loop is alive now.
    pub fn beat(&self) {
        let ms = self.origin.elapsed().as_millis() as u64;
        self.last.store(ms, Ordering::Relaxed);
    }

    /// Time since the last beat.
    pub fn age(&self) -> Duration {
        let now = self.origin.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last.load(Ordering::Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_a_path_and_to_an_abstract_address() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let rx = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::new(path.to_str(), None);
        n.ready("recovered 0 sagas");
        let mut buf = [0u8; 256];
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=recovered 0 sagas");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("closeout-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        Notifier::new(Some(&format!("@{name}")), None).stopping();
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"STOPPING=1\nSTATUS=stopping");
    }

    #[tokio::test(start_paused = true)]
    async fn watchdog_pings_only_while_the_loop_beats() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let rx = UnixDatagram::bind(&path).unwrap();
        rx.set_nonblocking(true).unwrap();
        let hb = Heartbeat::default();
        let n = Notifier::new(path.to_str(), Some(Duration::from_secs(10)));
        let task = tokio::spawn(n.watchdog_task(hb.clone()));
        let mut buf = [0u8; 64];
        let mut pinged = || match rx.recv(&mut buf) {
            Ok(len) => {
                assert_eq!(&buf[..len], b"WATCHDOG=1");
                true
            }
            Err(_) => false,
        };
        // Ticks at 0s and 5s: the loop beat at 0s, so both ping.
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(pinged());
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(pinged());
        assert!(!pinged());
        // Tick at 10s: no beat for a whole period, so no ping.
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!pinged());
        // The loop beats again: the 15s tick pings.
        hb.beat();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(pinged());
        task.abort();
    }
}
