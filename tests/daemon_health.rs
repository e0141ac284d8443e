//! `closeout status --health` against the real daemon: 0 while it is
//! recovered and its loop turns; non-zero when no daemon runs and while the
//! daemon is stopped (SIGSTOP: its loop and control socket do not answer);
//! 0 again once it continues.

mod support;

use std::process::Output;
use std::time::{Duration, Instant};
use support::{Daemon, Env, Sim};

fn health(env: &Env) -> Output {
    env.cli("status", &["--health"])
}

fn text(out: &Output) -> String {
    format!(
        "exit {}; stdout: {}; stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn health_reflects_a_stopped_loop() {
    let sim = Sim::start(&["--generate", "tenants=1,users=2"]);
    let env = Env::new(&sim, Default::default());

    let out = health(&env);
    assert_eq!(out.status.code(), Some(1), "no daemon: {}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no closeout daemon"),
        "{}",
        text(&out)
    );

    let mut daemon = Daemon::start(&env);
    let out = health(&env);
    assert!(out.status.success(), "running: {}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(": healthy"),
        "{}",
        text(&out)
    );

    daemon.signal("STOP");
    let asked = Instant::now();
    let out = health(&env);
    daemon.signal("CONT");
    assert_eq!(out.status.code(), Some(1), "stopped: {}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("did not answer"),
        "{}",
        text(&out)
    );
    assert!(
        asked.elapsed() < Duration::from_secs(15),
        "the check is bounded: {:?}",
        asked.elapsed()
    );

    // Continued, it answers healthy again (its pulse resumes within a second).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = health(&env);
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not healthy again after SIGCONT: {}\n{}",
            text(&out),
            daemon.tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    daemon.signal("TERM");
    assert!(daemon.wait_exit(Duration::from_secs(5)).success());
    let out = health(&env);
    assert_eq!(out.status.code(), Some(1), "stopped daemon: {}", text(&out));
}
