//! `tarun run --dry-run`'s time estimate, end to end: on the quickstart (nothing in the store,
//! so every node is priced from built-in figures), and on a small part of the tiny study after
//! a real run (nothing would run; a forced node is priced from its own record).

mod support;

use std::path::Path;

use support::{SMALL, TINY, run_ok, tarun};

/// `tarun run MANIFEST --dry-run ARGS...`: its stdout, after checking it succeeded.
fn dry_run(store: &Path, manifest: &str, args: &[&str]) -> String {
    let out = tarun(store)
        .args(["run", manifest, "--dry-run"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting `{prefix}` in:\n{text}"))
}

#[test]
fn the_quickstart_dry_run_estimates_its_wall_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let text = dry_run(&store, "experiments/quickstart.toml", &["--devices", "cpu"]);
    assert!(
        text.contains("235 of 235 selected nodes would run"),
        "{text}"
    );
    // Every node says how long it should take, where and from what.
    let nodes: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("would run"))
        .collect();
    assert_eq!(nodes.len(), 235);
    for l in &nodes {
        assert!(
            l.ends_with(" on cpu (default)") || l.ends_with(" beside the jobs (default)"),
            "{l}"
        );
        assert!(l.contains("  ~"), "{l}");
    }
    let wall = line(&text, "estimated wall time: ");
    assert!(wall.contains(" on cpu (1 slot); total about "), "{wall}");
    let sources = line(&text, "estimates: ");
    assert!(
        sources.starts_with(
            "estimates: 0 from records, 0 from bench figures, 235 from built-in defaults"
        ),
        "{sources}"
    );
    assert!(sources.contains("tarun bench"), "{sources}");
    // A dry run writes nothing, not even an empty store.
    assert!(!store.exists());
}

#[test]
fn a_cached_study_estimates_nothing_and_a_forced_node_uses_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let target = ["--target", SMALL, "--devices", "cpu"];
    let before = dry_run(&store, TINY, &target);
    assert!(
        before.contains("5 of 5 selected nodes would run"),
        "{before}"
    );
    run_ok(&store, TINY, &[SMALL]);

    let after = dry_run(&store, TINY, &target);
    assert!(after.contains("0 of 5 selected nodes would run"), "{after}");
    assert_eq!(
        line(&after, "estimated wall time"),
        "estimated wall time: 0 s, nothing would run"
    );
    assert!(!after.contains("estimates: "), "{after}");

    // Forced, the evaluation is priced from the record it just wrote.
    let forced = dry_run(&store, TINY, &[&target[..], &["--force", SMALL]].concat());
    let node = line(&forced, &format!("would run  {SMALL}  "));
    assert!(node.ends_with(" on cpu (record)"), "{node}");
    assert!(
        line(&forced, "estimates: ").starts_with("estimates: 1 from records, 0 from bench"),
        "{forced}"
    );
    // On a GPU the CPU's record says nothing: the built-in H200 figures price it.
    let gpu = dry_run(
        &store,
        TINY,
        &["--target", SMALL, "--force", SMALL, "--devices", "cuda:0"],
    );
    let node = line(&gpu, &format!("would run  {SMALL}  "));
    assert!(node.ends_with(" on cuda:0 (default)"), "{node}");
    assert!(gpu.contains("an H200's figures"), "{gpu}");
}
