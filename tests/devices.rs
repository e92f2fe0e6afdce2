//! `tarun run --devices` with a GPU backend this build lacks: a usage error before planning.

mod support;

use support::{TINY, run_args, tarun};

/// Runs `tarun run TINY --devices DEVICE` and returns its exit code and stderr.
fn run_on(device: &str) -> (Option<i32>, String) {
    let store = tempfile::tempdir().unwrap();
    let out = tarun(store.path())
        .args(run_args(TINY, &[]))
        .args(["--devices", device])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn assert_missing_feature(device: &str, feature: &str) {
    let (code, stderr) = run_on(device);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("built without the `{feature}` feature"))
            && stderr.contains(&format!("--features {feature}")),
        "{stderr}"
    );
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_device_without_cuda_feature_is_a_usage_error() {
    assert_missing_feature("cuda:0", "cuda");
}

#[cfg(not(feature = "metal"))]
#[test]
fn metal_device_without_metal_feature_is_a_usage_error() {
    assert_missing_feature("metal:1*2", "metal");
}

#[cfg(not(feature = "cuda"))]
#[test]
fn missing_feature_is_reported_before_the_manifest_is_read() {
    let store = tempfile::tempdir().unwrap();
    let out = tarun(store.path())
        .args(["run", "no/such/manifest.toml", "--devices", "cuda:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`cuda` feature"), "{stderr}");
}

#[test]
fn cpu_device_is_always_accepted() {
    let store = tempfile::tempdir().unwrap();
    let out = tarun(store.path())
        .args(run_args(TINY, &[]))
        .args(["--devices", "cpu", "--dry-run"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A dry run runs nothing, so it may name a GPU this build lacks: that is how one sees what a
/// study would take on it.
#[cfg(not(feature = "cuda"))]
#[test]
fn a_dry_run_may_name_a_device_the_build_lacks() {
    let store = tempfile::tempdir().unwrap();
    let out = tarun(store.path())
        .args(run_args(TINY, &[]))
        .args(["--devices", "cuda:0*4", "--dry-run"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("on cuda:0"), "{stdout}");
}
