//! Valid manifests: expansion, ids, substitution, recipes, includes, overrides, references and
//! defaults.

use camino::Utf8Path;
use indoc::indoc;
use miette::{GraphicalReportHandler, GraphicalTheme};
use serde_json::{Value, json};
use tarun_core::manifest::{self, NodeKind, Protocol, Study};

fn study(text: &str, overrides: &[&str]) -> Study {
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    manifest::parse_str("study.toml", text, &overrides).unwrap_or_else(|e| {
        let mut out = String::new();
        GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
            .render_report(&mut out, &e)
            .unwrap();
        panic!("{out}")
    })
}

fn ids(study: &Study) -> Vec<&str> {
    study.nodes.iter().map(|n| n.id.as_str()).collect()
}

fn param<'s>(study: &'s Study, id: &str, key: &str) -> Option<&'s Value> {
    study
        .node(id)
        .unwrap_or_else(|| panic!("no node `{id}` in {:?}", ids(study)))
        .params
        .get(key)
}

/// A study with a grid, recipes and every kind of reference, used by the table below.
const GRID: &str = indoc! {r#"
    [study]
    name = "grid"
    seed = 7

    [matrix]
    arch = ["resnet18", "vgg11_bn"]
    class = [3, 8]
    alpha = [-1.0, 0.5]
    rho = { linspace = [0.5, 0.99, 20] }

    [recipe.base.resnet18]
    lr = 1e-3
    epochs = 15

    [recipe.base.vgg11_bn]
    lr = 3e-4
    epochs = 30
    optimizer = "sgd"

    [train.base]
    for-each = ["arch"]
    arch = "${arch}"
    recipe = "base.${arch}"
    epochs = 2

    [expert.expert]
    for-each = ["arch", "class"]
    from = "base[arch=${arch}]"
    only = ["${class}"]
    lr = 1

    [ablate.candidate]
    for-each = ["alpha", "rho"]
    base = "base[arch=resnet18]"
    vectors = [{ expert = "expert[arch=resnet18,class=8]", alpha = "${alpha}", rho = "${rho}" }]

    [evaluate.score]
    for-each = ["alpha", "rho"]
    model = "candidate[alpha=${alpha},rho=${rho}]"
    forget = 8
    metrics = ["forget-acc", "retain-acc"]
    retries = 2

    [select.best]
    over = "score[alpha=-1.0]"
    score = "retain-acc - forget-acc"

    [report.all]
    title = "report"
    inputs = ["expert[class=8]", "expert[arch=resnet18]", "best"]
"#};

#[test]
fn families_expand_first_axis_outermost() {
    let s = study(GRID, &[]);
    let experts: Vec<&str> = ids(&s)
        .into_iter()
        .filter(|i| i.starts_with("expert"))
        .collect();
    assert_eq!(
        experts,
        [
            "expert[arch=resnet18,class=3]",
            "expert[arch=resnet18,class=8]",
            "expert[arch=vgg11_bn,class=3]",
            "expert[arch=vgg11_bn,class=8]",
        ]
    );
    assert_eq!(s.nodes.len(), 2 + 4 + 40 + 40 + 1 + 1);
    assert_eq!(s.nodes[0].id, "base[arch=resnet18]");
    assert_eq!(s.node("best").unwrap().kind, NodeKind::Select);
    let axes = &s.node("expert[arch=vgg11_bn,class=8]").unwrap().axes;
    assert_eq!(
        axes,
        &[
            ("arch".to_owned(), json!("vgg11_bn")),
            ("class".to_owned(), json!(8))
        ]
    );
}

#[test]
fn floats_print_in_shortest_exact_form() {
    let s = study(GRID, &[]);
    for id in [
        "candidate[alpha=-1,rho=0.5]",
        "candidate[alpha=0.5,rho=0.5257894736842105]",
        "candidate[alpha=-1,rho=0.99]",
        "score[alpha=0.5,rho=0.9642105263157894]",
    ] {
        assert!(s.node(id).is_some(), "no `{id}` in {:?}", ids(&s));
    }
    assert_eq!(
        s.matrix[2],
        ("alpha".to_owned(), vec![json!(-1.0), json!(0.5)])
    );
    assert_eq!(s.matrix[3].1.len(), 20);
}

/// `(case, node, key, expected value)`; `None` for an absent key.
const PARAMS: &[(&str, &str, &str, Option<&str>)] = &[
    // Substitution keeps the axis value's type, and `${axis}` in a longer string is text.
    (
        "whole string takes the float",
        "candidate[alpha=-1,rho=0.5]",
        "vectors",
        Some(r#"[{"expert": "expert[arch=resnet18,class=8]", "alpha": -1.0, "rho": 0.5}]"#),
    ),
    (
        "whole string takes the integer",
        "expert[arch=vgg11_bn,class=3]",
        "only",
        Some("[3]"),
    ),
    (
        "reference substituted",
        "expert[arch=vgg11_bn,class=3]",
        "from",
        Some(r#""base[arch=vgg11_bn]""#),
    ),
    (
        "integer accepted as float",
        "expert[arch=resnet18,class=3]",
        "lr",
        Some("1.0"),
    ),
    // Recipes fill what the node does not set; the node's own keys win.
    ("recipe fills", "base[arch=resnet18]", "lr", Some("0.001")),
    (
        "node overrides recipe",
        "base[arch=vgg11_bn]",
        "epochs",
        Some("2"),
    ),
    (
        "recipe per member",
        "base[arch=vgg11_bn]",
        "optimizer",
        Some(r#""sgd""#),
    ),
    (
        "recipe not in params",
        "base[arch=vgg11_bn]",
        "recipe",
        None,
    ),
    (
        "for-each not in params",
        "base[arch=vgg11_bn]",
        "for-each",
        None,
    ),
    // Defaults, so the cache key sees them.
    ("default width", "base[arch=resnet18]", "width", Some("1.0")),
    (
        "default optimizer",
        "base[arch=resnet18]",
        "optimizer",
        Some(r#""adamw""#),
    ),
    (
        "momentum only for sgd",
        "base[arch=resnet18]",
        "momentum",
        None,
    ),
    (
        "momentum default for sgd",
        "base[arch=vgg11_bn]",
        "momentum",
        Some("0.9"),
    ),
    (
        "seed from study",
        "expert[arch=resnet18,class=8]",
        "seed",
        Some("7"),
    ),
    (
        "default batch size",
        "expert[arch=resnet18,class=8]",
        "batch-size",
        Some("128"),
    ),
    (
        "default weight decay",
        "expert[arch=resnet18,class=8]",
        "weight-decay",
        Some("0.01"),
    ),
    (
        "default schedule",
        "expert[arch=resnet18,class=8]",
        "schedule",
        Some(r#""constant""#),
    ),
    (
        "default augment",
        "expert[arch=resnet18,class=8]",
        "augment",
        Some("true"),
    ),
    (
        "default objective",
        "expert[arch=resnet18,class=8]",
        "objective",
        Some(r#""ce""#),
    ),
    (
        "no default steps",
        "expert[arch=resnet18,class=8]",
        "steps",
        None,
    ),
    (
        "default quantile",
        "candidate[alpha=-1,rho=0.5]",
        "quantile",
        Some(r#""exact""#),
    ),
    (
        "default materialize",
        "candidate[alpha=-1,rho=0.5]",
        "materialize",
        Some("false"),
    ),
    (
        "default split",
        "score[alpha=-1,rho=0.5]",
        "split",
        Some(r#""test""#),
    ),
    (
        "default ain-lr",
        "score[alpha=-1,rho=0.5]",
        "ain-lr",
        Some("0.0001"),
    ),
    (
        "default tsne points",
        "score[alpha=-1,rho=0.5]",
        "tsne-points",
        Some("1500"),
    ),
    (
        "retries not in params",
        "score[alpha=-1,rho=0.5]",
        "retries",
        None,
    ),
    ("default metrics", "best", "require", None),
    // References that take many nodes list them in family order; numbers match by value.
    (
        "many in family order",
        "best",
        "over",
        Some(
            r#"["score[alpha=-1,rho=0.5]", "score[alpha=-1,rho=0.5257894736842105]", "score[alpha=-1,rho=0.5515789473684211]",
            "score[alpha=-1,rho=0.5773684210526315]", "score[alpha=-1,rho=0.6031578947368421]", "score[alpha=-1,rho=0.6289473684210526]",
            "score[alpha=-1,rho=0.6547368421052632]", "score[alpha=-1,rho=0.6805263157894736]", "score[alpha=-1,rho=0.7063157894736842]",
            "score[alpha=-1,rho=0.7321052631578947]", "score[alpha=-1,rho=0.7578947368421052]", "score[alpha=-1,rho=0.7836842105263158]",
            "score[alpha=-1,rho=0.8094736842105263]", "score[alpha=-1,rho=0.8352631578947368]", "score[alpha=-1,rho=0.8610526315789473]",
            "score[alpha=-1,rho=0.8868421052631579]", "score[alpha=-1,rho=0.9126315789473685]", "score[alpha=-1,rho=0.9384210526315789]",
            "score[alpha=-1,rho=0.9642105263157894]", "score[alpha=-1,rho=0.99]"]"#,
        ),
    ),
    (
        "inputs flattened, deduplicated",
        "all",
        "inputs",
        Some(
            r#"["expert[arch=resnet18,class=8]", "expert[arch=vgg11_bn,class=8]", "expert[arch=resnet18,class=3]", "best"]"#,
        ),
    ),
];

#[test]
fn params_are_resolved() {
    let grid = GRID;
    let s = study(grid, &[]);
    for (case, id, key, expected) in PARAMS {
        let expected: Option<Value> = expected.map(|e| serde_json::from_str(e).unwrap());
        assert_eq!(
            param(&s, id, key),
            expected.as_ref(),
            "{case}: `{key}` of `{id}`"
        );
    }
    let score = s.node("score[alpha=0.5,rho=0.99]").unwrap();
    assert_eq!(score.retries, 2);
    assert_eq!(score.inputs, ["candidate[alpha=0.5,rho=0.99]"]);
    let candidate = s.node("candidate[alpha=0.5,rho=0.99]").unwrap();
    assert_eq!(
        candidate.inputs,
        ["base[arch=resnet18]", "expert[arch=resnet18,class=8]"]
    );
    assert_eq!(candidate.location.line, 32);
}

#[test]
fn overrides_apply_last() {
    let grid = GRID;
    let s = study(
        grid,
        &[
            "train.base.epochs=9",
            "matrix.class=[8]",
            "study.name=my study",
            "recipe.base.resnet18.lr=0.5",
        ],
    );
    assert_eq!(param(&s, "base[arch=resnet18]", "epochs"), Some(&json!(9)));
    assert_eq!(param(&s, "base[arch=resnet18]", "lr"), Some(&json!(0.5)));
    assert!(s.node("expert[arch=resnet18,class=3]").is_none());
    assert_eq!(s.name, "my study");
    assert_eq!(s.overrides.len(), 4);
}

#[test]
fn fixture_with_include() {
    let s = manifest::load(Utf8Path::new("tests/fixtures/study.toml"), &[]).unwrap();
    assert_eq!(
        s.files,
        ["tests/fixtures/study.toml", "tests/fixtures/recipes.toml"]
    );
    assert_eq!(
        (s.name.as_str(), s.seed, s.protocol),
        ("fixture", 42, Protocol::Seed)
    );
    // `[data]` merges key by key: `source` from the study, the sizes from the include.
    assert_eq!(
        serde_json::Value::Object(s.data.clone()),
        json!({
            "source": "synthetic", "validation-per-class": 0, "train-per-class": 300, "test-per-class": 100
        })
    );
    assert_eq!(
        param(&s, "retrained[arch=vgg11_bn]", "lr"),
        Some(&json!(3e-4))
    );
    assert_eq!(
        param(&s, "retrained[arch=vgg11_bn]", "epochs"),
        Some(&json!(20))
    );
    let kinds: std::collections::BTreeSet<NodeKind> = s.nodes.iter().map(|n| n.kind).collect();
    assert_eq!(kinds.len(), 6);
    assert_eq!(
        param(&s, "unlearned[arch=vgg11_bn,class=3]", "vectors"),
        Some(
            &json!([{ "expert": "expert[arch=vgg11_bn,class=3]", "from-select": "best[arch=vgg11_bn]" }])
        )
    );
    assert_eq!(s.nodes.len(), 2 + 2 + 4 + 12 + 12 + 2 + 4 + 2 + 1);
}

#[test]
fn included_values_are_overridden_by_the_includer() {
    let dir = tempfile::tempdir().unwrap();
    let root = camino::Utf8Path::from_path(dir.path()).unwrap();
    std::fs::create_dir(root.join("configs")).unwrap();
    std::fs::write(
        root.join("configs/base.toml"),
        "[study]\nseed = 3\nname = \"inner\"\n\n[recipe.r]\nlr = 0.1\nepochs = 4\n",
    )
    .unwrap();
    let text = "[study]\nname = \"outer\"\ninclude = [\"configs/base.toml\"]\n\n[recipe.r]\nepochs = 5\n\n[train.t]\narch = \"resnet18\"\nrecipe = \"r\"\n";
    std::fs::write(root.join("m.toml"), text).unwrap();
    let s = manifest::load(&root.join("m.toml"), &[]).unwrap();
    assert_eq!((s.name.as_str(), s.seed), ("outer", 3));
    assert_eq!(param(&s, "t", "lr"), Some(&json!(0.1)));
    assert_eq!(param(&s, "t", "epochs"), Some(&json!(5)));
    assert_eq!(param(&s, "t", "seed"), Some(&json!(3)));
}

#[test]
fn the_repository_manifests_are_valid() {
    for path in [
        "../../experiments/paper.toml",
        "../../experiments/quickstart.toml",
    ] {
        if Utf8Path::new(path).exists() {
            manifest::load(Utf8Path::new(path), &[]).unwrap_or_else(|e| panic!("{path}: {e:?}"));
        }
    }
}
