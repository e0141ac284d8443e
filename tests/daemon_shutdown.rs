//! Graceful shutdown end to end: SIGTERM mid-closure exits 0 within a few
//! seconds with nothing in doubt in the log, sd_notify says READY=1 after
//! recovery and STOPPING=1 on shutdown, and a restarted daemon finishes.

mod support;

use std::time::{Duration, Instant};
use support::{all_terminal, store_events, wait_status, Daemon, Env, Sim};

#[test]
fn sigterm_mid_closure_exits_cleanly_and_a_restart_finishes() {
    let sim = Sim::start(&[
        "--generate",
        "tenants=3,users=60,direct=0.5",
        "--seed",
        "8",
        "--latency",
        "15ms",
        "--auto-operator",
        "200ms",
        "--deprovision-after",
        "1s",
    ]);
    let tenants = sim.tenants();
    let env = Env::new(&sim, Default::default());
    let batch = env.write_batch("batch.toml", &tenants);
    let mut daemon = Daemon::start(&env);
    assert!(
        daemon
            .messages
            .iter()
            .any(|m| m.lines().any(|l| l == "READY=1")),
        "{:?}",
        daemon.messages
    );
    env.submit(&batch);
    // Mid-closure: users are being deleted.
    wait_status(
        &env,
        &daemon,
        Duration::from_secs(30),
        "deletions under way",
        |rows| {
            rows.iter()
                .any(|r| r["progress"]["done"].as_u64().unwrap_or(0) > 0)
                && !all_terminal(rows)
        },
    );
    let asked = Instant::now();
    daemon.signal("TERM");
    daemon.wait_for_message("STOPPING=1", Duration::from_secs(5));
    let status = daemon.wait_exit(Duration::from_secs(5));
    let took = asked.elapsed();
    assert!(status.success(), "exit status {status}\n{}", daemon.tail());
    assert!(
        !env.path("control.sock").exists(),
        "control socket left behind"
    );
    eprintln!("graceful shutdown took {took:?}");

    // Nothing in doubt: every intent's outcome was recorded before exit.
    let sagas = store_events(&env.data_dir);
    assert_eq!(sagas.len(), tenants.len());
    let mut unfinished = 0;
    for (id, events) in &sagas {
        let state = closeout::saga::fold(events).expect("the events begin with saga_started");
        assert!(
            state.in_doubt().is_empty(),
            "saga {id} in doubt after a graceful stop: {:?}",
            state.in_doubt()
        );
        unfinished += usize::from(!state.is_terminal());
    }
    assert!(unfinished > 0, "the stop came too late to test anything");

    // A restart recovers (READY=1 again) and finishes the closure.
    let daemon = Daemon::start(&env);
    let rows = wait_status(
        &env,
        &daemon,
        Duration::from_secs(60),
        "every saga terminal",
        support::all_terminal,
    );
    for r in &rows {
        assert_eq!(r["state"], "completed", "{r}\n{}", daemon.tail());
    }
}

#[test]
fn a_notify_socket_nobody_reads_does_not_block_shutdown() {
    // systemd always reads; a full queue (10 datagrams by default on Linux)
    // must not block the daemon's main loop all the same.
    let sim = Sim::start(&["--generate", "tenants=1,users=5"]);
    let env = Env::new(&sim, Default::default());
    let notify_path = env.path("unread.sock");
    let _unread = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    let log = env.path("daemon.log");
    let mut child = std::process::Command::new(support::bin())
        .args(["daemon", "--config", env.config.to_str().unwrap()])
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "100000")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // Wait until the queue is full: the daemon says a send failed.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("sd_notify failed")
    {
        assert!(
            Instant::now() < deadline,
            "no failed sd_notify send logged within 20s: do sends block on a full queue?\n{}",
            support::tail(&log, 20)
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "{}",
            support::tail(&log, 20)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let asked = Instant::now();
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success(), "exit {st}\n{}", support::tail(&log, 20));
            break;
        }
        if asked.elapsed() > Duration::from_secs(5) {
            let _ = child.kill();
            panic!(
                "still running 5s after SIGTERM\n{}",
                support::tail(&log, 20)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
