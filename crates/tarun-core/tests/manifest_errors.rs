//! Manifest mistakes: the kind and place of each error, and how the diagnostics render.

use indoc::indoc;
use miette::{GraphicalReportHandler, GraphicalTheme};
use tarun_core::manifest::{self, ErrorKind, ManifestErrors};

/// A valid start that the cases below add mistakes to. Lines 1-10.
const HEAD: &str = indoc! {r#"
    [study]
    name = "t"

    [matrix]
    arch = ["resnet18", "vgg11_bn"]
    class = [3, 8]

    [train.base]
    for-each = ["arch"]
    arch = "${arch}"
"#};

fn errors(text: &str, overrides: &[&str]) -> ManifestErrors {
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    match manifest::parse_str("study.toml", text, &overrides) {
        Ok(_) => panic!("expected errors in:\n{text}"),
        Err(e) => e,
    }
}

fn render(errors: &ManifestErrors) -> String {
    let mut out = String::new();
    GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
        .with_width(100)
        .render_report(&mut out, errors)
        .unwrap();
    out
}

/// `(kind, line, column)` of every error.
fn places(errors: &ManifestErrors) -> Vec<(ErrorKind, usize, usize)> {
    errors
        .errors()
        .iter()
        .map(|e| {
            let l = e.location().expect("every error has a location");
            (e.kind(), l.line, l.column)
        })
        .collect()
}

/// Asserts the single error's kind and place, and snapshots the rendering.
fn check(name: &str, text: &str, overrides: &[&str], expected: (ErrorKind, usize, usize)) {
    let errors = errors(text, overrides);
    assert_eq!(places(&errors), vec![expected], "{}", render(&errors));
    insta::assert_snapshot!(name, render(&errors));
}

#[test]
fn syntax_error() {
    let text = format!("{HEAD}lr = \n");
    check("syntax", &text, &[], (ErrorKind::Syntax, 11, 6));
}

#[test]
fn unknown_node_key_suggests_the_closest() {
    let text = format!("{HEAD}lrr = 0.1\n");
    let errors = errors(&text, &[]);
    // `lrr` is unknown, and `lr` therefore missing (at the header).
    assert_eq!(
        places(&errors),
        [
            (ErrorKind::MissingKey, 8, 1),
            (ErrorKind::UnknownKey, 11, 1)
        ]
    );
    insta::assert_snapshot!("unknown_key", render(&errors));
}

#[test]
fn wrong_type() {
    let text = format!("{HEAD}lr = \"fast\"\n");
    check("wrong_type", &text, &[], (ErrorKind::WrongType, 11, 6));
}

#[test]
fn negative_epochs() {
    let text = format!("{HEAD}lr = 0.1\nepochs = -1\n");
    check(
        "negative_epochs",
        &text,
        &[],
        (ErrorKind::WrongType, 12, 10),
    );
}

#[test]
fn unknown_variant_lists_the_valid_ones() {
    let text = HEAD.replace("\"${arch}\"", "\"resnet50\"") + "lr = 0.1\n";
    check(
        "unknown_variant",
        &text,
        &[],
        (ErrorKind::InvalidValue, 10, 8),
    );
}

#[test]
fn invalid_protocol() {
    let text = HEAD.replace("name = \"t\"", "name = \"t\"\nprotocol = \"fixed\"") + "lr = 0.1\n";
    check(
        "invalid_protocol",
        &text,
        &[],
        (ErrorKind::InvalidValue, 3, 12),
    );
}

#[test]
fn missing_key_points_at_the_header() {
    let text = format!("{HEAD}lr = 0.1\n\n[expert.e]\nlr = 0.1\n");
    check("missing_key", &text, &[], (ErrorKind::MissingKey, 13, 1));
}

#[test]
fn unknown_node_reference() {
    let text = format!("{HEAD}lr = 0.1\n\n[expert.e]\nfrom = \"bse[arch=resnet18]\"\nlr = 0.1\n");
    check("unknown_node", &text, &[], (ErrorKind::UnknownNode, 14, 8));
}

#[test]
fn unknown_axis_value_in_reference() {
    let text = format!("{HEAD}lr = 0.1\n\n[expert.e]\nfrom = \"base[arch=resnet50]\"\nlr = 0.1\n");
    check(
        "unknown_axis_value",
        &text,
        &[],
        (ErrorKind::UnknownNode, 14, 14),
    );
}

#[test]
fn reference_to_the_wrong_kind() {
    let text = format!(
        "{HEAD}lr = 0.1\n\n[evaluate.score]\nmodel = \"base[arch=resnet18]\"\n\n[expert.e]\nfrom = \"score\"\nlr = 0.1\n"
    );
    check("wrong_kind", &text, &[], (ErrorKind::WrongKind, 17, 8));
}

#[test]
fn ambiguous_reference() {
    let text = format!("{HEAD}lr = 0.1\n\n[expert.e]\nfrom = \"base\"\nlr = 0.1\n");
    check(
        "ambiguous",
        &text,
        &[],
        (ErrorKind::AmbiguousReference, 14, 8),
    );
}

#[test]
fn duplicate_name_across_kinds() {
    let text =
        format!("{HEAD}lr = 0.1\n\n[expert.base]\nfrom = \"base[arch=resnet18]\"\nlr = 0.1\n");
    check("duplicate_id", &text, &[], (ErrorKind::DuplicateId, 13, 1));
}

#[test]
fn cycle_names_the_path() {
    let text = indoc! {r#"
        [study]
        name = "t"

        [train.base]
        arch = "resnet18"
        lr = 0.1

        [expert.a]
        from = "b"
        lr = 0.1

        [expert.b]
        from = "a"
        lr = 0.1
    "#};
    check("cycle", text, &[], (ErrorKind::Cycle, 13, 8));
}

#[test]
fn unknown_axis_in_for_each() {
    let text = format!(
        "{HEAD}lr = 0.1\n\n[expert.e]\nfor-each = [\"arch\", \"clas\"]\nfrom = \"base[arch=${{arch}}]\"\nlr = 0.1\n"
    );
    check(
        "unknown_axis_for_each",
        &text,
        &[],
        (ErrorKind::UnknownAxis, 14, 21),
    );
}

#[test]
fn unknown_axis_in_substitution() {
    let text = format!(
        "{HEAD}lr = 0.1\n\n[expert.e]\nfor-each = [\"arch\"]\nfrom = \"base[arch=${{arch}}]\"\nonly = [\"${{class}}\"]\nlr = 0.1\n"
    );
    check(
        "unknown_axis_substitution",
        &text,
        &[],
        (ErrorKind::UnknownAxis, 16, 10),
    );
}

#[test]
fn unknown_axis_in_reference() {
    let text = format!("{HEAD}lr = 0.1\n\n[expert.e]\nfrom = \"base[clas=8]\"\nlr = 0.1\n");
    check(
        "unknown_axis_reference",
        &text,
        &[],
        (ErrorKind::UnknownAxis, 14, 14),
    );
}

#[test]
fn empty_axis() {
    let text = HEAD.replace("class = [3, 8]", "class = []") + "lr = 0.1\n";
    check("empty_axis", &text, &[], (ErrorKind::EmptyAxis, 6, 9));
}

#[test]
fn bad_linspace() {
    let text = HEAD.replace("class = [3, 8]", "rho = { linspace = [0.5, 0.99] }") + "lr = 0.1\n";
    check("bad_linspace", &text, &[], (ErrorKind::InvalidAxis, 6, 20));
}

#[test]
fn set_with_an_unknown_table() {
    let text = format!("{HEAD}lr = 0.1\n");
    check(
        "set_unknown_table",
        &text,
        &["train.bse.lr=3"],
        (ErrorKind::BadOverride, 1, 7),
    );
}

#[test]
fn set_without_equals() {
    let text = format!("{HEAD}lr = 0.1\n");
    check(
        "set_no_equals",
        &text,
        &["train.base.lr"],
        (ErrorKind::BadOverride, 1, 1),
    );
}

#[test]
fn set_value_of_the_wrong_type_points_into_the_argument() {
    let text = format!("{HEAD}lr = 0.1\n");
    let errors = errors(&text, &["train.base.lr=fast"]);
    assert_eq!(places(&errors), [(ErrorKind::WrongType, 1, 15)]);
    assert_eq!(errors.errors()[0].location().unwrap().file, "--set");
}

#[test]
fn unknown_recipe() {
    let text = format!("{HEAD}recipe = \"base.resnet99\"\n\n[recipe.base.resnet18]\nlr = 0.1\n");
    let errors = errors(&text, &[]);
    // The recipe is missing, so `lr` is too.
    assert_eq!(
        places(&errors),
        [
            (ErrorKind::MissingKey, 8, 1),
            (ErrorKind::UnknownRecipe, 11, 10)
        ]
    );
    insta::assert_snapshot!("unknown_recipe", render(&errors));
}

#[test]
fn unknown_key_from_a_recipe_points_into_the_include() {
    let text = "[study]\nname = \"t\"\ninclude = [\"tests/fixtures/bad-recipes.toml\"]\n\n[train.base]\narch = \"resnet18\"\nrecipe = \"fast\"\n".to_string();
    let errors = errors(&text, &[]);
    let e = &errors.errors()[0];
    assert_eq!(e.kind(), ErrorKind::UnknownKey);
    let l = e.location().unwrap();
    assert_eq!(
        (l.file.as_str(), l.line, l.column),
        ("tests/fixtures/bad-recipes.toml", 3, 1)
    );
    insta::assert_snapshot!("recipe_unknown_key", render(&errors));
}

#[test]
fn missing_include() {
    let text = "[study]\nname = \"t\"\ninclude = [\"nowhere.toml\"]\n";
    check(
        "include_missing",
        text,
        &[],
        (ErrorKind::IncludeMissing, 3, 12),
    );
}

#[test]
fn include_cycle() {
    let path = camino::Utf8Path::new("tests/fixtures/include-cycle-a.toml");
    let errors = manifest::load(path, &[]).expect_err("a cycle");
    let e = &errors.errors()[0];
    assert_eq!(e.kind(), ErrorKind::IncludeCycle);
    let l = e.location().unwrap();
    assert_eq!(
        (l.file.as_str(), l.line, l.column),
        ("tests/fixtures/include-cycle-b.toml", 2, 12)
    );
    insta::assert_snapshot!("include_cycle", render(&errors));
}

#[test]
fn unknown_top_level_table() {
    let text = format!("{HEAD}lr = 0.1\n\n[trian.other]\narch = \"resnet18\"\n");
    check(
        "unknown_table",
        &text,
        &[],
        (ErrorKind::UnknownTable, 13, 2),
    );
}

#[test]
fn vector_with_both_alpha_and_from_select() {
    let text = format!(
        "{HEAD}lr = 0.1\n\n[expert.e]\nfrom = \"base[arch=resnet18]\"\nlr = 0.1\n\n[ablate.a]\nbase = \"base[arch=resnet18]\"\nvectors = [{{ expert = \"e\", alpha = -1, rho = 0.5, from-select = \"e\" }}]\n"
    );
    let errors = errors(&text, &[]);
    let kinds: Vec<ErrorKind> = places(&errors).into_iter().map(|p| p.0).collect();
    assert_eq!(kinds, [ErrorKind::Conflict, ErrorKind::WrongKind]);
}

#[test]
fn many_mistakes_are_reported_at_once() {
    let text = indoc! {r#"
        [study]
        name = "t"
        seed = -3

        [matrix]
        arch = ["resnet18", "vgg11_bn"]

        [train.base]
        for-each = ["arch"]
        arch = "${arch}"
        lr = "fast"
        epochs = 0
        batchsize = 64

        [expert.e]
        for-each = ["arch"]
        from = "base[arch=${arch}]"
        lr = 0.1
        only = [300]

        [evaluate.score]
        model = "e[arch=vgg11_bn]"
        metrics = ["accuracy", "kl", "fun"]
    "#};
    let errors = errors(text, &["expert.e.momentum=0.5"]);
    let kinds: Vec<(ErrorKind, usize)> = places(&errors)
        .into_iter()
        .map(|(k, l, _)| (k, l))
        .collect();
    assert_eq!(
        kinds,
        [
            (ErrorKind::WrongType, 3),
            (ErrorKind::WrongType, 11),
            (ErrorKind::InvalidValue, 12),
            (ErrorKind::UnknownKey, 13),
            (ErrorKind::InvalidValue, 19),
            (ErrorKind::MissingKey, 23),
            (ErrorKind::InvalidValue, 23),
            (ErrorKind::Conflict, 1),
        ]
    );
    insta::assert_snapshot!("many", render(&errors));
}

#[test]
fn display_counts_the_errors() {
    let text = format!("{HEAD}lr = \"fast\"\nepochs = \"x\"\n");
    assert_eq!(
        errors(&text, &[]).to_string(),
        "manifest `study.toml` has 2 errors"
    );
}

#[test]
fn a_family_over_an_invalid_axis_is_not_reported_again() {
    let text = HEAD.replace("class = [3, 8]", "class = []")
        + "lr = 0.1\n\n[expert.e]\nfor-each = [\"arch\", \"class\"]\nfrom = \"base[arch=${arch}]\"\nlr = 0.1\n\n[evaluate.x]\nmodel = \"e[class=3]\"\n";
    let kinds: Vec<ErrorKind> = places(&errors(&text, &[]))
        .into_iter()
        .map(|p| p.0)
        .collect();
    assert_eq!(kinds, [ErrorKind::EmptyAxis]);
}

#[test]
fn learning_rate_must_be_positive_and_finite() {
    for value in ["0", "0.0", "-0.0", "-1e-3", "nan", "inf", "-inf"] {
        let text = format!("{HEAD}lr = {value}\n");
        let errors = errors(&text, &[]);
        assert_eq!(
            places(&errors),
            [(ErrorKind::InvalidValue, 11, 6)],
            "lr = {value}: {}",
            render(&errors)
        );
        assert!(render(&errors).contains("invalid `lr`"), "lr = {value}");
    }
    check(
        "lr_zero",
        &format!("{HEAD}lr = 0\n"),
        &[],
        (ErrorKind::InvalidValue, 11, 6),
    );
}

#[test]
fn ain_lr_must_be_positive() {
    let text = format!(
        "{HEAD}lr = 0.1\n\n[evaluate.score]\nmodel = \"base[arch=resnet18]\"\nforget = 3\nmetrics = [\"accuracy\"]\nain-lr = -1e-4\n"
    );
    let errors = errors(&text, &[]);
    assert_eq!(
        places(&errors),
        [(ErrorKind::InvalidValue, 17, 10)],
        "{}",
        render(&errors)
    );
}

#[test]
fn non_positive_lr_from_a_recipe_points_into_the_recipe() {
    let text = format!("{HEAD}recipe = \"base.fast\"\n\n[recipe.base.fast]\nlr = -1e-3\n");
    let errors = errors(&text, &[]);
    assert_eq!(
        places(&errors),
        [(ErrorKind::InvalidValue, 14, 6)],
        "{}",
        render(&errors)
    );
}

#[test]
fn non_positive_lr_from_set_points_into_the_argument() {
    let text = format!("{HEAD}lr = 0.1\n");
    let errors = errors(&text, &["train.base.lr=0"]);
    assert_eq!(
        places(&errors),
        [(ErrorKind::InvalidValue, 1, 15)],
        "{}",
        render(&errors)
    );
    assert_eq!(errors.errors()[0].location().unwrap().file, "--set");
}

#[test]
fn a_missing_include_is_the_only_error() {
    // Without the include, the recipe and the `lr` it gives are missing too: not reported.
    let text = "[study]\nname = \"t\"\ninclude = [\"../configs/nope.toml\"]\n\n[train.base]\narch = \"resnet18\"\nrecipe = \"base.resnet18\"\n";
    let errors = errors(text, &[]);
    assert_eq!(
        places(&errors),
        [(ErrorKind::IncludeMissing, 3, 12)],
        "{}",
        render(&errors)
    );
}
