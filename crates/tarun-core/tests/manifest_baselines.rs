//! The literature's unlearning baselines in a manifest (docs/study.md §5.1): `forget` and each
//! method's own keys are checked at load, and a valid node keeps only the keys it was given.

use tarun_core::manifest::{self, ErrorKind};

const HEAD: &str = r#"
[study]
name = "t"

[train.base]
arch = "resnet18"
lr = 0.1

[expert.u]
from = "base"
lr = 0.01
"#;

fn kinds(extra: &str) -> Vec<(ErrorKind, String)> {
    let text = format!("{HEAD}{extra}");
    match manifest::parse_str("study.toml", &text, &[]) {
        Ok(_) => vec![],
        Err(e) => e
            .errors()
            .iter()
            .map(|e| (e.kind(), e.to_string()))
            .collect(),
    }
}

#[test]
fn each_baseline_loads_with_forget_and_its_own_keys() {
    for extra in [
        "objective = \"fine-tune\"\nforget = 8\n",
        "objective = \"l1-sparse\"\nforget = 8\nl1-gamma = 5e-4\n",
        "objective = \"scrub\"\nforget = 8\nscrub-temperature = 4.0\nforget-batch-size = 32\nscrub-max-epochs = 2\n",
        "objective = \"salun\"\nforget = 3\nsalun-sparsity = 0.5\n",
    ] {
        assert_eq!(kinds(extra), vec![], "{extra}");
    }
    let study = manifest::parse_str(
        "study.toml",
        &format!("{HEAD}objective = \"scrub\"\nforget = 8\n"),
        &[],
    )
    .unwrap();
    let node = study.nodes.iter().find(|n| n.id == "u").unwrap();
    assert_eq!(node.params["forget"], 8);
    // Left-out method keys stay absent: the node kind fills the published values.
    assert!(!node.params.contains_key("scrub-temperature"));
}

#[test]
fn mistakes_are_named() {
    let one = |extra: &str, kind: ErrorKind, text: &str| {
        let errors = kinds(extra);
        assert_eq!(errors.len(), 1, "{extra}: {errors:?}");
        assert_eq!(errors[0].0, kind, "{extra}: {errors:?}");
        assert!(errors[0].1.contains(text), "{extra}: {errors:?}");
    };
    one(
        "objective = \"scrub\"\n",
        ErrorKind::MissingKey,
        "without `forget`",
    );
    one(
        "objective = \"fine-tune\"\nforget = 8\nexclude = [8]\n",
        ErrorKind::Conflict,
        "`exclude` with `objective = \"fine-tune\"`",
    );
    one(
        "objective = \"ce\"\nforget = 8\n",
        ErrorKind::Conflict,
        "`forget` with `objective = \"ce\"`",
    );
    one(
        "objective = \"salun\"\nforget = 8\nl1-gamma = 0.1\n",
        ErrorKind::Conflict,
        "`l1-gamma` with `objective = \"salun\"`",
    );
    let errors = kinds("objective = \"salun\"\nforget = 8\nsalun-sparsity = 1.5\n");
    assert_eq!(errors.len(), 1, "{errors:?}");
}
