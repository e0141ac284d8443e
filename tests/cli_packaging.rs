//! Packaging: `closeout completions SHELL` and `closeout man` generate from
//! the command-line definition and cover every subcommand.

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_closeout");

const SUBCOMMANDS: &[&str] = &[
    "daemon",
    "submit",
    "plan",
    "doctor",
    "status",
    "pause",
    "resume",
    "abort",
    "confirm",
    "demo",
    "sim",
    "audit",
    "verify",
    "completions",
    "man",
];

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run closeout")
}

#[test]
fn completions_for_each_shell_name_the_subcommands() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = run(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {out:?}");
        let script = String::from_utf8_lossy(&out.stdout);
        for sub in SUBCOMMANDS {
            assert!(script.contains(sub), "{shell}: {sub} missing");
        }
        assert!(script.contains("config"), "{shell}: options missing");
    }
    let out = run(&["completions", "bash"]);
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(script.contains("complete -F _closeout"), "{script}");
    let out = run(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2), "unknown shell: {out:?}");
}

#[test]
fn bash_accepts_the_completion_script() {
    let Ok(bash) = which("bash") else {
        eprintln!("no bash: skipped");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("closeout.bash");
    std::fs::write(&script, run(&["completions", "bash"]).stdout).expect("write");
    let out = Command::new(bash)
        .arg("-c")
        .arg(format!(
            "source {} && complete -p closeout",
            script.display()
        ))
        .output()
        .expect("run bash");
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("_closeout"));
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or(())
}

#[test]
fn man_page_is_roff_and_names_the_subcommands() {
    let out = run(&["man"]);
    assert!(out.status.success(), "{out:?}");
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.contains(".TH closeout 1"), "{page}");
    assert!(page.contains(".SH NAME"), "{page}");
    assert!(page.contains(".SH SUBCOMMANDS"), "{page}");
    for sub in SUBCOMMANDS {
        assert!(
            page.contains(&format!("closeout\\-{sub}(1)")),
            "{sub} missing:\n{page}"
        );
    }
    assert!(page.contains(env!("CARGO_PKG_VERSION")), "version missing");
}

#[test]
fn man_dir_writes_a_page_per_subcommand() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = run(&["man", "--dir", dir.path().to_str().expect("utf-8")]);
    assert!(out.status.success(), "{out:?}");
    assert!(dir.path().join("closeout.1").is_file());
    for sub in SUBCOMMANDS {
        let page = dir.path().join(format!("closeout-{sub}.1"));
        let text =
            std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
        assert!(text.contains(&format!(".TH closeout-{sub} 1")), "{text}");
    }
    let daemon = std::fs::read_to_string(dir.path().join("closeout-daemon.1")).expect("read");
    assert!(daemon.contains("\\-\\-config"), "{daemon}");

    let out = run(&["man", "--dir", "/nonexistent/closeout-man"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/closeout-man"));
}
