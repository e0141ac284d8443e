//! Unit tests of the metrics: label values, scrape-time gauges and the
//! exposition's shape. The daemon's endpoint is tested end to end in
//! `tests/metrics.rs`.

use super::*;
use crate::saga::SagaState;
use closeout_core::model::Timestamp;

/// The value of the sample `name{labels}` (labels exactly as printed).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn status_classes() {
    assert_eq!(status_class(200), "2xx");
    assert_eq!(status_class(204), "2xx");
    assert_eq!(status_class(302), "3xx");
    assert_eq!(status_class(429), "4xx");
    assert_eq!(status_class(503), "5xx");
    assert_eq!(status_class(42), "other");
}

#[tokio::test]
async fn scrape_counts_sagas_gates_and_hooks() {
    let rows: [SagaGauge; 4] = [
        (SagaState::Completed, Some(5)),
        (SagaState::Completed, Some(5)),
        (SagaState::Waiting, Some(2)),
        (SagaState::Running, None),
    ];
    saga_gate("metrics-test-gate", Some(Gate::CancelSubscriptions));
    graph_answered("TEST", 429, true);
    batch_item_answered("TESTITEM", 204, false);
    let appended = timed_append(async {
        Ok(crate::store::Appended {
            first_global_seq: 1,
            first_saga_seq: 0,
            at: Timestamp(0),
            group_size: 3,
        })
    })
    .await;
    assert!(appended.is_ok());
    let text = render(&rows, true);
    check_families(&text);
    assert_eq!(
        sample(&text, r#"closeout_sagas{state="completed",step="5"}"#),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"closeout_sagas{state="running",step="0"}"#),
        Some(1.0)
    );
    assert!(
        sample(
            &text,
            r#"closeout_operator_gates_open{gate="cancel_subscriptions"}"#
        )
        .is_some_and(|v| v >= 1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"closeout_graph_requests_total{method="TEST",status_class="4xx"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"closeout_graph_batch_items_total{method="TESTITEM",status_class="2xx"}"#
        ),
        Some(1.0)
    );
    assert!(sample(
        &text,
        r#"closeout_graph_throttled_total{status="429",retry_after="true"}"#
    )
    .is_some_and(|v| v >= 1.0));
    assert!(sample(&text, "closeout_store_group_commit_size_count").is_some_and(|v| v >= 1.0));
    assert!(sample(&text, r#"closeout_store_group_commit_size_bucket{le="2"}"#).is_some());
    assert!(sample(&text, "closeout_store_append_seconds_count").is_some_and(|v| v >= 1.0));
    assert_eq!(sample(&text, "closeout_healthy"), Some(1.0));
    saga_gate("metrics-test-gate", None);
    let text = render(&rows[..1], false);
    assert_eq!(sample(&text, "closeout_healthy"), Some(0.0));
    assert_eq!(
        sample(&text, r#"closeout_sagas{state="waiting",step="2"}"#),
        None,
        "a scrape forgets sagas no longer reported"
    );
}

/// Every sample line belongs to a declared family, and the main families
/// are declared. (Called by the scrape test: renders share the process's
/// metrics, so one test renders.)
fn check_families(text: &str) {
    let mut declared = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap_or_default();
            declared.push(name.to_string());
        } else if !line.starts_with('#') {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            assert!(
                declared.iter().any(|d| name == d
                    || ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| name.strip_suffix(s) == Some(d))),
                "undeclared sample {line:?}"
            );
        }
    }
    for family in [
        "closeout_sagas",
        "closeout_operator_gates_open",
        "closeout_timers_pending",
        "closeout_graph_requests_total",
        "closeout_graph_tenants",
        "closeout_saga_retries_total",
        "closeout_store_append_seconds",
        "closeout_store_group_commit_size",
    ] {
        assert!(declared.iter().any(|d| d == family), "{family} missing");
    }
}

#[test]
fn a_timer_counts_while_its_guard_lives() {
    let none = timer_pending(None);
    assert!(!none.counted);
    let some = timer_pending(Some(Duration::from_secs(1)));
    assert!(some.counted);
}
