//! Signal handling in-process: SIGHUP becomes a reload event, SIGTERM and
//! SIGINT the graceful-shutdown broadcast. (Alone in its test binary: it
//! installs process-wide handlers and raises signals at itself.)

use closeout::runtime::signals::{self, SignalEvent};
use signal_hook::consts::{SIGHUP, SIGTERM};
use std::time::Duration;

#[tokio::test]
async fn sighup_reloads_and_sigterm_shuts_down() {
    let mut s = signals::install().unwrap();
    assert!(!*s.shutdown.borrow());

    signal_hook::low_level::raise(SIGHUP).unwrap();
    let event = tokio::time::timeout(Duration::from_secs(10), s.events.recv()).await;
    assert_eq!(event.unwrap(), Some(SignalEvent::Reload));
    assert!(!*s.shutdown.borrow(), "SIGHUP does not stop the daemon");

    signal_hook::low_level::raise(SIGTERM).unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        signals::wait_for(s.shutdown.clone()),
    )
    .await
    .expect("SIGTERM broadcasts shutdown");
    assert!(*s.shutdown.borrow());
}
