//! The HTML report renders in headless Chromium (Debian's `chromium`,
//! installed by `scripts/test.sh`): the browser's DOM of the file keeps every
//! saga's SVG timeline with one bar per step run, and a screenshot is drawn.

mod audit_support;

use audit_support::{build, closeout, events, Script};
use closeout::saga::Event;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";

/// Runs headless Chromium with `args` on `file`, killing it after a minute.
fn chromium(profile: &Path, args: &[&str], file: &Path) -> (bool, String, String) {
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
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", file.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{CHROMIUM} must be installed (apt-get install chromium): {e}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().expect("wait chromium").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish within a minute");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("chromium output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_html_report_renders_in_headless_chromium_with_one_bar_per_step() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sagas = Vec::new();
    for (i, tenant) in ["contoso", "fabrikam", "northwind"].iter().enumerate() {
        let mut s = Script::new(
            &format!("saga-{tenant}"),
            &format!("{tenant}.onmicrosoft.com"),
            8 + i * 7,
        );
        s.intent_size = 5;
        s.throttle_every = Some(4);
        s.in_doubt = i == 1;
        s.stop_in_step_1 = i == 2;
        sagas.push((s.saga_id.clone(), events(&s)));
    }
    build(dir.path(), &sagas, 3);
    let report = dir.path().join("report.html");
    let (code, _, err) = closeout(&[
        "audit",
        "--data-dir",
        dir.path().to_str().unwrap_or_default(),
        "--format",
        "html",
        "--output",
        report.to_str().unwrap_or_default(),
    ]);
    assert_eq!(code, 0, "{err}");

    let profile = tempfile::tempdir().expect("profile");
    let (ok, dom, log) = chromium(profile.path(), &["--dump-dom"], &report);
    assert!(ok, "chromium failed: {log}");
    assert!(
        !log.contains("Uncaught") && !log.contains("CONSOLE"),
        "console errors: {log}"
    );
    // The browser's own serialisation: every bar is still inside its SVG.
    for (id, evs) in &sagas {
        let start = dom
            .find(&format!("id=\"saga-{id}\""))
            .expect("saga section in the DOM");
        let section = &dom[start..];
        let section = &section[..section.find("</section>").expect("section end")];
        let svg =
            &section[section.find("<svg").expect("svg")..section.find("</svg>").expect("svg end")];
        let steps = evs
            .iter()
            .filter(|e| matches!(e, Event::StepStarted { .. }))
            .count();
        assert_eq!(
            svg.matches("<rect class=\"step ").count(),
            steps,
            "bars of {id}"
        );
        assert!(
            section.contains("<table class=\"changes\">"),
            "table of {id}"
        );
    }
    assert_eq!(dom.matches("<svg").count(), sagas.len());

    let shot = dir.path().join("report.png");
    let (ok, _, log) = chromium(
        profile.path(),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,900",
            "--hide-scrollbars",
        ],
        &report,
    );
    assert!(ok, "chromium screenshot failed: {log}");
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(png.len() > 10_000, "a blank page? {} bytes", png.len());
}
