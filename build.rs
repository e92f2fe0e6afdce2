//! Records, for `tarun --version`, the git commit the binary is built from and the GPU features
//! compiled in. It never fails the build: without git or `.git` (a source tarball) the version
//! simply names no commit; `TARUN_GIT_COMMIT` set in the environment overrides what git says.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=TARUN_GIT_COMMIT");

    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    // Without our own `.git`, git would name the commit of any repository above this one.
    let in_git = git_dir(&root)
        .inspect(|git_dir| watch_head(git_dir))
        .is_some();
    if !in_git {
        // Watch for a `.git` to appear. Otherwise a build that once ran without one (a copy of
        // the tree sharing this target folder, a moment when `.git` was out of place) leaves a
        // version without commit that no later commit refreshes: this script would watch only
        // itself. Cargo reruns a script while a watched path is missing, so a source tarball
        // rebuilds the binary's version on each build; that is the price of never going stale.
        println!("cargo:rerun-if-changed=.git");
    }
    let commit = std::env::var("TARUN_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| in_git.then(|| git_commit(&root)).flatten());
    let version = match commit {
        Some(commit) => format!("{} ({})", env_or("CARGO_PKG_VERSION", "?"), commit.trim()),
        None => env_or("CARGO_PKG_VERSION", "?"),
    };
    println!("cargo:rustc-env=TARUN_VERSION={version}");

    let features: Vec<&str> = [
        ("CARGO_FEATURE_CUDA", "cuda"),
        ("CARGO_FEATURE_METAL", "metal"),
    ]
    .into_iter()
    .filter(|(var, _)| std::env::var_os(var).is_some())
    .map(|(_, name)| name)
    .collect();
    let features = if features.is_empty() {
        "none (CPU only)".to_owned()
    } else {
        features.join(", ")
    };
    println!("cargo:rustc-env=TARUN_FEATURES={features}");
}

fn env_or(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

/// `.git` itself, or the directory a `.git` file (worktree, submodule) points to.
fn git_dir(root: &Path) -> Option<PathBuf> {
    let dot_git = root.join(".git");
    if dot_git.is_dir() {
        return Some(dot_git);
    }
    let text = std::fs::read_to_string(&dot_git).ok()?;
    let target = text.trim().strip_prefix("gitdir:")?.trim();
    Some(root.join(target))
}

/// Reruns the build script when HEAD moves: on a checkout (`HEAD` changes) or a commit (the
/// branch's ref file, or `packed-refs`, changes). Only existing files are named: Cargo reruns
/// a script every build when a named file is missing.
fn watch_head(git_dir: &Path) {
    let head = git_dir.join("HEAD");
    if !head.is_file() {
        return;
    }
    println!("cargo:rerun-if-changed={}", head.display());
    let Ok(text) = std::fs::read_to_string(&head) else {
        return;
    };
    if let Some(reference) = text.trim().strip_prefix("ref:") {
        let reference = reference.trim();
        // A worktree keeps its own HEAD but shares refs with the main repository.
        let common = std::fs::read_to_string(git_dir.join("commondir"))
            .ok()
            .map(|c| git_dir.join(c.trim()))
            .unwrap_or_else(|| git_dir.to_path_buf());
        let mut candidates = vec![git_dir.join(reference), common.join(reference)];
        candidates.dedup();
        for candidate in candidates {
            if candidate.is_file() {
                println!("cargo:rerun-if-changed={}", candidate.display());
            }
        }
        let packed = common.join("packed-refs");
        if packed.is_file() {
            println!("cargo:rerun-if-changed={}", packed.display());
        }
    }
}

fn git_commit(root: &Path) -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(root)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let commit = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!commit.is_empty()).then_some(commit)
}
