//! Where and how a node runs: `[slurm]`, a node's `slurm = { ... }`, its `device` and its
//! `precision`. Validated where written, kept out of the parameters (and so out of the keys).

use indoc::indoc;
use miette::{GraphicalReportHandler, GraphicalTheme};
use serde_json::json;
use tarun_core::manifest::{self, DeviceRequest, ErrorKind, GpuPrecision};
use tarun_core::plan::node_key;

const STUDY: &str = indoc! {r#"
    [study]
    name = "t"

    [slurm]
    partition = "gpu"
    time = "2:00:00"
    mem = "16G"
    options = ["--account=abc"]

    [recipe.big]
    slurm = { cpus = 8, gpus = 1 }

    [train.base]
    arch = "resnet18"
    lr = 0.1
    recipe = "big"

    [train.small]
    arch = "resnet18"
    lr = 0.1
    slurm = { time = 30, mem = 2048, partition = "cpu" }
"#};

#[test]
fn resources_are_read_and_are_not_parameters() {
    let s = manifest::parse_str("study.toml", STUDY, &[]).unwrap();
    assert_eq!(
        serde_json::Value::Object(s.slurm.clone()),
        json!({"partition": "gpu", "time": "2:00:00", "mem": "16G", "options": ["--account=abc"]})
    );
    let base = s.node("base").unwrap();
    assert_eq!(
        serde_json::Value::Object(base.slurm.clone()),
        json!({"cpus": 8, "gpus": 1})
    );
    let small = s.node("small").unwrap();
    // Integers are minutes and megabytes, kept as the strings sbatch takes.
    assert_eq!(
        serde_json::Value::Object(small.slurm.clone()),
        json!({"time": "30", "mem": "2048", "partition": "cpu"})
    );
    assert!(!base.params.contains_key("slurm") && !small.params.contains_key("slurm"));
    // Same parameters, different resources: the same key material.
    assert_eq!(base.params, small.params);
}

fn first_error(text: &str) -> (ErrorKind, usize, String) {
    let errors = match manifest::parse_str("study.toml", text, &[]) {
        Ok(_) => panic!("expected an error in:\n{text}"),
        Err(e) => e,
    };
    let e = errors.errors().first().expect("one error");
    let line = e.location().map_or(0, |l| l.line);
    (e.kind(), line, e.to_string())
}

#[test]
fn bad_resources_are_errors_at_their_place() {
    let cases = [
        (
            "[slurm]\nmem = \"lots\"",
            ErrorKind::InvalidValue,
            5,
            "invalid `mem`",
        ),
        (
            "[slurm]\ntime = \"1:2:3:4\"",
            ErrorKind::InvalidValue,
            5,
            "invalid `time`",
        ),
        ("[slurm]\ncpus = 0", ErrorKind::InvalidValue, 5, "`cpus`"),
        (
            "[slurm]\ngpu = 1",
            ErrorKind::UnknownKey,
            5,
            "unknown key `gpu`",
        ),
        (
            "[train.x]\narch = \"resnet18\"\nlr = 1\nslurm = { cpu = 2 }",
            ErrorKind::UnknownKey,
            7,
            "unknown key `cpu`",
        ),
        (
            "[train.x]\narch = \"resnet18\"\nlr = 1\nslurm = 4",
            ErrorKind::WrongType,
            7,
            "wrong type for `slurm`",
        ),
        (
            "[train.x]\narch = \"resnet18\"\nlr = 1\nslurm = { options = [\"-A x\"] }",
            ErrorKind::UnknownKey,
            7,
            "unknown key `options`",
        ),
    ];
    for (tail, kind, line, message) in cases {
        let text = format!("[study]\nname = \"t\"\n\n{tail}\n");
        let (k, l, m) = first_error(&text);
        assert_eq!((k, l), (kind, line), "{tail}: {m}");
        assert!(m.contains(message), "{tail}: `{m}` lacks `{message}`");
    }
}

#[test]
fn slurm_times_and_sizes_take_sbatch_forms() {
    for time in [
        "30",
        "30:00",
        "2:00:00",
        "1-12",
        "1-12:30",
        "1-12:30:00",
        "UNLIMITED",
    ] {
        let text = format!("[study]\nname = \"t\"\n[slurm]\ntime = \"{time}\"\n");
        assert!(manifest::parse_str("s.toml", &text, &[]).is_ok(), "{time}");
    }
    for mem in ["500", "500M", "16G", "1T", "64k"] {
        let text = format!("[study]\nname = \"t\"\n[slurm]\nmem = \"{mem}\"\n");
        assert!(manifest::parse_str("s.toml", &text, &[]).is_ok(), "{mem}");
    }
    for bad in ["", "G", "16GB", "-1", "1.5G"] {
        let text = format!("[study]\nname = \"t\"\n[slurm]\nmem = \"{bad}\"\n");
        assert!(manifest::parse_str("s.toml", &text, &[]).is_err(), "{bad}");
    }
}

#[test]
fn device_requests_are_read_and_are_not_parameters() {
    let text = indoc! {r#"
        [study]
        name = "t"
        [train.gpu]
        arch = "resnet18"
        lr = 0.1
        device = "gpu"
        [train.cpu]
        arch = "resnet18"
        lr = 0.1
        device = "cpu"
        [train.any]
        arch = "resnet18"
        lr = 0.1
    "#};
    let s = manifest::parse_str("study.toml", text, &[]).unwrap();
    let device = |id: &str| s.node(id).unwrap().device;
    assert_eq!(device("gpu"), DeviceRequest::Gpu);
    assert_eq!(device("cpu"), DeviceRequest::Cpu);
    assert_eq!(device("any"), DeviceRequest::Any);
    assert_eq!(s.node("gpu").unwrap().params, s.node("any").unwrap().params);
    let bad = text.replace(r#"device = "cpu""#, r#"device = "tpu""#);
    let (kind, line, message) = first_error(&bad);
    assert_eq!((kind, line), (ErrorKind::InvalidValue, 10), "{message}");
}

#[test]
fn precision_is_read_and_is_not_in_the_key() {
    let text = indoc! {r#"
        [study]
        name = "t"
        [train.fp32]
        arch = "resnet18"
        lr = 0.1
        precision = "fp32"
        [train.tf32]
        arch = "resnet18"
        lr = 0.1
        precision = "tf32"
        [train.default]
        arch = "resnet18"
        lr = 0.1
    "#};
    let s = manifest::parse_str("study.toml", text, &[]).unwrap();
    let precision = |id: &str| s.node(id).unwrap().precision;
    assert_eq!(precision("fp32"), GpuPrecision::Fp32);
    assert_eq!(precision("tf32"), GpuPrecision::Tf32);
    assert_eq!(precision("default"), GpuPrecision::Default);
    let key = |id: &str| node_key(&s, s.node(id).unwrap(), &[], 1, &"data".into()).0;
    assert!(!s.node("fp32").unwrap().params.contains_key("precision"));
    assert_eq!(key("fp32"), key("default"));
    assert_eq!(key("tf32"), key("default"));

    // The same study without the key: the node's key is the one it had with it.
    let without = text.replace("precision = \"fp32\"\n", "");
    let plain = manifest::parse_str("study.toml", &without, &[]).unwrap();
    let fp32 = s.node("fp32").unwrap();
    let plain_fp32 = plain.node("fp32").unwrap();
    assert_eq!(plain_fp32.precision, GpuPrecision::Default);
    assert_eq!(
        node_key(&plain, plain_fp32, &[], 1, &"data".into()),
        node_key(&s, fp32, &[], 1, &"data".into())
    );
}

#[test]
fn unknown_precision_is_an_error_at_its_place() {
    let text = indoc! {r#"
        [study]
        name = "t"
        [evaluate.e]
        model = "base"
        [train.base]
        arch = "resnet18"
        lr = 0.1
        precision = "fp16"
    "#};
    let errors = match manifest::parse_str("study.toml", text, &[]) {
        Ok(_) => panic!("`fp16` is not a precision"),
        Err(e) => e,
    };
    let [e] = errors.errors() else {
        panic!("one error expected: {errors:?}");
    };
    let place = e.location().expect("located");
    assert_eq!(
        (e.kind(), place.file.as_str(), place.line),
        (ErrorKind::InvalidValue, "study.toml", 8),
        "{e}"
    );
    let message = e.to_string();
    assert!(message.contains("`precision`"), "{message}");
    let mut rendered = String::new();
    GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
        .render_report(&mut rendered, &errors)
        .unwrap();
    for part in ["study.toml:8", "fp16", "tf32", "fp32"] {
        assert!(
            rendered.contains(part),
            "`{part}` missing from:\n{rendered}"
        );
    }
}
