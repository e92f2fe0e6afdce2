//! Hostile manifests, made by hand: matrices of a hundred thousand nodes and far more, references
//! that grow with the square of the matrix, huge numbers, deep nesting and unicode. Each either
//! loads or is rejected with located errors; none panics, overflows the stack or runs away with
//! time or memory (the refused ones are refused before anything is built).

use std::time::Instant;

use tarun_core::manifest::{self, ErrorKind, MAX_NODES, MAX_REFERENCES, ManifestErrors, Study};

const STUDY: &str = "[study]\nname = \"hostile\"\n";

/// Loads `text`; on rejection asserts that every error is located.
fn load(text: &str) -> Result<Study, ManifestErrors> {
    load_with(text, &[])
}

fn load_with(text: &str, overrides: &[String]) -> Result<Study, ManifestErrors> {
    let result = manifest::parse_str("hostile.toml", text, overrides);
    if let Err(errors) = &result {
        assert!(!errors.errors().is_empty());
        for e in errors.errors() {
            assert!(e.location().is_some(), "`{e}` has no location");
        }
    }
    result
}

fn kinds(errors: &ManifestErrors) -> Vec<ErrorKind> {
    errors.errors().iter().map(|e| e.kind()).collect()
}

/// A family of trainings over `axes` (`name = count` linspaces).
fn trainings(axes: &[(&str, usize)]) -> String {
    let mut m = format!("{STUDY}[matrix]\n");
    for (name, n) in axes {
        m.push_str(&format!("{name} = {{ linspace = [0, 1, {n}] }}\n"));
    }
    let names: Vec<String> = axes.iter().map(|(a, _)| format!("\"{a}\"")).collect();
    m.push_str(&format!(
        "[train.t]\nfor-each = [{}]\narch = \"resnet18\"\nlr = 0.1\n",
        names.join(", ")
    ));
    m
}

#[test]
fn a_hundred_thousand_nodes_load_and_one_more_is_refused_with_a_location() {
    let text = trainings(&[("a", 100), ("b", 1000)]);
    let started = Instant::now();
    let study = load(&text).expect("100,000 nodes are allowed");
    assert_eq!(study.nodes.len(), MAX_NODES);
    eprintln!("{MAX_NODES} nodes loaded in {:?}", started.elapsed());

    let one_more = format!("{text}[train.extra]\narch = \"resnet18\"\nlr = 0.1\n");
    let errors = load(&one_more).unwrap_err();
    assert_eq!(kinds(&errors), [ErrorKind::TooLarge]);
    let e = &errors.errors()[0];
    assert!(e.to_string().contains("at most 100000"), "{e}");
    let header = one_more.find("[train.extra]").unwrap();
    assert_eq!(
        e.span().unwrap().offset(),
        header,
        "points at the family that overflows"
    );
}

#[test]
fn matrices_past_the_limit_are_refused_before_they_are_built() {
    for (axes, count) in [
        (&[("a", 100_000), ("b", 2)][..], "200000"),
        (
            &[("a", 100_000), ("b", 100_000), ("c", 100_000)][..],
            "1000000000000000",
        ),
        (
            &[
                ("a", 100_000),
                ("b", 100_000),
                ("c", 100_000),
                ("d", 100_000),
            ][..],
            "more than 2^64",
        ),
    ] {
        let text = trainings(axes);
        let errors = load(&text).unwrap_err();
        assert_eq!(kinds(&errors), [ErrorKind::TooLarge], "{axes:?}");
        let e = &errors.errors()[0];
        assert!(e.to_string().contains(count), "{axes:?}: {e}");
        let for_each = text.find("[\"a\"").unwrap();
        assert_eq!(e.span().unwrap().offset(), for_each, "points at `for-each`");
    }
}

#[test]
fn references_growing_with_the_square_of_the_matrix_are_refused() {
    // 49,999 selections, each over all 49,999 scores: 2.5 billion references.
    let square = format!(
        "{STUDY}[matrix]\na = {{ linspace = [0, 1, 49999] }}\n\
         [train.base]\narch = \"resnet18\"\nlr = 0.1\n\
         [evaluate.score]\nfor-each = [\"a\"]\nmodel = \"base\"\nforget = 1\nmetrics = [\"accuracy\"]\n\
         [select.best]\nfor-each = [\"a\"]\nover = \"score\"\nscore = \"accuracy\"\n"
    );
    let errors = load(&square).unwrap_err();
    assert!(kinds(&errors).contains(&ErrorKind::TooLarge), "{errors:?}");
    let e = errors
        .errors()
        .iter()
        .find(|e| e.kind() == ErrorKind::TooLarge)
        .unwrap();
    assert!(e.to_string().contains(&MAX_REFERENCES.to_string()), "{e}");
    assert_eq!(
        e.span().unwrap().offset(),
        square.find("[select.best]").unwrap()
    );

    // One report over 99,998 nodes is linear, and loads.
    let wide = format!(
        "{STUDY}[matrix]\na = {{ linspace = [0, 1, 99998] }}\n\
         [train.base]\narch = \"resnet18\"\nlr = 0.1\n\
         [evaluate.score]\nfor-each = [\"a\"]\nmodel = \"base\"\nforget = 1\nmetrics = [\"accuracy\"]\n\
         [report.all]\ninputs = [\"score\", \"base\", \"score\"]\n"
    );
    let study = load(&wide).expect("a wide report loads");
    let report = study.nodes.last().unwrap();
    assert_eq!(report.inputs.len(), 99_999, "each input once");
}

#[test]
fn huge_numbers_are_rejected_with_a_location_or_taken_exactly() {
    let base = |line: &str| format!("{STUDY}[train.base]\narch = \"resnet18\"\n{line}\n");
    for line in [
        "lr = 1e308",
        "lr = 1e309",
        "lr = inf",
        "lr = -inf",
        "lr = nan",
        "lr = 5e-324",
        "lr = -0.0",
        "epochs = 9223372036854775807",
        "epochs = 9223372036854775808",
        "epochs = -9223372036854775808",
        "epochs = 99999999999999999999999999999",
        "epochs = 0x7fffffffffffffff",
        "epochs = 1e3",
        "batch-size = 4294967296",
        "retries = 4294967296",
        "seed = -1",
        "seed = 18446744073709551615",
        "width = 1e-310",
        "lr = 0.1\n[matrix]\nx = { linspace = [0, 1e308, 100000] }",
        "lr = 0.1\n[matrix]\nx = { linspace = [-1e308, 1e308, 3] }",
        "lr = 0.1\n[matrix]\nx = { linspace = [0, 1, 9223372036854775807] }",
        "lr = 0.1\n[matrix]\nx = { linspace = [nan, inf, 2] }",
        "lr = 0.1\n[matrix]\nx = [1e308, 1.0000000000000002, 1]",
    ] {
        let text = base(line);
        if let Ok(study) = load(&text) {
            // Taken: then the value is the one written, not a wrapped or rounded one.
            let (key, value) = line.split_once(" = ").unwrap();
            let Some(param) = study.nodes[0].params.get(key) else {
                continue;
            };
            if let Ok(i) = value.parse::<i64>() {
                assert_eq!(param.as_i64(), Some(i), "{line}");
            } else if let Ok(f) = value.parse::<f64>() {
                assert_eq!(param.as_f64(), Some(f), "{line}");
            }
        }
    }
}

#[test]
fn deep_nesting_never_overflows_the_stack() {
    for depth in [10, 100, 1_000, 100_000] {
        for text in [
            format!(
                "{STUDY}[data]\nsource = {}1{}\n",
                "[".repeat(depth),
                "]".repeat(depth)
            ),
            format!(
                "{STUDY}[data]\nsource = {}1{}\n",
                "{a=".repeat(depth),
                "}".repeat(depth)
            ),
            format!(
                "{STUDY}[train.x]\narch = \"resnet18\"\nlr.{} = 1\n",
                vec!["a"; depth].join(".")
            ),
            format!("{STUDY}[{}]\n", vec!["a"; depth].join(".")),
            format!("{STUDY}{}\n", "[[a]]\n".repeat(depth)),
            format!("{STUDY}[recipe.{}]\nlr = 1\n", vec!["r"; depth].join(".")),
        ] {
            let _ = load(&text);
        }
        // Deep overrides, and overrides of deep values.
        let text = format!("{STUDY}[train.x]\narch = \"resnet18\"\nlr = 0.1\n");
        let deep_key = format!("train.x.{}=1", vec!["k"; depth].join("."));
        let deep_value = format!("train.x.lr={}1{}", "[".repeat(depth), "]".repeat(depth));
        for o in [deep_key, deep_value] {
            let _ = load_with(&text, &[o]);
        }
    }
}

#[test]
fn unicode_names_values_and_keys_load_or_are_located() {
    // Valid: unicode node names, axis names and axis values make ids and references.
    let text = format!(
        "{STUDY}[matrix]\n\"ключ\" = [\"日本\", \"🦀\", \"e\u{301}\"]\n\
         [train.\"база\"]\nfor-each = [\"ключ\"]\narch = \"resnet18\"\nlr = 0.1\n\
         [expert.\"эксперт\"]\nfor-each = [\"ключ\"]\nfrom = \"база[ключ=${{ключ}}]\"\nonly = [1]\nlr = 0.1\n"
    );
    let study = load(&text).expect("unicode names load");
    let ids: Vec<&str> = study.nodes.iter().map(|n| n.id.as_str()).collect();
    assert!(ids.contains(&"база[ключ=🦀]"), "{ids:?}");
    assert!(ids.contains(&"эксперт[ключ=e\u{301}]"), "{ids:?}");
    let expert = study
        .nodes
        .iter()
        .find(|n| n.id == "эксперт[ключ=日本]")
        .unwrap();
    assert_eq!(expert.inputs, ["база[ключ=日本]"]);

    // Broken ones: every error located, spans on character boundaries (or the slicing that
    // renders them would panic).
    for line in [
        "arch = \"${ключ\"",
        "arch = \"${🦀}\"",
        "arch = \"x${ключ}y${ключ\"",
        "arch = \"日本\"",
        "\"ärch\" = \"resnet18\"",
        "arch = \"resnet18\u{202e}\"",
        "arch = \"\u{feff}resnet18\"",
        "from = \"база[ключ=🦀,ключ=🦀]\"",
        "from = \"база[🦀=1]\"",
        "from = \"база[ключ]\"",
        "from = \"базa\"",
        "lr = \"🦀\"",
        "\u{feff}lr = 1",
    ] {
        let text = format!(
            "{STUDY}[matrix]\n\"ключ\" = [\"日本\", \"🦀\"]\n\
             [train.\"база\"]\nfor-each = [\"ключ\"]\narch = \"resnet18\"\nlr = 0.1\n\
             [expert.e]\nfor-each = [\"ключ\"]\nfrom = \"база[ключ=${{ключ}}]\"\nonly = [1]\n{line}\n"
        );
        if let Err(errors) = load(&text) {
            for e in errors.errors() {
                let span = e.span().unwrap();
                assert!(text.is_char_boundary(span.offset()), "{line}: {e}");
                assert!(
                    text.is_char_boundary(span.offset() + span.len()),
                    "{line}: {e}"
                );
            }
            // Rendering the report slices the source at the spans.
            let _ = format!("{:?}", miette::Report::new(errors));
        }
    }
}

#[test]
fn devices_fifos_and_huge_files_are_refused_not_read_forever() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.toml");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    let huge = dir.path().join("huge.toml");
    std::fs::write(&huge, "# padding\n".repeat(2 << 20)).unwrap();
    let mut paths = vec!["/dev/zero".to_owned(), huge.to_str().unwrap().to_owned()];
    if made.is_ok_and(|s| s.success()) {
        paths.push(fifo.to_str().unwrap().to_owned());
    }
    for path in paths {
        let text = format!("{STUDY}include = [\"{path}\"]\n");
        let errors = load(&text).unwrap_err();
        assert_eq!(kinds(&errors), [ErrorKind::IncludeMissing], "{path}");
        let err = manifest::load(camino::Utf8Path::new(&path), &[]).unwrap_err();
        assert_eq!(kinds(&err), [ErrorKind::Io], "{path}");
    }
}
