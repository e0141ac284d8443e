//! Unit tests of the renderers on a hand-built log (the integration tests in
//! `tests/audit_*.rs` use real events through the real store).

use super::source::MemoryLog;
use super::*;
use crate::model::{HttpInfo, Timestamp};
use serde_json::json;
use std::time::Duration;

fn entry(seq: u64, saga: &str, tenant: &str, kind: &'static str, fact: Fact) -> Entry {
    Entry {
        seq,
        saga_seq: seq,
        at: Timestamp(1_764_000_000_000 + seq * 1000),
        saga_id: saga.into(),
        tenant_id: tenant.into(),
        tenant_guid: String::new(),
        kind: kind.into(),
        hash: [seq as u8; 32],
        prev_hash: [seq.saturating_sub(1) as u8; 32],
        item: None,
        http: None,
        object: None,
        step: None,
        fact,
        details: json!({ "kind": kind }).to_string(),
    }
}

fn http(method: &str, path: &str, status: u16) -> Option<HttpInfo> {
    Some(HttpInfo {
        method: method.into(),
        path: path.into(),
        status,
        request_id: format!("req-{status}"),
    })
}

/// Two sagas: A deletes two users (one after a throttled retry, one left in
/// doubt), waits, passes a gate confirmed by an operator; B < tag & "quote" >
/// deletes one user.
pub(crate) fn sample() -> MemoryLog {
    let (a, b) = ("saga-a", "saga-b");
    let (ta, tb) = ("contoso.onmicrosoft.com", "<fabrikam> & \"co\"");
    let mut es = vec![
        entry(
            0,
            a,
            ta,
            "saga_started",
            Fact::SagaStarted {
                keep: vec!["admin@contoso".into()],
                subscriptions: "manual".into(),
                submitted_by: "alice".into(),
            },
        ),
        entry(
            1,
            b,
            tb,
            "saga_started",
            Fact::SagaStarted {
                keep: vec!["root@fab".into()],
                subscriptions: "partner-center".into(),
                submitted_by: "bob".into(),
            },
        ),
        entry(2, a, ta, "step_started", Fact::StepStarted { step: 1 }),
    ];
    let intent = |seq, saga: &str, tenant: &str, id: &str, obj: &str| {
        let mut e = entry(
            seq,
            saga,
            tenant,
            "change_intended",
            Fact::Intent {
                change_id: id.into(),
                action: "delete user".into(),
                target: format!("{obj}@x"),
            },
        );
        e.step = Some(1);
        e.object = Some(obj.into());
        e
    };
    es.push(intent(3, a, ta, "c1", "u1"));
    es.push(intent(4, a, ta, "c2", "u2"));
    es.push(intent(5, b, tb, "c9", "u9"));
    let mut fail = entry(
        6,
        a,
        ta,
        "change_failed",
        Fact::Outcome {
            change_id: "c1".into(),
            result: OutcomeResult::Failed {
                class: "transient".into(),
                code: "TooManyRequests".into(),
            },
        },
    );
    fail.http = http("DELETE", "/v1.0/users/u1", 429);
    fail.object = Some("u1".into());
    fail.step = Some(1);
    es.push(fail);
    let mut retry = entry(
        7,
        a,
        ta,
        "retry_scheduled",
        Fact::Retry {
            delay: Duration::from_millis(2500),
            throttled: true,
            reason: "429 Retry-After 2.5s".into(),
        },
    );
    retry.step = Some(1);
    es.push(retry);
    es.push(intent(8, a, ta, "c3", "u1"));
    let mut ok = entry(
        8,
        a,
        ta,
        "change_applied",
        Fact::Outcome {
            change_id: "c3".into(),
            result: OutcomeResult::Applied,
        },
    );
    ok.http = http("DELETE", "/v1.0/users/u1", 204);
    ok.object = Some("u1".into());
    ok.step = Some(1);
    es.push(ok);
    let mut okb = entry(
        9,
        b,
        tb,
        "change_applied",
        Fact::Outcome {
            change_id: "c9".into(),
            result: OutcomeResult::AlreadyDone,
        },
    );
    okb.http = http("DELETE", "/v1.0/users/u9", 404);
    okb.object = Some("u9".into());
    okb.step = Some(1);
    es.push(okb);
    es.push(entry(
        10,
        a,
        ta,
        "step_completed",
        Fact::StepCompleted { step: 1 },
    ));
    es.push(entry(
        11,
        a,
        ta,
        "wait_started",
        Fact::WaitStarted {
            reason: "deprovisioning".into(),
            until: None,
        },
    ));
    es.push(entry(
        12,
        a,
        ta,
        "wait_ended",
        Fact::WaitEnded {
            reason: "all deleted".into(),
        },
    ));
    es.push(entry(
        13,
        a,
        ta,
        "gate_opened",
        Fact::GateOpened {
            instructions: "delete the tenant in the Entra admin center".into(),
        },
    ));
    es.push(entry(
        14,
        a,
        ta,
        "operator_confirmed",
        Fact::Operator {
            action: "confirm".into(),
            who: "alice".into(),
            why: "done in portal".into(),
        },
    ));
    es.push(entry(
        15,
        a,
        ta,
        "wait_ended",
        Fact::WaitEnded {
            reason: "gate passed".into(),
        },
    ));
    es.push(entry(
        16,
        a,
        ta,
        "step_started",
        Fact::StepStarted { step: 2 },
    ));
    for (i, e) in es.iter_mut().enumerate() {
        let i = i as u64;
        e.seq = i;
        e.saga_seq = i;
        e.at = Timestamp(1_764_000_000_000 + i * 1000);
        e.hash = [i as u8; 32];
        e.prev_hash = [i.saturating_sub(1) as u8; 32];
    }
    MemoryLog {
        sagas: vec![
            SagaInfo {
                saga_id: a.into(),
                tenant_id: ta.into(),
                state: Some("running".into()),
            },
            SagaInfo {
                saga_id: b.into(),
                tenant_id: tb.into(),
                state: None,
            },
        ],
        entries: es,
        inventories: vec![(a.into(), json!({"users": 2}))],
    }
}

fn run(log: &MemoryLog, filter: &Filter, format: Format) -> String {
    let mut out = Vec::new();
    let r = export(log, filter, format, &mut out);
    assert!(r.is_ok(), "{r:?}");
    String::from_utf8(out).unwrap_or_default()
}

#[test]
fn jsonl_has_the_contract_fields_and_parses_back() {
    let log = sample();
    let text = run(&log, &Filter::default(), Format::Jsonl);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or(serde_json::Value::Null))
        .collect();
    assert_eq!(lines.len(), log.entries.len());
    for (l, e) in lines.iter().zip(&log.entries) {
        assert_eq!(l["seq"], e.seq);
        assert_eq!(l["saga_id"], e.saga_id.as_str());
        assert_eq!(l["tenant_id"], e.tenant_id.as_str());
        assert_eq!(l["kind"], e.kind.as_ref());
        assert_eq!(l["hash"].as_str().map(str::len), Some(64));
        assert_eq!(l["prev_hash"].as_str().map(str::len), Some(64));
        let at = l["at"].as_str().unwrap_or("");
        assert!(
            at.ends_with('Z') && humantime::parse_rfc3339(at).is_ok(),
            "{at}"
        );
        assert_eq!(l.get("http").is_some(), e.http.is_some());
    }
    assert_eq!(lines[9]["http"]["path"], "/v1.0/users/u1");
    assert_eq!(lines[9]["http"]["status"], 204);
    assert_eq!(lines[9]["http"]["request_id"], "req-204");
}

#[test]
fn filters_select_exactly() {
    let log = sample();
    let seqs = |f: Filter| -> Vec<u64> {
        run(&log, &f, Format::Jsonl)
            .lines()
            .filter_map(|l| serde_json::from_str::<jsonl::Line>(l).ok())
            .map(|l| l.seq)
            .collect()
    };
    assert_eq!(
        seqs(Filter {
            saga: Some("saga-b".into()),
            ..Filter::default()
        }),
        vec![1, 5, 10]
    );
    assert_eq!(
        seqs(Filter {
            tenant: Some("CONTOSO.onmicrosoft.com".into()),
            ..Filter::default()
        })
        .len(),
        15
    );
    assert_eq!(
        seqs(Filter {
            object: Some("u1".into()),
            ..Filter::default()
        }),
        vec![3, 6, 8, 9]
    );
    assert_eq!(
        seqs(Filter {
            kinds: vec!["change_applied".into(), "step_started".into()],
            ..Filter::default()
        }),
        vec![2, 9, 10, 17]
    );
    let t = |s: u64| Some(Timestamp(1_764_000_000_000 + s * 1000));
    assert_eq!(
        seqs(Filter {
            since: t(7),
            until: t(9),
            ..Filter::default()
        }),
        vec![7, 8, 9]
    );
    let mut out = Vec::new();
    let unknown = Filter {
        saga: Some("nope".into()),
        ..Filter::default()
    };
    assert!(matches!(
        export(&log, &unknown, Format::Text, &mut out),
        Err(Error::UnknownSaga(_))
    ));
}

#[test]
fn csv_has_one_row_per_change_joined_and_parses_back() {
    let log = sample();
    let text = run(&log, &Filter::default(), Format::Csv);
    let mut rdr = ::csv::Reader::from_reader(text.as_bytes());
    let headers = rdr
        .headers()
        .map(|h| h.iter().map(String::from).collect::<Vec<_>>())
        .unwrap_or_default();
    assert_eq!(headers, csv::COLUMNS);
    let rows: Vec<::csv::StringRecord> = rdr.records().filter_map(Result::ok).collect();
    let col = |r: &::csv::StringRecord, name: &str| {
        r.get(csv::COLUMNS.iter().position(|c| *c == name).unwrap_or(99))
            .unwrap_or("")
            .to_string()
    };
    let summary: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (col(r, "change_id"), col(r, "status"), col(r, "result")))
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "c1".into(),
                "429".into(),
                "failed (transient): TooManyRequests".into()
            ),
            ("c3".into(), "204".into(), "applied".into()),
            ("c2".into(), "".into(), "in_doubt".into()),
            ("c9".into(), "404".into(), "already_done".into()),
        ]
    );
    assert_eq!(col(&rows[1], "target"), "u1@x");
    assert_eq!(col(&rows[1], "intent_seq"), "8");
    assert_eq!(col(&rows[1], "outcome_seq"), "9");
    assert_eq!(col(&rows[3], "tenant_id"), "<fabrikam> & \"co\"");
}

#[test]
fn text_tells_steps_changes_retries_gates_and_operators() {
    let text = run(&sample(), &Filter::default(), Format::Text);
    for needle in [
        "saga saga-a  tenant contoso.onmicrosoft.com  state running",
        "  outcome: running",
        "  submitted by alice at 2025-11-24T16:00:00.000Z",
        "  step 1 (delete users): completed in 9s; 1 applied, 0 already done, 1 failed",
        "  operator gate: 2s from 2025-11-24T16:00:14.000Z: delete the tenant in the Entra admin center",
        "  changed: 1 users deleted; 0 subscriptions cancelled, 0 deleted; 0 MFA settings disabled; 1 changes in doubt",
        "  operator alice confirm at 2025-11-24T16:00:15.000Z (gate: delete the tenant in the Entra admin center); reason: done in portal",
        "  retries: 1 calls retried, 1 of them after the service throttled",
        "step 1 (delete users) started",
        "delete user u1@x [u1]: applied (DELETE /v1.0/users/u1 -> 204, request req-204)",
        "throttled, retry in 2s 500ms: 429 Retry-After 2.5s",
        "step 1 (delete users) completed: 1 applied, 0 already done, 1 failed, 1 retries (1 throttled)",
        "operator gate: delete the tenant in the Entra admin center",
        "operator alice: confirm (reason: done in portal)",
        "in doubt: delete user u2@x [u2] (change c2, intent #4, no outcome recorded)",
        "delete user u9@x [u9]: already_done (DELETE /v1.0/users/u9 -> 404",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    // One line per change: the intents are told by their outcomes' lines.
    assert!(!text.contains("intends to"), "{text}");
    assert_eq!(text.matches("delete user u1@x [u1]:").count(), 2, "{text}");
    // The summary comes before the detail.
    let summary = text.find("  changed:").unwrap_or(usize::MAX);
    let detail = text.find("step 1 (delete users) started").unwrap_or(0);
    assert!(summary < detail, "{text}");
}

#[test]
fn html_is_well_formed_with_one_bar_per_step_run_and_escapes_text() {
    let html = run(&sample(), &Filter::default(), Format::Html);
    assert!(
        wellformed::check(&html).is_ok(),
        "{:?}",
        wellformed::check(&html)
    );
    assert_eq!(html.matches("<rect class=\"step ").count(), 2);
    assert_eq!(html.matches("<path class=\"throttle\"").count(), 1);
    assert_eq!(html.matches("<rect class=\"gate\"").count(), 1);
    assert_eq!(html.matches("<rect class=\"wait\"").count(), 1);
    assert_eq!(html.matches("<circle class=\"operator\"").count(), 1);
    assert!(html.contains("&lt;fabrikam&gt; &amp; &quot;co&quot;"));
    // Self-contained: one inline script, nothing loaded; links only within.
    assert_eq!(html.matches("<script").count(), 1);
    let no_ns = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    assert!(!no_ns.contains("src=") && !no_ns.contains("://") && !no_ns.contains("fetch("));
    assert!(html.matches("href=\"").count() == html.matches("href=\"#saga-").count());
    assert_eq!(html.matches("<tr class=").count(), 4);
    // The overview: a row per saga, in front of the sections.
    assert_eq!(html.matches("<tr data-state=").count(), 2);
    let overview = html.find("id=\"overview\"").unwrap_or(usize::MAX);
    assert!(overview < html.find("<section class=\"saga\"").unwrap_or(0));
    // Each saga: its summary, then its changes collapsed.
    assert_eq!(html.matches("<div class=\"summary\">").count(), 2);
    assert_eq!(html.matches("<details class=\"calls\">").count(), 2);
    assert!(!html.contains("<details class=\"calls\" open"));
}

/// A small XML-ish check: every tag is closed in order, attributes are quoted,
/// no stray `<` or `&` (the report is written as well-formed XHTML).
pub(crate) mod wellformed {
    pub fn check(doc: &str) -> Result<(), String> {
        let body = doc.strip_prefix("<!DOCTYPE html>").ok_or("no doctype")?;
        let mut stack: Vec<&str> = Vec::new();
        let mut rest = body;
        while let Some(i) = rest.find(['<', '&']) {
            let (text, tail) = rest.split_at(i);
            let _ = text;
            if tail.starts_with('&') {
                let end = tail.find(';').ok_or("unterminated entity")?;
                let name = &tail[1..end];
                if !["amp", "lt", "gt", "quot", "#39"].contains(&name) {
                    return Err(format!("bad entity &{name};"));
                }
                rest = &tail[end + 1..];
                continue;
            }
            let end = tail.find('>').ok_or("unterminated tag")?;
            let tag = &tail[1..end];
            rest = &tail[end + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                match stack.pop() {
                    Some(open) if open == name => {}
                    other => return Err(format!("</{name}> closes {other:?}")),
                }
            } else if tag.ends_with('/') {
                continue;
            } else {
                let name = tag.split_whitespace().next().ok_or("empty tag")?;
                if tag.matches('"').count() % 2 != 0 || tag.contains('<') {
                    return Err(format!("bad attributes in <{tag}>"));
                }
                stack.push(name);
            }
        }
        if stack.is_empty() {
            Ok(())
        } else {
            Err(format!("unclosed {stack:?}"))
        }
    }
}

/// The sample renumbered as one consistent log (saga sequences from 0).
fn consistent() -> MemoryLog {
    let mut log = sample();
    let mut next: std::collections::HashMap<String, u64> = Default::default();
    for e in &mut log.entries {
        let n = next.entry(e.saga_id.clone()).or_default();
        e.saga_seq = *n;
        *n += 1;
    }
    log
}

#[test]
fn checker_accepts_a_sound_log_and_counts_in_doubt() {
    let r = verify::check_entries(&consistent(), 0).unwrap_or_default();
    assert_eq!(r.first_bad, None);
    assert_eq!(
        (r.records, r.sagas, r.intents, r.outcomes, r.in_doubt),
        (18, 2, 4, 3, 1)
    );
}

#[test]
fn checker_names_the_first_bad_record() {
    let mut gap = consistent();
    gap.entries.remove(9);
    let r = verify::check_entries(&gap, 0).unwrap_or_default();
    assert_eq!(
        r.first_bad.map(|b| (b.seq, b.reason)),
        Some((10, "global sequence 10 where 9 was expected".into()))
    );

    let mut orphan = consistent();
    if let Fact::Outcome { change_id, .. } = &mut orphan.entries[10].fact {
        *change_id = "c404".into();
    }
    let r = verify::check_entries(&orphan, 0).unwrap_or_default();
    let bad = r.first_bad.unwrap_or(verify::Bad {
        seq: 0,
        saga_id: String::new(),
        saga_seq: 0,
        reason: String::new(),
    });
    assert_eq!((bad.seq, bad.saga_id.as_str()), (10, "saga-b"));
    assert_eq!(bad.reason, "outcome of change c404 has no earlier intent");

    let mut skipped = consistent();
    skipped.entries[12].saga_seq += 1;
    let r = verify::check_entries(&skipped, 0).unwrap_or_default();
    assert_eq!(r.first_bad.map(|b| b.seq), Some(12));
}

#[test]
fn an_export_is_checked_line_by_line_against_the_log() -> Result<(), Error> {
    let log = consistent();
    let dir = tempfile::tempdir().map_err(|e| Error::io("tmp", e))?;
    let path = dir.path().join("copy.jsonl");
    let full = run(&log, &Filter::default(), Format::Jsonl);
    let write = |s: &str| std::fs::write(&path, s).map_err(|e| Error::io("w", e));
    write(&full)?;
    let r = verify::check_export(&log, &path)?;
    assert_eq!((r.lines, r.first_bad), (18, None));

    // A filtered export is a faithful part of the log.
    write(&run(
        &log,
        &Filter {
            saga: Some("saga-b".into()),
            ..Filter::default()
        },
        Format::Jsonl,
    ))?;
    assert_eq!(verify::check_export(&log, &path)?.first_bad, None);

    // A changed status on line 9 is named, with the field.
    write(&full.replace("\"status\":204", "\"status\":403"))?;
    assert_eq!(
        verify::check_export(&log, &path)?.first_bad,
        Some((10, 9, "http differs from the log".into()))
    );

    // A dropped-then-reordered pair is caught.
    let mut lines: Vec<&str> = full.lines().collect();
    lines.swap(3, 4);
    write(&(lines.join("\n") + "\n"))?;
    assert_eq!(
        verify::check_export(&log, &path)?.first_bad,
        Some((5, 3, "out of log order (or repeated)".into()))
    );
    Ok(())
}

/// A log whose saga is confirmed by a kind of operator action the renderers
/// were never told about, and whose step 4 disables a named policy.
fn with_attestation_and_policy() -> MemoryLog {
    let mut log = sample();
    let (a, ta) = ("saga-a", "contoso.onmicrosoft.com");
    let next = log.entries.len() as u64;
    let mut extra = vec![
        entry(
            next,
            a,
            ta,
            "backup_attested",
            Fact::Operator {
                action: "attested the backup".into(),
                who: "carol".into(),
                why: "restore tested on 1 Dec".into(),
            },
        ),
        entry(
            next + 1,
            a,
            ta,
            "step_started",
            Fact::StepStarted { step: 4 },
        ),
    ];
    let mut intent = entry(
        next + 2,
        a,
        ta,
        "change_intended",
        Fact::Intent {
            change_id: "c9/p1".into(),
            action: "disable conditional access policy".into(),
            target: "p1".into(),
        },
    );
    intent.object = Some("p1".into());
    intent.step = Some(4);
    let mut outcome = entry(
        next + 3,
        a,
        ta,
        "change_applied",
        Fact::Outcome {
            change_id: "c9/p1".into(),
            result: OutcomeResult::Applied,
        },
    );
    outcome.object = Some("p1".into());
    outcome.step = Some(4);
    outcome.http = http("PATCH", "/v1.0/identity/conditionalAccess/policies/p1", 204);
    extra.extend([intent, outcome]);
    log.entries.extend(extra);
    log.inventories = vec![(
        a.into(),
        json!({
            "users": [{"id": "u1", "user_principal_name": "u1@x", "display_name": "Una One",
                       "account_enabled": true, "on_premises_sync_enabled": false, "user_type": "Member"}],
            "global_admins": [], "subscriptions": [], "security_defaults": false,
            "ca_policies": [{"id": "p1", "display_name": "Require MFA for admins",
                             "state": "enabled", "requires_mfa": true}],
            "applications": []
        }),
    )];
    log
}

#[test]
fn the_summary_lists_any_operator_action_and_mfa_values_before() {
    let log = with_attestation_and_policy();
    let text = run(&log, &Filter::default(), Format::Text);
    for needle in [
        "  operator carol attested the backup at 2025-11-24T16:00:",
        "reason: restore tested on 1 Dec",
        "    disable conditional access policy Require MFA for admins: enabled -> disabled (applied)",
        "1 MFA settings disabled",
        "delete user u1@x (Una One) [u1]: applied",
        "disable conditional access policy Require MFA for admins [p1]: applied",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    let html = run(&log, &Filter::default(), Format::Html);
    assert!(
        wellformed::check(&html).is_ok(),
        "{:?}",
        wellformed::check(&html)
    );
    assert!(html.contains("<b>carol</b> attested the backup"), "{html}");
    assert!(html.contains("<b title=\"p1\">Require MFA for admins</b>: was enabled, applied"));
    // Tenant-controlled text reaches the filter script only as attribute data.
    assert!(
        html.contains("data-text=\"&lt;fabrikam&gt; &amp; &quot;co&quot;"),
        "{html}"
    );
    let receipt = run(
        &log,
        &Filter {
            saga: Some("saga-a".into()),
            ..Filter::default()
        },
        Format::Receipt,
    );
    assert!(wellformed::check(&receipt).is_ok());
    assert!(receipt.contains("<b>carol</b> attested the backup"));
}
