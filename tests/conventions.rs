//! Command-line conventions: shell completions, `--version`, `--help`'s reference sections and
//! the man pages.

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

/// The visible subcommands, as `--help` lists them.
fn subcommands() -> Vec<String> {
    let help = stdout(&tarun(&["--help"]));
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        // A summary that wraps goes on with deeper indentation.
        .filter(|l| !l[2..].starts_with(' '))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_man_page_names_every_subcommand_the_exit_codes_and_the_environment() {
    let out = tarun(&["man"]);
    assert!(out.status.success(), "{out:?}");
    let page = stdout(&out);
    assert!(page.starts_with(".TH TARUN 1 "), "{}", &page[..200]);
    let names = subcommands();
    assert!(
        names.len() >= 10 && names.contains(&"man".to_owned()),
        "{names:?}"
    );
    for name in &names {
        // roff escapes the hyphen: `tarun\-run(1)`.
        let entry = format!("tarun\\-{}(1)", name.replace('-', "\\-"));
        assert!(page.contains(&entry), "{entry} missing from\n{page}");
    }
    assert!(
        !page.contains("exec\\-node"),
        "a hidden subcommand is listed"
    );
    for section in [".SH \"EXIT STATUS\"", ".SH ENVIRONMENT", ".SH OPTIONS"] {
        assert!(page.contains(section), "{section} missing from\n{page}");
    }
    // Each code and variable as `--help` has it, one tagged paragraph each.
    for code in ["0", "1", "2", "3", "4", "130", "143", "129"] {
        assert!(
            page.contains(&format!(".TP\n\\fB{code}\\fR\n")),
            "code {code}"
        );
    }
    for var in ["TARUN_STORE", "TARUN_LOG", "TARUN_CPU_SIMD", "NO_COLOR"] {
        assert!(page.contains(&format!(".TP\n\\fB{var}\\fR\n")), "{var}");
    }
    // man(1) renders it without a warning, where groff is installed.
    if let Ok(rendered) = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        use std::io::Write;
        let mut child = rendered;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(page.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let warnings = String::from_utf8_lossy(&out.stderr);
        assert!(warnings.trim().is_empty(), "groff: {warnings}");
    }
}

#[test]
fn each_subcommand_has_a_page_and_dir_writes_them_all() {
    let page = stdout(&tarun(&["man", "run"]));
    assert!(page.starts_with(".TH TARUN-RUN 1 "), "{}", &page[..200]);
    assert!(page.contains("\\-\\-dry\\-run"), "{page}");
    assert!(page.contains(".SH \"SEE ALSO\""), "{page}");
    let data = stdout(&tarun(&["man", "data"]));
    for nested in ["tarun\\-data\\-fetch(1)", "tarun\\-data\\-info(1)"] {
        assert!(data.contains(nested), "{nested} missing from\n{data}");
    }

    let unknown = tarun(&["man", "nope"]);
    assert_eq!(unknown.status.code(), Some(2), "{unknown:?}");
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("status"));

    let dir = tempfile::tempdir().unwrap();
    let out = tarun(&["man", "--dir", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let mut written: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    written.sort();
    let mut expected: Vec<String> = subcommands()
        .iter()
        .map(|n| format!("tarun-{n}.1"))
        .chain(["tarun.1", "tarun-data-fetch.1", "tarun-data-info.1"].map(str::to_owned))
        .collect();
    expected.sort();
    assert_eq!(written, expected);
    let main = std::fs::read_to_string(dir.path().join("tarun.1")).unwrap();
    assert_eq!(main, stdout(&tarun(&["man"])));
    // The listing names each file written.
    assert_eq!(stdout(&out).lines().count(), expected.len());
}
