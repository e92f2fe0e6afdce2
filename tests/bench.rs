//! `tarun bench`: the JSON it prints, the alternation with a PyTorch process (played here by a
//! fake `python3` that answers the `torch_bench.py --serve` protocol with fixed step times, so
//! the arithmetic is known), and its errors.

use std::path::Path;

use assert_cmd::Command;
use serde_json::Value;

/// `tarun bench` on the smallest row: ResNet-18 width 0.25, batch 2, one step, `rounds` rounds,
/// with `dir` first on the PATH (its fake `python3`) and its `store/` as the store the results
/// are saved in.
fn bench(dir: &Path, rounds: &str) -> std::process::Output {
    bench_batch(dir, rounds, "2")
}

fn bench_batch(dir: &Path, rounds: &str, batch: &str) -> std::process::Output {
    let old = std::env::var("PATH").unwrap_or_default();
    Command::cargo_bin("tarun")
        .expect("binary")
        .args(["bench", "--json", "--arch", "resnet18", "--width", "0.25"])
        .args(["--batch", batch, "--steps", "1", "--rounds", rounds])
        .env("PATH", format!("{}:{old}", dir.display()))
        .env("TARUN_STORE", dir.join("store"))
        .env_remove("TARUN_KERNELS")
        .output()
        .expect("tarun bench runs")
}

fn json(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "tarun bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

/// A `python3` whose `import torch` succeeds and whose `--serve` process answers every `train N`
/// with N steps of 0.25 s and every `infer N` with N steps of 0.125 s as the eager variant;
/// 0.2 s and 0.25 s as the `channels_last` one; and, as `compile`, an error to every command, as
/// when there is no C++ compiler (or, with `broken`, every variant exits at once).
fn fake_python(dir: &Path, broken: bool) {
    let serve = if broken {
        "echo 'torch exploded' >&2; exit 3".to_owned()
    } else {
        r#"if [ "$8" = compile ]; then
  while read cmd n; do echo '{"error": "InductorError: no C++ compiler"}'; done
  exit 0
fi
if [ "$8" = channels_last ]; then train=0.2 infer=0.25 peak=400; else train=0.25 infer=0.125 peak=321.5; fi
while read cmd n; do
  case "$cmd" in
    warmup) echo "{\"times\": [], \"peak_mb\": $peak}" ;;
    train) t=$train ;;
    infer) t=$infer ;;
    *) echo "unknown $cmd" >&2; exit 4 ;;
  esac
  if [ "$cmd" != warmup ]; then
    list=$t; i=1; while [ $i -lt $n ]; do list="$list, $t"; i=$((i+1)); done
    echo "{\"times\": [$list]}"
  fi
done"#
            .to_owned()
    };
    // Next to itself, `env.txt`: its own GLIBC_TUNABLES, then its parent's (tarun's).
    let env_log = format!(
        "echo \"child=${{GLIBC_TUNABLES-unset}}\" > '{}/env.txt'\n\
         tr '\\0' '\\n' < /proc/$PPID/environ | grep '^GLIBC_TUNABLES=' >> '{}/env.txt'\n",
        dir.display(),
        dir.display()
    );
    let script = format!(
        "#!/bin/sh\n# argv: -c CODE, or SCRIPT --serve ARCH WIDTH BATCH THREADS DEVICE VARIANT\n\
         [ \"$1\" = -c ] && exit 0\n[ \"$2\" = --serve ] || exit 5\n\
         echo \"$6 $8\" >> '{}/threads.txt'\nif [ \"$8\" = eager ]; then\n{env_log}fi\n{serve}\n",
        dir.display()
    );
    let path = dir.join("python3");
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn json_rows_with_pytorch_alternating() {
    let dir = tempfile::tempdir().unwrap();
    fake_python(dir.path(), false);
    let v = json(&bench(dir.path(), "3"));
    assert_eq!(v["torch"], true);
    assert_eq!(
        (v["steps"].as_u64(), v["rounds"].as_u64()),
        (Some(1), Some(3))
    );
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(
        (
            row["arch"].as_str(),
            row["width"].as_f64(),
            row["batch"].as_u64()
        ),
        (Some("resnet18"), Some(0.25), Some(2))
    );
    for key in ["train_images_per_s", "infer_images_per_s"] {
        let rate = row[key].as_f64().unwrap();
        assert!(rate.is_finite() && rate > 0.0, "{key} = {rate}");
    }
    // Batch 2 over the fake's step times: 2 / 0.25 and 2 / 0.125.
    assert_eq!(row["torch_train_images_per_s"].as_f64(), Some(8.0));
    assert_eq!(row["torch_infer_images_per_s"].as_f64(), Some(16.0));
    // The last answer that reported a peak.
    assert_eq!(row["torch_peak_mb"].as_f64(), Some(321.5));
    // channels_last: 2 / 0.2 and 2 / 0.25, its own process's peak.
    assert_eq!(
        row["torch_channels_last_train_images_per_s"].as_f64(),
        Some(10.0)
    );
    assert_eq!(
        row["torch_channels_last_infer_images_per_s"].as_f64(),
        Some(8.0)
    );
    assert_eq!(row["torch_channels_last_peak_mb"].as_f64(), Some(400.0));
    assert!(row["torch_channels_last_error"].is_null());
    // torch.compile failed: no figures, the reason, and the bench went on.
    assert!(row["torch_compile_train_images_per_s"].is_null());
    assert!(row["torch_compile_infer_images_per_s"].is_null());
    assert_eq!(
        row["torch_compile_error"].as_str(),
        Some("InductorError: no C++ compiler")
    );
    // The best column: channels_last for training (10 > 8), eager for inference (16 > 8); the
    // ratios are tarun's rates over eager's and over the best's.
    assert_eq!(row["torch_best_train"].as_str(), Some("channels_last"));
    assert_eq!(row["torch_best_train_images_per_s"].as_f64(), Some(10.0));
    assert_eq!(row["torch_best_infer"].as_str(), Some("eager"));
    assert_eq!(row["torch_best_infer_images_per_s"].as_f64(), Some(16.0));
    let (train, infer) = (
        row["train_images_per_s"].as_f64().unwrap(),
        row["infer_images_per_s"].as_f64().unwrap(),
    );
    let close = |key: &str, want: f64| {
        let got = row[key].as_f64().unwrap();
        assert!(
            (got - want).abs() <= 1e-9 * want,
            "{key}: {got} against {want}"
        );
    };
    close("train_ratio", train / 8.0);
    close("infer_ratio", infer / 16.0);
    close("train_ratio_best", train / 10.0);
    close("infer_ratio_best", infer / 16.0);
    assert_eq!(
        v["torch_variants"],
        serde_json::json!(["eager", "channels_last", "compile"])
    );
    if cfg!(target_os = "linux") {
        assert!(row["peak_mb"].as_f64().unwrap() > 1.0);
    }
}

#[test]
fn without_pytorch_tarun_figures_alone() {
    let dir = tempfile::tempdir().unwrap();
    no_python(dir.path());
    let v = json(&bench(dir.path(), "1"));
    assert_eq!(v["torch"], false);
    let row = &v["rows"][0];
    assert!(row["torch_train_images_per_s"].is_null());
    assert!(row["train_images_per_s"].as_f64().unwrap() > 0.0);
}

/// A `python3` that cannot import torch, in `dir`.
fn no_python(dir: &Path) {
    let path = dir.join("python3");
    std::fs::write(&path, "#!/bin/sh\nexit 1\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The results land in `<store>/bench/cpu.json` for `run --dry-run`; a second run that measures
/// another batch adds its row to the file and replaces none it did not measure.
#[test]
fn results_are_saved_in_the_store_and_merged() {
    let dir = tempfile::tempdir().unwrap();
    no_python(dir.path());
    let first = bench(dir.path(), "1");
    json(&first);
    assert!(
        String::from_utf8_lossy(&first.stderr).contains("bench/cpu.json"),
        "the saved file is named on stderr"
    );
    json(&bench_batch(dir.path(), "1", "3"));
    let saved = dir.path().join("store/bench/cpu.json");
    let v: Value = serde_json::from_slice(&std::fs::read(&saved).unwrap()).unwrap();
    assert_eq!(v["device"], "cpu");
    assert!(v["measured"].is_string() && v["threads"].as_u64().unwrap() >= 1);
    let batches: Vec<u64> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["batch"].as_u64().unwrap())
        .collect();
    assert_eq!(batches, [2, 3]);
}

#[test]
fn a_failing_pytorch_process_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    fake_python(dir.path(), true);
    let out = bench(dir.path(), "1");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("torch_bench.py") && err.contains("torch exploded"),
        "{err}"
    );
}

#[test]
fn unknown_suite_and_network_are_usage_errors() {
    for args in [&["bench", "nonsense"][..], &["bench", "--arch", "lenet"]] {
        let out = Command::cargo_bin("tarun")
            .unwrap()
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

/// tarun runs with transparent huge pages for glibc's large mappings (it re-executes itself with
/// `GLIBC_TUNABLES=glibc.malloc.hugetlb=1`); the PyTorch process it compares with gets the
/// user's own environment back, here no GLIBC_TUNABLES at all.
#[test]
fn tarun_runs_with_huge_pages_and_pytorch_with_the_users_environment() {
    let dir = tempfile::tempdir().unwrap();
    fake_python(dir.path(), false);
    let old = std::env::var("PATH").unwrap_or_default();
    let out = Command::cargo_bin("tarun")
        .expect("binary")
        .args(["bench", "--json", "--arch", "resnet18", "--width", "0.25"])
        .args(["--batch", "2", "--steps", "1", "--rounds", "1"])
        .env("PATH", format!("{}:{old}", dir.path().display()))
        .env("TARUN_STORE", dir.path().join("store"))
        .env_remove("GLIBC_TUNABLES")
        .env_remove("TARUN_USER_GLIBC_TUNABLES")
        .env_remove("TARUN_HUGE_PAGES")
        .output()
        .expect("tarun bench runs");
    json(&out);
    let log = std::fs::read_to_string(dir.path().join("env.txt")).unwrap();
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        ["child=unset", "GLIBC_TUNABLES=glibc.malloc.hugetlb=1"],
        "{log}"
    );
}

/// `bench jobs` trains 1 and 2 copies at once and reports their total rate and its ratio to one
/// job's, computed from the rows it prints.
#[test]
fn the_jobs_suite_reports_the_throughput_of_concurrent_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::cargo_bin("tarun")
        .unwrap()
        .args([
            "bench", "jobs", "--json", "--arch", "resnet18", "--width", "0.25",
        ])
        .args([
            "--batch", "2", "--jobs", "1,2", "--steps", "1", "--rounds", "1",
        ])
        .env("TARUN_STORE", dir.path().join("store"))
        .output()
        .unwrap();
    let v = json(&out);
    let rows = v["rows"].as_array().expect("rows");
    let jobs: Vec<u64> = rows.iter().map(|r| r["jobs"].as_u64().unwrap()).collect();
    assert_eq!(jobs, [1, 2]);
    let rate = |i: usize| rows[i]["train_images_per_s"].as_f64().unwrap();
    assert!(rate(0) > 0.0 && rate(1) > 0.0, "{rows:?}");
    assert_eq!(rows[0]["speedup"].as_f64(), Some(1.0));
    let speedup = rows[1]["speedup"].as_f64().unwrap();
    assert!((speedup - rate(1) / rate(0)).abs() < 1e-9, "{rows:?}");
    let zero = Command::cargo_bin("tarun")
        .unwrap()
        .args(["bench", "jobs", "--jobs", "0"])
        .output()
        .unwrap();
    assert_eq!(zero.status.code(), Some(2));
}

/// `--threads 1,N` measures each row with 1 and with all N of the machine's threads, PyTorch's
/// process started with the same count; only the N-thread rows are saved for the estimates.
#[test]
fn rows_at_each_thread_count_with_pytorch_on_the_same() {
    let dir = tempfile::tempdir().unwrap();
    fake_python(dir.path(), false);
    let all = std::thread::available_parallelism().unwrap().get();
    let old = std::env::var("PATH").unwrap_or_default();
    let out = Command::cargo_bin("tarun")
        .unwrap()
        .args(["bench", "--json", "--arch", "resnet18", "--width", "0.25"])
        .args(["--batch", "2", "--steps", "1", "--rounds", "1"])
        .args(["--threads", &format!("1,{all}")])
        .env("PATH", format!("{}:{old}", dir.path().display()))
        .env("TARUN_STORE", dir.path().join("store"))
        .output()
        .unwrap();
    let v = json(&out);
    let threads: Vec<u64> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["threads"].as_u64().unwrap())
        .collect();
    assert_eq!(threads, [1, all as u64]);
    // One process per variant and row, each with the row's threads.
    let asked = std::fs::read_to_string(dir.path().join("threads.txt")).unwrap();
    let mut want: Vec<String> = [1, all]
        .iter()
        .flat_map(|n| ["eager", "channels_last", "compile"].map(|v| format!("{n} {v}")))
        .collect();
    // The three of a row start together and write in any order.
    let mut asked: Vec<&str> = asked.lines().collect();
    asked.sort_unstable();
    want.sort_unstable();
    assert_eq!(asked, want, "PyTorch's thread counts");
    let saved: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("store/bench/cpu.json")).unwrap(),
    )
    .unwrap();
    let saved: Vec<u64> = saved["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["threads"].as_u64().unwrap())
        .collect();
    assert_eq!(saved, [all as u64]);
    let zero = Command::cargo_bin("tarun")
        .unwrap()
        .args(["bench", "--threads", "0"])
        .output()
        .unwrap();
    assert_eq!(zero.status.code(), Some(2));
}
