//! `closeout audit` and `closeout verify` on logs built from real saga events
//! through the real store: every format parses back, filters select exactly,
//! verification catches tampering with the right record.

mod audit_support;

use audit_support::{build, closeout, entries_of, events, standard, well_formed, Script};
use closeout::saga::Event;
use serde_json::Value;
use std::path::Path;

fn jsonl(dir: &Path, extra: &[&str]) -> Vec<Value> {
    let d = dir.to_str().unwrap_or_default();
    let mut args = vec!["audit", "--data-dir", d, "--format", "jsonl"];
    args.extend_from_slice(extra);
    let (code, out, err) = closeout(&args);
    assert_eq!(code, 0, "{err}");
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l}: {e}")))
        .collect()
}

fn total_entries(sagas: &[(String, Vec<Event>)]) -> usize {
    sagas
        .iter()
        .flat_map(|(_, e)| e.iter())
        .map(entries_of)
        .sum()
}

#[test]
fn jsonl_carries_the_contract_fields_for_every_event_and_item() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sagas = standard(dir.path());
    let lines = jsonl(dir.path(), &[]);
    assert_eq!(lines.len(), total_entries(&sagas));
    let records: usize = sagas.iter().map(|(_, e)| e.len()).sum();
    let mut last = 0u64;
    let mut distinct = 0;
    for l in &lines {
        for key in [
            "seq",
            "saga_seq",
            "at",
            "saga_id",
            "tenant_id",
            "kind",
            "hash",
            "prev_hash",
            "event",
        ] {
            assert!(l.get(key).is_some(), "{key} missing in {l}");
        }
        let seq = l["seq"].as_u64().unwrap_or(0);
        assert!(seq >= last, "out of order at {l}");
        if seq != last {
            distinct += 1;
        }
        last = seq;
        let at = l["at"].as_str().unwrap_or("");
        assert!(
            at.ends_with('Z') && humantime::parse_rfc3339(at).is_ok(),
            "{at}"
        );
        assert_eq!(l["hash"].as_str().map(str::len), Some(64));
        let tenant = if l["saga_id"] == "saga-contoso" {
            "contoso.onmicrosoft.com"
        } else {
            "fabrikam.onmicrosoft.com"
        };
        assert_eq!(l["tenant_id"], tenant);
        let kind = l["kind"].as_str().unwrap_or("");
        if matches!(kind, "change_applied" | "change_failed" | "change_intended") {
            let h = &l["http"];
            let path = h["path"].as_str().unwrap_or("");
            assert!(
                path.starts_with("/v1.0/")
                    || path.starts_with("/v1/")
                    || path.starts_with("/beta/"),
                "{l}"
            );
            assert!(!path.contains('?'), "{l}");
            assert!(
                h["method"].is_string() && h["status"].is_u64() && h["request_id"].is_string(),
                "{l}"
            );
            if kind == "change_intended" {
                assert_eq!(h["status"], 0);
                assert!(l["item"]["count"].as_u64().unwrap_or(0) >= 1);
            } else {
                assert_ne!(h["status"], 0);
                assert_eq!(l["object"], l["event"]["target"]);
            }
        } else {
            assert!(l.get("http").is_none(), "{l}");
        }
    }
    assert_eq!(distinct, records);
    let throttled: Vec<&Value> = lines
        .iter()
        .filter(|l| l["http"]["status"] == 429)
        .collect();
    assert_eq!(throttled.len(), 2);
    assert_eq!(
        throttled[0]["http"]["path"],
        "/v1.0/users/contoso.onmicrosoft.com-user-000004"
    );
}

#[test]
fn filters_select_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    standard(dir.path());
    let all = jsonl(dir.path(), &[]);
    let expect = |f: &dyn Fn(&Value) -> bool| -> Vec<Value> {
        all.iter().filter(|l| f(l)).cloned().collect()
    };

    let got = jsonl(dir.path(), &["--saga", "saga-fabrikam"]);
    assert_eq!(got, expect(&|l| l["saga_id"] == "saga-fabrikam"));
    assert!(!got.is_empty());

    let got = jsonl(dir.path(), &["--tenant", "CONTOSO.onmicrosoft.com"]);
    assert_eq!(
        got,
        expect(&|l| l["tenant_id"] == "contoso.onmicrosoft.com")
    );

    let got = jsonl(
        dir.path(),
        &[
            "--kind",
            "change_failed,retry_scheduled",
            "--kind",
            "gate_confirmed",
        ],
    );
    assert_eq!(
        got,
        expect(&|l| matches!(
            l["kind"].as_str(),
            Some("change_failed" | "retry_scheduled" | "gate_confirmed")
        ))
    );
    assert_eq!(got.len(), 5);

    let object = "contoso.onmicrosoft.com-user-000004";
    let got = jsonl(dir.path(), &["--object", object]);
    assert_eq!(got, expect(&|l| l["object"] == object));
    let kinds: Vec<&str> = got.iter().filter_map(|l| l["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "change_intended",
            "change_failed",
            "change_intended",
            "change_applied"
        ]
    );

    let (since, until) = (
        all[10]["at"].as_str().unwrap_or(""),
        all[30]["at"].as_str().unwrap_or(""),
    );
    let got = jsonl(dir.path(), &["--since", since, "--until", until]);
    let t = |l: &Value| humantime::parse_rfc3339(l["at"].as_str().unwrap_or("")).ok();
    let (s, u) = (
        humantime::parse_rfc3339(since).ok(),
        humantime::parse_rfc3339(until).ok(),
    );
    assert_eq!(got, expect(&|l| t(l) >= s && t(l) <= u));
    assert!(!got.is_empty());

    // Combined filters intersect.
    let got = jsonl(
        dir.path(),
        &["--saga", "saga-contoso", "--kind", "step_started"],
    );
    assert_eq!(got.len(), 5);
    // An age filter in the future selects nothing; far back selects all.
    assert_eq!(
        jsonl(dir.path(), &["--since", "2099-01-01T00:00:00Z"]).len(),
        0
    );
    assert_eq!(jsonl(dir.path(), &["--since", "3650days"]).len(), all.len());

    let d = dir.path().to_str().unwrap_or_default();
    let (code, _, err) = closeout(&["audit", "--data-dir", d, "--saga", "nope"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("saga nope is not in the log"), "{err}");
    let (code, _, err) = closeout(&["audit", "--data-dir", d, "--since", "last tuesday"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn csv_has_one_row_per_change_joining_intent_and_outcome() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sagas = standard(dir.path());
    let d = dir.path().to_str().unwrap_or_default();
    let (code, out, err) = closeout(&["audit", "--data-dir", d, "--format", "csv"]);
    assert_eq!(code, 0, "{err}");
    let mut rdr = csv::Reader::from_reader(out.as_bytes());
    let headers: Vec<String> = rdr
        .headers()
        .expect("headers")
        .iter()
        .map(String::from)
        .collect();
    assert_eq!(headers, closeout::audit::csv::COLUMNS);
    let rows: Vec<csv::StringRecord> = rdr.records().collect::<Result<_, _>>().expect("rows");
    let intents: usize = sagas
        .iter()
        .flat_map(|(_, e)| e.iter())
        .map(|e| match e {
            Event::ChangeIntended { targets, .. } => targets.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(rows.len(), intents);
    let col = |r: &csv::StringRecord, name: &str| {
        let i = headers.iter().position(|h| h == name).expect("column");
        r.get(i).unwrap_or("").to_string()
    };
    let result = |r: &csv::StringRecord| col(r, "result");
    assert_eq!(rows.iter().filter(|r| result(r) == "in_doubt").count(), 1);
    assert_eq!(
        rows.iter()
            .filter(|r| result(r) == "applied (found by reading)")
            .count(),
        1
    );
    let failed: Vec<_> = rows
        .iter()
        .filter(|r| result(r).starts_with("failed"))
        .collect();
    assert_eq!(failed.len(), 2);
    assert_eq!(col(failed[0], "status"), "429");
    for r in &rows {
        if result(r) == "applied" {
            let (i, o) = (
                col(r, "intent_seq").parse::<u64>(),
                col(r, "outcome_seq").parse::<u64>(),
            );
            assert!(matches!((i, o), (Ok(i), Ok(o)) if i < o), "{r:?}");
            assert!(!col(r, "request_id").is_empty() && !col(r, "path").is_empty());
        }
    }
    let doubt = rows
        .iter()
        .find(|r| result(r) == "in_doubt")
        .expect("in doubt row");
    assert_eq!(col(doubt, "saga_id"), "saga-fabrikam");
    assert_eq!(col(doubt, "method"), "DELETE");
    assert_eq!(
        col(doubt, "path"),
        "/v1.0/users/fabrikam.onmicrosoft.com-user-000002"
    );
    assert_eq!(col(doubt, "status"), "");
}

#[test]
fn html_is_well_formed_self_contained_with_one_bar_per_step() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sagas = standard(dir.path());
    let d = dir.path().to_str().unwrap_or_default();
    let (code, html, err) = closeout(&["audit", "--data-dir", d, "--format", "html"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(well_formed(&html), Ok(()));
    let steps = sagas
        .iter()
        .flat_map(|(_, e)| e.iter())
        .filter(|e| matches!(e, Event::StepStarted { .. }))
        .count();
    assert_eq!(html.matches("<rect class=\"step ").count(), steps);
    assert_eq!(html.matches("<section class=\"saga\"").count(), 2);
    assert_eq!(html.matches("<path class=\"throttle\"").count(), 2);
    assert_eq!(html.matches("<rect class=\"wait\"").count(), 1);
    assert_eq!(html.matches("<rect class=\"gate\"").count(), 1);
    assert_eq!(html.matches("<circle class=\"operator\"").count(), 1);
    for forbidden in ["src=", "url(", "@import", "fetch(", "XMLHttpRequest"] {
        assert!(
            !html.contains(forbidden),
            "{forbidden} in a self-contained report"
        );
    }
    // One inline script (the overview's filter); links stay in the file.
    assert_eq!(html.matches("<script").count(), 1);
    assert_eq!(
        html.matches("href=\"").count(),
        html.matches("href=\"#saga-").count()
    );
}

#[test]
fn text_timeline_tells_the_story_and_inventory_is_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    standard(dir.path());
    let d = dir.path().to_str().unwrap_or_default();
    let (code, text, err) = closeout(&["audit", "--data-dir", d]);
    assert_eq!(code, 0, "{err}");
    for needle in [
        "saga saga-contoso  tenant contoso.onmicrosoft.com  state completed",
        "saga saga-fabrikam  tenant fabrikam.onmicrosoft.com  state running",
        "step 1 (delete users) completed: 11 applied, 0 already done, 2 failed, 2 retries (2 throttled)",
        "delete user user4@contoso.onmicrosoft.com (User 4) [contoso.onmicrosoft.com-user-000004]: failed (transient): TooManyRequests (DELETE /v1.0/users/contoso.onmicrosoft.com-user-000004 -> 429",
        "throttled, retry in",
        "in-doubt delete user user11@contoso.onmicrosoft.com (User 11) [contoso.onmicrosoft.com-user-000011] resolved by reading: it was applied",
        "operator gate: delete tenant contoso.onmicrosoft.com in the Entra admin center",
        "operator alice: confirmed the gate (reason: deleted in the Entra admin center)",
        "state completed",
        "in doubt: delete user user2@fabrikam.onmicrosoft.com (User 2) [fabrikam.onmicrosoft.com-user-000002]",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    let (code, inv, err) = closeout(&[
        "audit",
        "--data-dir",
        d,
        "--saga",
        "saga-contoso",
        "--inventory",
    ]);
    assert_eq!(code, 0, "{err}");
    let inv: Value = serde_json::from_str(&inv).expect("inventory json");
    assert_eq!(inv["users"].as_array().map(Vec::len), Some(12));
    assert_eq!(inv["global_admins"][0], "contoso.onmicrosoft.com-admin");
}

#[test]
fn output_is_atomic_and_never_overwrites_without_force() {
    let dir = tempfile::tempdir().expect("tempdir");
    standard(dir.path());
    let d = dir.path().to_str().unwrap_or_default();
    let out = tempfile::tempdir().expect("tempdir");
    let file = out.path().join("report.csv");
    let f = file.to_str().unwrap_or_default();
    let (code, stdout, err) =
        closeout(&["audit", "--data-dir", d, "--format", "csv", "--output", f]);
    assert_eq!((code, stdout.as_str()), (0, ""), "{err}");
    let first = std::fs::read_to_string(&file).expect("report");
    assert!(first.starts_with("saga_id,"));
    std::fs::write(&file, "keep me").expect("write");
    let (code, _, err) = closeout(&["audit", "--data-dir", d, "--format", "csv", "--output", f]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("exists; pass --force"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).expect("file"), "keep me");
    let (code, _, err) = closeout(&[
        "audit",
        "--data-dir",
        d,
        "--format",
        "csv",
        "--output",
        f,
        "--force",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read_to_string(&file).expect("file"), first);
    assert_eq!(
        std::fs::read_dir(out.path()).expect("dir").count(),
        1,
        "no temporary left"
    );
}

#[test]
fn the_header_state_is_the_sagas_even_when_bookkeeping_follows_its_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Script::new("saga-done", "contoso.onmicrosoft.com", 3);
    let mut ev = events(&a);
    // What a daemon records after the end: the notice delivered and the
    // batch's end.
    ev.push(Event::NotificationSent {
        notice: 1,
        kind: closeout::saga::NoticeKind::BatchFinished,
        webhook: 0,
        host: "hooks.example".into(),
        attempts: 1,
        status: 200,
    });
    ev.push(Event::BatchFinished {
        batch_id: "b".into(),
        completed: 1,
        rolled_back: 0,
        failed: 0,
    });
    build(dir.path(), &[(a.saga_id.clone(), ev)], 4);
    let d = dir.path().to_str().unwrap_or_default();
    let (code, text, err) = closeout(&["audit", "--data-dir", d, "--format", "text"]);
    assert_eq!(code, 0, "{err}");
    let head = text.lines().next().unwrap_or_default();
    assert!(head.ends_with("state completed"), "{head}");
}
