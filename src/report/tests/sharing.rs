//! A report to share: its setup section, no references a reader cannot open, print rules, and
//! anchors that are unique and land.

use super::timeline::timed_inputs;
use super::*;

/// A recipe as the manifest resolves it.
fn recipe(lr: f64, weight_decay: f64, epochs: u64, schedule: &str) -> TrainParams {
    TrainParams {
        objective: Some("ce".into()),
        optimizer: Some("adamw".into()),
        lr: Some(lr),
        weight_decay: Some(weight_decay),
        epochs: Some(epochs),
        batch_size: Some(32),
        schedule: Some(schedule.into()),
        augment: Some(false),
        ..TrainParams::default()
    }
}

/// The `## Setup` section of a markdown report.
fn setup_of(md: &str) -> &str {
    md.split("## Setup")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a setup section")
}

#[test]
fn the_setup_states_study_overrides_version_date_devices_and_recipes() {
    let mut inputs = inputs();
    // The base model on a GPU, and base, retrained and two experts with their recipes.
    inputs[0].prov.device = "cuda:0".into();
    for input in &mut inputs {
        let Content::Train(t) = &mut input.content else {
            continue;
        };
        let (exclude, only) = (t.params.exclude.clone(), t.params.only.clone());
        t.params = if t.expert {
            recipe(2.5e-4, 0.01, 2, "constant")
        } else {
            recipe(1e-3, 1e-4, 4, "cosine")
        };
        (t.params.exclude, t.params.only) = (exclude, only);
    }
    inputs.push(train(
        "expert[arch=vgg11_bn,class=3]",
        '8',
        10.0,
        true,
        TrainParams {
            only: vec![3],
            ..recipe(2.5e-4, 0.01, 2, "constant")
        },
    ));
    let mut s = study(Protocol::Seed, "cifar10");
    s.data = vec![
        ("train-per-class".into(), "200".into()),
        ("test-per-class".into(), "50".into()),
    ];
    s.overrides = vec!["train.base.lr=1e-3".into(), "report.r.title=\"x\"".into()];
    let md = build_report(&inputs, &s, &[]).markdown;
    let setup = setup_of(&md);
    // Records: base 400 s on cuda:0; on cpu retrained 300, experts 20 and 10, ablate 2,
    // select 0.1 and two evaluations of 1 s each: 7 records, 334.1 s.
    for row in [
        "| study | `s` |",
        "| protocol | seed |",
        "| seed | 42 |",
        "| data | `cifar10`; train-per-class 200, test-per-class 50 |",
        "| `--set` overrides | `train.base.lr=1e-3`, `report.r.title=\"x\"` |",
        "| tarun | `0.1.0 (abc1234)` |",
        "| rendered | 2026-12-04 21:00:00 UTC |",
        "| devices | `cpu` (7 records, 334 s), `cuda:0` (1 record, 400 s) |",
        "| `base`, `retrained` | train | vgg11_bn | 0.125 | adamw | 1e-3 | 1e-4 | – | 4 epochs | 32 | cosine | no | ce |",
        "| `expert` (2) | expert | vgg11_bn | 0.125 | adamw | 2.5e-4 | 0.01 | – | 2 epochs | 32 | constant | no | ce |",
    ] {
        assert!(setup.contains(row), "no `{row}` in:\n{setup}");
    }
    // Right after the overview, before the results.
    assert!(md.find("## Setup").unwrap() < md.find("## Summary").unwrap());
    assert!(md.find("protocol **seed**").unwrap() < md.find("## Setup").unwrap());

    s.overrides.clear();
    let md = build_report(&inputs, &s, &[]).markdown;
    assert!(
        setup_of(&md).contains("| `--set` overrides | none |"),
        "{md}"
    );
}

/// Every report of the test inputs, with all sections: seed protocol on CIFAR-10 (published
/// numbers, time benchmark) and the timeline's records.
fn full_report() -> crate::report::Report {
    let mut inputs = inputs();
    inputs.extend(timed_inputs());
    build_report(&inputs, &study(Protocol::Seed, "cifar10"), &[])
}

#[test]
fn the_report_cites_nothing_a_reader_cannot_open() {
    let report = full_report();
    // Design-document sections, repository docs and sources, store and output files, and a
    // script of the original study's code.
    let internal = [
        "seed-spec",
        "§",
        "docs/",
        "src/",
        ".md",
        ".json",
        "store",
        "artifacts/",
        "objects/",
        "script 15",
        "File <code>",
    ];
    for pattern in internal {
        for (name, text) in [("markdown", &report.markdown), ("html", &report.html)] {
            let at = text
                .find(pattern)
                .map(|i| &text[i.saturating_sub(80)..i + 40]);
            assert!(at.is_none(), "`{pattern}` in the {name}: …{}…", at.unwrap());
        }
    }
    // Figure captions cite their record through the provenance table.
    assert!(
        report.html.contains(
            "From the outputs of node <code>unlearned-eval[arch=vgg11_bn]</code>. Record \
             <a href=\"#k-777777777777\"><code>777777777777</code></a>."
        ),
        "{}",
        report.html
    );
}

#[test]
fn the_html_prints_tables_whole_and_figures_within_the_page() {
    let html = full_report().html;
    let print = html
        .split("@media print {")
        .nth(1)
        .expect("print rules")
        .split("\n}\n")
        .next()
        .unwrap();
    for rule in [
        ".table-wrap { overflow: visible; }",
        "position: static",
        "tr, pre, figure { break-inside: avoid; page-break-inside: avoid; }",
        "thead { display: table-header-group; }",
        "figure svg { max-width: 100%; height: auto;",
        "print-color-adjust: exact",
        "body, main { background: #fff; }",
        "nav.toc { display: none; }",
        "a[href^=\"http\"]::after { content: \" (\" attr(href) \")\";",
    ] {
        assert!(print.contains(rule), "no `{rule}` in {print}");
    }
}

/// The values of every `attr="..."` in `html`.
fn attrs<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
    let open = format!(" {attr}=\"");
    html.split(&open)
        .skip(1)
        .map(|rest| &rest[..rest.find('"').unwrap()])
        .collect()
}

#[test]
fn every_anchor_is_unique_and_every_link_lands() {
    let html = full_report().html;
    let ids = attrs(&html, "id");
    let unique: std::collections::BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "repeated ids in {ids:?}");
    // "Architecture `vgg11_bn`" heads a part of the metrics and of the time benchmark; the
    // ten timeline records share one key, so their provenance rows would share an anchor.
    assert!(ids.contains(&"s-Architecture-vgg11_bn"), "{ids:?}");
    assert!(ids.contains(&"s-Architecture-vgg11_bn-2"), "{ids:?}");
    assert!(ids.contains(&"k-cccccccccccc") && ids.contains(&"k-cccccccccccc-10"));
    let links: Vec<&str> = attrs(&html, "href")
        .into_iter()
        .filter_map(|h| h.strip_prefix('#'))
        .collect();
    assert!(links.contains(&"k-777777777777") && links.contains(&"s-Setup"));
    for target in links {
        assert!(unique.contains(target), "`#{target}` points to no id");
    }
}
