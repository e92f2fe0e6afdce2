//! `select`'s `score` and `require`, checked when the manifest loads: a mistake in an expression,
//! or a metric its `over` nodes do not write, is an error located at the expression, not a failure
//! of the node after its candidates have been trained.

use tarun_core::manifest::{self, ErrorKind, ManifestErrors};

/// A sweep of `evaluate` nodes with `metrics`, and a `select` over them with `score` and
/// `require` (TOML values, written as given).
fn study(protocol: &str, metrics: &str, score: &str, require: &str) -> String {
    format!(
        r#"[study]
name = "select"
protocol = "{protocol}"

[matrix]
alpha = [0.5, 1.0]

[train.base]
arch = "resnet18"
lr = 0.1

[train.retrained]
arch = "resnet18"
lr = 0.1
exclude = [3]

[evaluate.ev]
for-each = ["alpha"]
model = "base"
forget = 3
retrained = "retrained"
metrics = {metrics}

[select.best]
over = "ev"
score = {score}
require = {require}
"#
    )
}

fn errors(text: &str) -> ManifestErrors {
    match manifest::parse_str("study.toml", text, &[]) {
        Ok(_) => panic!("expected errors in:\n{text}"),
        Err(e) => e,
    }
}

/// `(kind, line, column, message, help)` of the only error.
fn only(text: &str) -> (ErrorKind, usize, usize, String, String) {
    let errors = errors(text);
    assert_eq!(errors.errors().len(), 1, "{errors:?}");
    let e = &errors.errors()[0];
    let at = e.location().expect("located");
    assert_eq!(at.file.as_str(), "study.toml");
    let help = miette::Diagnostic::help(e)
        .map(|h| h.to_string())
        .unwrap_or_default();
    (e.kind(), at.line, at.column, e.to_string(), help)
}

const FORGET_RETAIN: &str = r#"["forget-acc", "retain-acc"]"#;

#[test]
fn expressions_over_written_metrics_load() {
    let text = study(
        "corrected",
        r#"["forget-acc", "mia", "kl"]"#,
        r#""retain-acc - 1.5 * forget-acc + mia-auc-retrained""#,
        r#"["kl-forget < 0.5", "-(retain-acc) <= -50"]"#,
    );
    manifest::parse_str("study.toml", &text, &[]).expect("valid");
}

#[test]
fn a_misspelt_metric_in_score_is_located() {
    let text = study(
        "corrected",
        FORGET_RETAIN,
        r#""retain-accc - forget-acc""#,
        "[]",
    );
    let (kind, line, column, message, help) = only(&text);
    assert_eq!(kind, ErrorKind::UnknownMetric);
    assert_eq!((line, column), (26, 9), "{message}");
    assert_eq!(message, "unknown metric `retain-accc` in `score`");
    assert!(help.contains("did you mean `retain-acc`?"), "{help}");
    assert_eq!(kind.code(), "tarun::manifest::unknown_metric");
}

#[test]
fn a_require_that_does_not_parse_is_located() {
    let text = study(
        "corrected",
        FORGET_RETAIN,
        r#""retain-acc""#,
        r#"["forget-acc < 10", "retain-acc = 50"]"#,
    );
    let (kind, line, column, message, help) = only(&text);
    assert_eq!(kind, ErrorKind::InvalidValue);
    // The second element of `require`.
    assert_eq!((line, column), (27, 31), "{message}");
    assert_eq!(message, "invalid `require` expression");
    let e = errors(&text);
    let label = miette::Diagnostic::labels(&e.errors()[0])
        .and_then(|mut l| l.next())
        .and_then(|l| l.label().map(str::to_owned))
        .unwrap_or_default();
    assert!(label.contains("unexpected `=`"), "{label} {help}");
}

#[test]
fn a_metric_the_over_nodes_do_not_compute_names_the_fix() {
    let text = study(
        "corrected",
        FORGET_RETAIN,
        r#""retain-acc""#,
        r#"["kl-forget < 0.1"]"#,
    );
    let (kind, line, column, message, help) = only(&text);
    assert_eq!(kind, ErrorKind::UnknownMetric);
    assert_eq!((line, column), (27, 12));
    assert_eq!(
        message,
        "`require` reads `kl-forget`, which `ev[alpha=0.5]` does not write"
    );
    assert!(
        help.contains(r#"add "kl" to the `metrics` of `ev[alpha=0.5]`"#),
        "{help}"
    );
}

#[test]
fn scalars_written_only_under_some_settings_are_checked_with_them() {
    // The seed protocol's `mia` writes no `mia-auc-retrained`, nor its over-forgetting a
    // `over-forgetting-gap-change`; the corrected protocol's do.
    for (score, metric) in [
        ("mia-auc-retrained", r#"["mia"]"#),
        ("over-forgetting-gap-change", r#"["over-forgetting"]"#),
    ] {
        let score = format!("\"{score}\"");
        let corrected = study("corrected", metric, &score, "[]");
        manifest::parse_str("study.toml", &corrected, &[]).expect("corrected: valid");
        let seed = study("seed", metric, &score, "[]");
        let (kind, _, _, message, help) = only(&seed);
        assert_eq!(kind, ErrorKind::UnknownMetric, "{message}");
        assert!(help.contains("the seed protocol is in use"), "{help}");
    }
}

#[test]
fn every_candidate_must_write_the_metric() {
    // One member of the family computes `kl`, the other does not: the one that does not is named.
    let text = study(
        "corrected",
        r#"["forget-acc", "${alpha}"]"#,
        r#""kl-forget""#,
        "[]",
    )
    .replace("alpha = [0.5, 1.0]", r#"alpha = ["kl", "accuracy"]"#);
    let (kind, _, _, message, _) = only(&text);
    assert_eq!(kind, ErrorKind::UnknownMetric);
    assert_eq!(
        message,
        "`score` reads `kl-forget`, which `ev[alpha=accuracy]` does not write"
    );
}
