//! The audit as a reviewer reads it, through the real binary on logs built
//! from real saga events through the real store: objects named beside their
//! ids, a summary before the detail, one text line per change, the closure
//! receipt whose hash `verify --expect-head` accepts, and — in headless
//! Chromium — the overview of a 1,000-tenant batch (its filter hides rows)
//! and a 10,000-user tenant's section with its summary above the fold.

mod audit_support;

use audit_support::{build, closeout, events, standard, well_formed, Script};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
/// The summary block's background (`.summary` in the report's CSS).
const SUMMARY_RGB: [u8; 3] = [0xe7, 0xf0, 0xfd];
/// The overview table's header background.
const OVERVIEW_RGB: [u8; 3] = [0xdd, 0xf4, 0xe4];

fn dir_str(dir: &Path) -> &str {
    dir.to_str().unwrap_or_default()
}

#[test]
fn names_stand_beside_ids_in_text_csv_and_html() {
    let dir = tempfile::tempdir().expect("tempdir");
    standard(dir.path());
    let d = dir_str(dir.path());
    let user = "user7@contoso.onmicrosoft.com (User 7)";
    let id = "contoso.onmicrosoft.com-user-000007";

    let (code, text, err) = closeout(&["audit", "--data-dir", d, "--saga", "saga-contoso"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        text.contains(&format!("delete user {user} [{id}]: applied")),
        "{text}"
    );
    assert!(
        text.contains("set subscription to suspended O365_BUSINESS_PREMIUM [contoso.onmicrosoft.com-sub]: applied"),
        "{text}"
    );
    assert!(
        text.contains("disable security defaults security defaults: on -> disabled (applied)"),
        "{text}"
    );

    let (code, csv, err) = closeout(&["audit", "--data-dir", d, "--format", "csv"]);
    assert_eq!(code, 0, "{err}");
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let headers = reader.headers().expect("headers").clone();
    let col = |name: &str| headers.iter().position(|h| h == name).expect(name);
    let (object, name) = (col("object"), col("object_name"));
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    assert!(
        rows.iter()
            .any(|r| r.get(object) == Some(id) && r.get(name) == Some(user)),
        "{csv}"
    );
    assert!(
        rows.iter()
            .filter(|r| r.get(object).is_some_and(|o| o.ends_with("-sub")))
            .all(|r| r.get(name) == Some("O365_BUSINESS_PREMIUM")),
        "{csv}"
    );

    let (code, html, err) = closeout(&["audit", "--data-dir", d, "--format", "html"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(well_formed(&html), Ok(()));
    // The name is shown, the id is on hover and in its own column.
    assert!(
        html.contains(&format!(
            "<td title=\"{id}\">{user}</td><td><code>{id}</code></td>"
        )),
        "names in the change table"
    );
}

#[test]
fn text_has_the_summary_first_and_one_line_per_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sagas = standard(dir.path());
    let d = dir_str(dir.path());
    let (code, text, err) = closeout(&["audit", "--data-dir", d, "--saga", "saga-contoso"]);
    assert_eq!(code, 0, "{err}");
    for needle in [
        "  outcome: completed",
        "  tenant: contoso.onmicrosoft.com",
        "  submitted by alice at ",
        "  step 1 (delete users): completed in ",
        "  step 3 (delete disabled subscriptions): completed in ",
        "  wait: ",
        "subscriptions deprovision (about 72 hours)",
        "  changed: 12 users deleted; 1 subscriptions cancelled, 1 deleted; 1 MFA settings disabled",
        "  operator alice confirmed the gate at ",
        "(gate: delete tenant contoso.onmicrosoft.com in the Entra admin center); reason: deleted in the Entra admin center",
        "  step 5 verification (1 signals):",
        "tenant is gone: the token endpoint no longer knows it",
        "  retries: 2 calls retried, 2 of them after the service throttled",
        "  kept: contoso.onmicrosoft.com-admin",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    let summary_end = text.find("  detail:").expect("detail header");
    assert!(text.find("  outcome:").unwrap_or(usize::MAX) < summary_end);
    // Every change outcome is one line naming the change; no intent line.
    let outcomes = sagas[0]
        .1
        .iter()
        .filter(|e| {
            matches!(
                e,
                closeout::saga::Event::ChangeApplied { .. }
                    | closeout::saga::Event::ChangeFailed { .. }
            )
        })
        .count();
    let detail = &text[summary_end..];
    let change_lines = detail
        .lines()
        .filter(|l| {
            l.contains("delete user ")
                || l.contains("set subscription ")
                || l.contains("disable security defaults ")
        })
        .filter(|l| !l.contains("resolved by reading"))
        .count();
    assert_eq!(change_lines, outcomes, "{detail}");
    assert!(!text.contains("intends to"), "{text}");
    for l in detail.lines().filter(|l| l.contains("delete user ")) {
        assert!(
            l.contains(": applied (DELETE ")
                || l.contains(": failed (transient)")
                || l.contains("resolved by reading"),
            "intent and outcome on one line: {l}"
        );
    }
}

/// The text between `<pre class="check CLASS">` and `</pre>`.
fn pre<'a>(doc: &'a str, class: &str) -> &'a str {
    let open = format!("<pre class=\"check {class}\">");
    let start = doc.find(&open).map(|i| i + open.len()).expect(class);
    &doc[start..start + doc[start..].find("</pre>").expect("pre end")]
}

#[test]
fn the_receipt_names_what_was_done_and_its_head_verifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    standard(dir.path());
    let d = dir_str(dir.path());
    let (code, receipt, err) = closeout(&[
        "audit",
        "--data-dir",
        d,
        "--format",
        "receipt",
        "--saga",
        "saga-contoso",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(well_formed(&receipt), Ok(()));
    for needle in [
        "<h1>Closure receipt: contoso.onmicrosoft.com</h1>",
        "<b class=\"state state-completed\">completed</b>",
        "by <b>alice</b> at ",
        "12 users deleted; 1 subscriptions cancelled, 1 deleted; 1 MFA settings disabled",
        "<b>alice</b> confirmed the gate",
        "tenant is gone: the token endpoint no longer knows it",
        "<li>user0@contoso.onmicrosoft.com (User 0) [contoso.onmicrosoft.com-user-000000]</li>",
        "was on, applied",
    ] {
        assert!(receipt.contains(needle), "missing {needle:?} in\n{receipt}");
    }
    for forbidden in ["<script", "src=", "href=", "url("] {
        assert!(!receipt.contains(forbidden), "{forbidden} in the receipt");
    }
    // The command as printed, run against the log, accepts the head it
    // names: for the finished saga and for the one still running (whose
    // last record is not the log's head).
    let (_, verified, _) = closeout(&["verify", "--data-dir", d]);
    let mut heads = Vec::new();
    for saga in ["saga-contoso", "saga-fabrikam"] {
        let (code, receipt, err) = closeout(&[
            "audit",
            "--data-dir",
            d,
            "--format",
            "receipt",
            "--saga",
            saga,
        ]);
        assert_eq!(code, 0, "{err}");
        let head = pre(&receipt, "head").to_string();
        assert_eq!(head.len(), 64, "{head}");
        let command = pre(&receipt, "command");
        assert_eq!(command, format!("closeout verify --expect-head {head}"));
        let mut args: Vec<&str> = command.split(' ').skip(1).collect();
        args.extend(["--data-dir", d]);
        let (code, out, err) = closeout(&args);
        assert_eq!(code, 0, "{out}{err}");
        assert!(
            out.contains(&format!("expected head found: {head}")),
            "{out}"
        );
        heads.push(head);
    }
    assert!(
        heads
            .iter()
            .any(|h| !verified.contains(&format!("head: {h}"))),
        "one receipt's head is its saga's last record, not the log's: {verified}"
    );
    // A head the log does not hold fails the same command.
    let bogus = "0".repeat(64);
    let (code, _, _) = closeout(&["verify", "--expect-head", &bogus, "--data-dir", d]);
    assert_eq!(code, 1);

    // A receipt is of one saga.
    let (code, _, err) = closeout(&["audit", "--data-dir", d, "--format", "receipt"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--saga"), "{err}");
    let (code, _, err) = closeout(&[
        "audit",
        "--data-dir",
        d,
        "--format",
        "receipt",
        "--saga",
        "nope",
    ]);
    assert_eq!(code, 2, "{err}");
}

/// Runs headless Chromium on `url`, killed after two minutes; `None` when
/// Chromium is not installed (the caller skips, saying so).
fn chromium(profile: &Path, args: &[&str], url: &str) -> Option<(bool, String, String)> {
    if !Path::new(CHROMIUM).exists() {
        eprintln!(
            "SKIPPED: {CHROMIUM} is not installed (apt-get install chromium; .ci/run installs it)"
        );
        return None;
    }
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    // Read the pipes while it runs: a big DOM fills a pipe's buffer.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait chromium") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish within two minutes");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Some((
        status.success(),
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    ))
}

/// Pixels of `rgb` (within 2 per channel) in the top `rows` rows of a PNG.
fn pixels_of(png_path: &Path, rgb: [u8; 3], rows: u32) -> usize {
    let decoder = png::Decoder::new(std::fs::File::open(png_path).expect("open png"));
    let mut reader = decoder.read_info().expect("png header");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("png frame");
    let channels = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("unexpected colour type {other:?}"),
    };
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let line = info.line_size;
    (0..rows.min(info.height) as usize)
        .flat_map(|y| buf[y * line..y * line + info.width as usize * channels].chunks(channels))
        .filter(|p| p.iter().zip(rgb).all(|(a, b)| a.abs_diff(b) <= 2))
        .count()
}

fn export_html(dir: &Path, extra: &[&str]) -> std::path::PathBuf {
    let report = dir.join(format!("report-{}.html", extra.len()));
    let mut args = vec![
        "audit",
        "--data-dir",
        dir_str(dir),
        "--format",
        "html",
        "--output",
        report.to_str().unwrap_or_default(),
    ];
    args.extend_from_slice(extra);
    let (code, _, err) = closeout(&args);
    assert_eq!(code, 0, "{err}");
    report
}

#[test]
fn a_thousand_tenant_overview_renders_and_its_filter_hides_rows() {
    if !Path::new(CHROMIUM).exists() {
        eprintln!("SKIPPED: {CHROMIUM} is not installed (apt-get install chromium)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // A batch of 1,000 small closures, every tenth still running.
    let sagas: Vec<_> = (0..1000)
        .map(|i| {
            let mut s = Script::new(
                &format!("saga-{i:04}"),
                &format!("t{i:04}.onmicrosoft.com"),
                3,
            );
            s.stop_in_step_1 = i % 10 == 3;
            (s.saga_id.clone(), events(&s))
        })
        .collect();
    build(dir.path(), &sagas, 64);
    let report = export_html(dir.path(), &[]);
    let html = std::fs::read_to_string(&report).expect("report");
    assert_eq!(html.matches("<tr data-state=").count(), 1000);
    assert_eq!(well_formed(&html), Ok(()));
    let url = format!("file://{}", report.display());
    let profile = tempfile::tempdir().expect("profile");

    // The filter preset by the query: the completed tenants' rows hidden.
    let Some((ok, dom, log)) = chromium(
        profile.path(),
        &["--dump-dom"],
        &format!("{url}?state=running"),
    ) else {
        return;
    };
    assert!(ok, "chromium failed: {log}");
    let rows: Vec<&str> = dom
        .split("<tr data-state=\"")
        .skip(1)
        .map(|r| &r[..r.find('>').unwrap_or(0)])
        .collect();
    assert_eq!(rows.len(), 1000);
    let hidden = rows.iter().filter(|r| r.contains(" hidden=")).count();
    assert_eq!(hidden, 900, "completed rows hidden");
    assert!(rows
        .iter()
        .filter(|r| r.starts_with("running\""))
        .all(|r| !r.contains(" hidden=")));
    assert!(dom.contains("100 of 1000 tenants shown"), "count shown");

    // A text search preset by the fragment: one tenant left.
    let (ok, dom, log) = chromium(
        profile.path(),
        &["--dump-dom"],
        &format!("{url}#q=t0042.onmicrosoft"),
    )
    .expect("chromium present");
    assert!(ok, "chromium failed: {log}");
    assert!(dom.contains("1 of 1000 tenants shown"), "search applied");
    let shown: Vec<&str> = dom
        .split("<tr data-state=\"")
        .skip(1)
        .map(|r| &r[..r.find('>').unwrap_or(0)])
        .filter(|r| !r.contains(" hidden="))
        .collect();
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert!(shown[0].contains("saga-saga-0042"), "{shown:?}");

    // The first screen shows the overview table.
    let shot = dir.path().join("overview.png");
    let (ok, _, log) = chromium(
        profile.path(),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,900",
        ],
        &url,
    )
    .expect("chromium present");
    assert!(ok, "chromium screenshot failed: {log}");
    let header = pixels_of(&shot, OVERVIEW_RGB, 900);
    assert!(
        header > 5_000,
        "overview header above the fold: {header} pixels"
    );
}

#[test]
fn a_ten_thousand_user_tenant_shows_its_summary_above_the_fold() {
    if !Path::new(CHROMIUM).exists() {
        eprintln!("SKIPPED: {CHROMIUM} is not installed (apt-get install chromium)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = Script::new("saga-big", "big.onmicrosoft.com", 10_000);
    s.intent_size = 20;
    s.throttle_every = Some(1000);
    let sagas = vec![(s.saga_id.clone(), events(&s))];
    build(dir.path(), &sagas, 2000);
    let report = export_html(dir.path(), &["--saga", "saga-big"]);
    let html = std::fs::read_to_string(&report).expect("report");
    assert!(html.contains("10000 users deleted"), "summary counts");
    let url = format!("file://{}", report.display());
    let profile = tempfile::tempdir().expect("profile");
    let Some((ok, dom, log)) = chromium(profile.path(), &["--dump-dom"], &url) else {
        return;
    };
    assert!(ok, "chromium failed: {log}");
    // Names beside ids in the browser's DOM, detail collapsed.
    assert!(
        dom.contains(
            "<td title=\"big.onmicrosoft.com-user-009999\">user9999@big.onmicrosoft.com (User 9999)</td>"
        ),
        "named rows in the DOM"
    );
    assert!(dom.contains("<details class=\"calls\"><summary>"));
    assert_eq!(dom.matches("<tr class=\"ok\"").count(), 10_000 + 2 + 1);

    let shot = dir.path().join("big.png");
    let (ok, _, log) = chromium(
        profile.path(),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,900",
        ],
        &url,
    )
    .expect("chromium present");
    assert!(ok, "chromium screenshot failed: {log}");
    let summary = pixels_of(&shot, SUMMARY_RGB, 900);
    assert!(
        summary > 50_000,
        "the summary block fills much of the first screen: {summary} pixels"
    );
}
