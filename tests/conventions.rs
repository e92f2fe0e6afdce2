//! Command-line conventions: shell completions, `--version` and `--help`'s reference sections.

use std::process::{Command, Output};

fn tarun(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tarun"))
        .args(args)
        .env_remove("TARUN_LOG")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn completions_for_each_shell_name_the_subcommands() {
    for shell in ["bash", "zsh", "fish"] {
        let out = tarun(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {out:?}");
        let script = stdout(&out);
        assert!(!script.trim().is_empty(), "{shell}: empty script");
        assert!(script.contains("tarun"), "{shell}: no `tarun` in\n{script}");
        assert!(
            script.contains("status"),
            "{shell}: no `status` in\n{script}"
        );
    }
}

#[test]
fn completions_for_an_unknown_shell_is_a_usage_error() {
    let out = tarun(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bash"), "{stderr}");
}

#[test]
fn version_names_the_release_and_the_features() {
    let out = tarun(&["--version"]);
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    let first = text.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(concat!("tarun ", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(first.starts_with("tarun 0.1.0"), "{text}");
    let features = text
        .lines()
        .find(|l| l.starts_with("built with: "))
        .unwrap_or_else(|| panic!("no features line in\n{text}"));
    for (on, name) in [
        (cfg!(feature = "cuda"), "cuda"),
        (cfg!(feature = "metal"), "metal"),
    ] {
        assert_eq!(features.contains(name), on, "{features}");
    }
}

#[test]
fn help_lists_exit_codes_and_environment_variables() {
    let out = tarun(&["--help"]);
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    assert!(text.contains("Exit codes"), "{text}");
    for var in [
        "TARUN_STORE",
        "TARUN_LOG",
        "TARUN_KERNELS",
        "TARUN_GPU_PRECISION",
        "TARUN_CPU_SIMD",
        "TARUN_HUGE_PAGES",
    ] {
        assert!(text.contains(var), "{var} missing from\n{text}");
    }
    for code in [
        "130  interrupted by SIGINT",
        "143  interrupted by SIGTERM",
        "129  interrupted by SIGHUP",
    ] {
        assert!(text.contains(code), "{code} missing from\n{text}");
    }
    // Each subcommand has its own summary (a hidden one's doc once ran into the next's).
    let completions = text
        .lines()
        .find(|l| l.trim_start().starts_with("completions "))
        .unwrap_or_else(|| panic!("no completions line in\n{text}"));
    assert!(
        completions.ends_with("Print a completion script for bash, zsh or fish"),
        "{completions}"
    );
    assert!(!text.contains("exec-node"), "{text}");
    // `-h` stays short and points to `--help`.
    let short = stdout(&tarun(&["-h"]));
    assert!(!short.contains("TARUN_HUGE_PAGES"), "{short}");
    assert!(short.contains("tarun --help"), "{short}");
}
