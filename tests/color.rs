//! `--color auto|always|never` (issue 24, item 11): one option for every command, before or after
//! the subcommand, deciding the escape codes of `results`' heat table on stdout and of the logs
//! on stderr. `auto` colours only a terminal, and not when `NO_COLOR` is set and not empty.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{run_ok, tarun};

/// One network, a 2x2 (alpha, rho) grid of scored candidates: 10 nodes, about a second.
const MANIFEST: &str = r#"
[study]
name = "colour"
seed = 7
protocol = "seed"

[data]
source = "synthetic"
train-per-class = 16
test-per-class = 10
validation-per-class = 0

[matrix]
alpha = [-1.0, -2.0]
rho = [0.5, 0.9]

[recipe.base]
lr = 3e-3
epochs = 1
batch-size = 32

[train.base]
arch = "resnet18"
width = 0.0625
recipe = "base"

[expert.expert]
from = "base"
only = [8]
lr = 3e-4
epochs = 1
batch-size = 16

[ablate.candidate]
for-each = ["alpha", "rho"]
base = "base"
vectors = [{ expert = "expert", alpha = "${alpha}", rho = "${rho}" }]

[evaluate.score]
for-each = ["alpha", "rho"]
model = "candidate[alpha=${alpha},rho=${rho}]"
forget = 8
metrics = ["retain-acc"]
"#;

const PIVOT: [&str; 6] = ["--rows", "alpha", "--cols", "rho", "--value", "retain-acc"];

struct Study {
    _dir: tempfile::TempDir,
    store: PathBuf,
    manifest: String,
}

fn study() -> Study {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let manifest = dir.path().join("colour.toml");
    std::fs::write(&manifest, MANIFEST).unwrap();
    let manifest = manifest.to_str().unwrap().to_owned();
    run_ok(&store, &manifest, &[]);
    Study {
        _dir: dir,
        store,
        manifest,
    }
}

/// `tarun BEFORE results M PIVOT AFTER` into a pipe.
fn results(s: &Study, before: &[&str], after: &[&str], no_color: Option<&str>) -> Output {
    let mut cmd = tarun(&s.store);
    cmd.args(before)
        .arg("results")
        .arg(&s.manifest)
        .args(PIVOT)
        .args(after);
    match no_color {
        Some(v) => cmd.env("NO_COLOR", v),
        None => cmd.env_remove("NO_COLOR"),
    };
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    out
}

fn has_escapes(bytes: &[u8]) -> bool {
    bytes.contains(&0x1b)
}

#[test]
fn results_heat_table_follows_color() {
    let s = study();
    // Arguments before and after `results`, `NO_COLOR`, whether the table is coloured.
    type Case<'a> = (&'a [&'a str], &'a [&'a str], Option<&'a str>, bool);
    let cases: [Case; 7] = [
        (&[], &["--color", "always"], None, true),
        (&["--color", "always"], &[], None, true),
        (&[], &["--color=always"], Some("1"), true),
        (&[], &["--color", "never"], None, false),
        (&["--color", "never"], &[], None, false),
        // A pipe is no terminal: `auto` (the default) leaves it plain.
        (&[], &[], None, false),
        (&[], &["--color", "auto"], Some("1"), false),
    ];
    for (before, after, no_color, coloured) in cases {
        let out = results(&s, before, after, no_color);
        assert_eq!(
            has_escapes(&out.stdout),
            coloured,
            "{before:?} {after:?} NO_COLOR={no_color:?}:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn an_unknown_color_is_a_usage_error() {
    let out = tarun(Path::new("unused"))
        .args(["--color", "sometimes", "devices"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("always") && stderr.contains("never"),
        "{stderr}"
    );
}

/// `script(1)` runs `tarun ARGS` on a pseudo-terminal: what `auto` sees at a terminal. `None`
/// where `script` is not installed.
fn on_a_terminal(s: &Study, args: &str, no_color: Option<&str>) -> Option<Vec<u8>> {
    let bin = env!("CARGO_BIN_EXE_tarun");
    let line = format!("{bin} results {} {} {args}", s.manifest, PIVOT.join(" "));
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &line, "/dev/null"])
        .env("TARUN_STORE", &s.store)
        .env_remove("TARUN_LOG");
    match no_color {
        Some(v) => cmd.env("NO_COLOR", v),
        None => cmd.env_remove("NO_COLOR"),
    };
    let out = cmd.output().ok()?;
    if !out.status.success() {
        eprintln!("script(1) failed here, skipping the terminal cases: {out:?}");
        return None;
    }
    Some(out.stdout)
}

#[test]
fn auto_colours_a_terminal_unless_no_color_is_set() {
    let s = study();
    let Some(plain_auto) = on_a_terminal(&s, "", None) else {
        return;
    };
    assert!(
        has_escapes(&plain_auto),
        "{}",
        String::from_utf8_lossy(&plain_auto)
    );
    let cases = [
        ("", Some("1"), false),
        // An empty NO_COLOR is unset (no-color.org).
        ("", Some(""), true),
        ("--color never", None, false),
        ("--color always", Some("1"), true),
    ];
    for (args, no_color, coloured) in cases {
        let out = on_a_terminal(&s, args, no_color).unwrap();
        // `script` itself adds no escape codes: any come from tarun.
        assert_eq!(
            has_escapes(&out),
            coloured,
            "{args:?} NO_COLOR={no_color:?}: {}",
            String::from_utf8_lossy(&out)
        );
    }
}

#[test]
fn logs_on_stderr_follow_color() {
    let s = study();
    // Everything is cached: the engine logs each hit at debug level.
    let logs = |color: &str| {
        let out = tarun(&s.store)
            .args(["--color", color, "run", &s.manifest, "--no-progress"])
            .env("TARUN_LOG", "debug")
            .env_remove("NO_COLOR")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains("is cached"), "{stderr}");
        stderr
    };
    assert!(logs("always").contains('\x1b'));
    assert!(!logs("never").contains('\x1b'));
    assert!(!logs("auto").contains('\x1b'), "stderr is a pipe here");
}

#[test]
fn node_lines_on_stderr_follow_color() {
    let s = study();
    let run = |color: &str| {
        let out = tarun(&s.store)
            .args(["--color", color, "run", &s.manifest, "--no-progress"])
            .args(["--force", "score[alpha=-1,rho=0.5]"])
            .env_remove("NO_COLOR")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stderr).unwrap()
    };
    // The outcome, green, then the node.
    let always = run("always");
    assert!(
        always.contains("\x1b[32mdone   \x1b[0m score[alpha=-1,rho=0.5]"),
        "{always:?}"
    );
    let never = run("never");
    assert!(!never.contains('\x1b'), "{never:?}");
    assert!(never.contains("done    score[alpha=-1,rho=0.5]"), "{never}");
}
