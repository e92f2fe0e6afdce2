//! Every unlearning method against the retrained model, over seeds (docs/study.md §7.10).

use super::*;

/// Two seeds of the retrained model, task arithmetic and SCRUB, with round numbers.
fn seeded_inputs() -> Vec<ReportInput> {
    let mut all = vec![];
    let excluded = TrainParams {
        exclude: vec![8],
        ..TrainParams::default()
    };
    let scrub = TrainParams {
        objective: Some("scrub".into()),
        ..TrainParams::default()
    };
    // (seed, retrained s, expert s, scrub s, [retrained, unlearned, scrub] x (forget, retain, test, mia))
    let seeds = [
        (
            0,
            100.0,
            10.0,
            30.0,
            [
                [0.0, 90.0, 81.0, 0.50],
                [10.0, 85.0, 77.0, 0.45],
                [2.0, 88.0, 80.0, 0.50],
            ],
        ),
        (
            1,
            120.0,
            12.0,
            34.0,
            [
                [0.0, 92.0, 83.0, 0.52],
                [14.0, 87.0, 79.0, 0.47],
                [4.0, 88.0, 80.0, 0.50],
            ],
        ),
    ];
    for (seed, t_retrained, t_expert, t_scrub, figures) in seeds {
        let id = |name: &str, extra: &str| format!("{name}[arch={ARCH}{extra},seed={seed}]");
        let expert = id("expert", ",class=8");
        all.push(train(
            &id("retrained", ""),
            'r',
            t_retrained,
            false,
            excluded.clone(),
        ));
        all.push(train(&expert, 'e', t_expert, true, only(&[8])));
        all.push(train(&id("scrub", ""), 's', t_scrub, true, scrub.clone()));
        all.push(ReportInput {
            prov: prov(&id("unlearned", ",class=8"), "ablate", 'u', 1.0),
            content: Content::Ablate(AblateInfo {
                arch: ARCH.into(),
                width: 0.125,
                vectors: vec![VectorInfo {
                    expert,
                    alpha: -1.0,
                    rho: 0.5,
                }],
                surgery_seconds: 0.5,
            }),
        });
        let models = [
            (id("retrained", ""), ModelRole::Retrained),
            (id("unlearned", ",class=8"), ModelRole::Unlearned),
            (id("scrub", ""), ModelRole::Baseline("scrub".into())),
        ];
        for ((model, role), [forget, retain, test, mia]) in models.into_iter().zip(figures) {
            let mut e = eval(&format!("eval-{model}"), 'v', &model, role, false);
            let Content::Evaluate(info) = &mut e.content else {
                unreachable!()
            };
            info.metrics = BTreeMap::from([
                ("forget-acc".to_owned(), forget),
                ("retain-acc".to_owned(), retain),
                ("accuracy".to_owned(), test),
                ("mia-auc".to_owned(), mia),
            ]);
            all.push(e);
        }
    }
    all
}

/// The report's comparison of methods, up to the next level-2 heading.
fn methods_section(md: &str) -> &str {
    let start = md
        .find("## Unlearning methods against the retrained model")
        .expect("the section");
    let section = &md[start..];
    &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)]
}

/// The cells of the markdown table row that starts with `| name |`.
fn row_cells<'a>(section: &'a str, name: &str) -> Vec<&'a str> {
    let prefix = format!("| {name} |");
    let line = section
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no row `{name}` in\n{section}"));
    line.trim_matches('|').split('|').map(str::trim).collect()
}

#[test]
fn methods_compare_with_the_retrained_model_seed_by_seed_with_t_intervals() {
    let report = build_report(
        &seeded_inputs(),
        &study(Protocol::Corrected, "synthetic"),
        &[],
    );
    let section = methods_section(&report.markdown);
    // Figures: mean ± t(0.975, 1) * s / sqrt(2); costs are the record wall times (task
    // arithmetic: expert + ablation, 11 and 13 s). Values computed by hand (Python).
    let ta = row_cells(section, "task arithmetic");
    assert_eq!(
        &ta[1..7],
        [
            "2",
            "12.00 ± 25.41",
            "86.00 ± 12.71",
            "78.00 ± 12.71",
            "46.00 ± 12.71",
            "12.0 ± 12.7"
        ]
    );
    let reference = row_cells(section, "retrained (reference)");
    assert_eq!(reference[2], "0.00 ± 0.00");
    assert_eq!(reference[6], "110.0 ± 127.1");
    // Gaps, Avg. Gap and ToW: per seed against that seed's retrained model, then averaged.
    // The second row of each method is its row of the gaps table.
    let gaps_of = |name: &str| -> Vec<&str> {
        let prefix = format!("| {name} |");
        let line = section
            .lines()
            .filter(|l| l.starts_with(&prefix))
            .nth(1)
            .unwrap_or_else(|| panic!("no gaps row for {name}"));
        line.trim_matches('|').split('|').map(str::trim).collect()
    };
    assert_eq!(
        &gaps_of("task arithmetic")[1..7],
        [
            "12.00 ± 25.41",
            "5.00 ± 0.00",
            "4.00 ± 0.00",
            "5.00 ± 0.00",
            "6.50 ± 6.35",
            "0.8026 ± 0.2318"
        ]
    );
    let scrub = gaps_of("SCRUB");
    assert_eq!(&scrub[1..3], ["3.00 ± 12.71", "3.00 ± 12.71"]);
    assert_eq!(&scrub[5..7], ["2.25 ± 12.71", "0.9224 ± 0.3611"]);
    // The plot: one labelled point per method, the reference left out.
    let (_, svg) = report
        .figures
        .iter()
        .find(|(f, _)| f == "methods-vgg11_bn.svg")
        .expect("the cost plot");
    assert!(svg.contains(">task arithmetic<") && svg.contains(">SCRUB<"));
    assert!(!svg.contains(">retrained (reference)<"));
}

#[test]
fn one_seed_shows_values_without_intervals() {
    let inputs: Vec<ReportInput> = seeded_inputs()
        .into_iter()
        .filter(|i| !i.prov.id.contains("seed=1"))
        .collect();
    let report = build_report(&inputs, &study(Protocol::Corrected, "synthetic"), &[]);
    let ta = row_cells(methods_section(&report.markdown), "task arithmetic");
    assert_eq!(
        &ta[1..7],
        ["1", "10.00", "85.00", "77.00", "45.00", "11.00"]
    );
    assert!(!report.markdown.contains("25.41"));
}

#[test]
fn methods_use_mia_efficacy_when_the_reference_has_it_and_say_so_when_not() {
    // Without `mia-efficacy` the column is the entropy AUC × 100, with a note.
    let inputs = seeded_inputs();
    let report = build_report(&inputs, &study(Protocol::Corrected, "synthetic"), &[]);
    let section = methods_section(&report.markdown);
    assert!(section.contains("| MIA AUC (%) |"), "{section}");
    assert!(section.contains("has no `mia-efficacy`"));
    // With it (retrained 20 and 24, task arithmetic 30 and 38 over the two seeds), the column
    // and the MIA gap use it: mean 34 ± t(0.975, 1) · s / √2 with s = √32, i.e. ± 50.82; gaps
    // 10 and 14, mean 12 ± 12.71 · √8 / √2 = 25.41.
    let mut inputs = seeded_inputs();
    for i in &mut inputs {
        let Content::Evaluate(info) = &mut i.content else {
            continue;
        };
        let seed1 = info.model.contains("seed=1");
        let value = match (&info.role, seed1) {
            (ModelRole::Retrained, false) => 20.0,
            (ModelRole::Retrained, true) => 24.0,
            (ModelRole::Unlearned, false) => 30.0,
            (ModelRole::Unlearned, true) => 38.0,
            _ => 21.0,
        };
        info.metrics.insert("mia-efficacy".into(), value);
    }
    let report = build_report(&inputs, &study(Protocol::Corrected, "synthetic"), &[]);
    let section = methods_section(&report.markdown);
    assert!(section.contains("| MIA-efficacy (%) |"), "{section}");
    assert!(!section.contains("has no `mia-efficacy`"));
    let ta = row_cells(section, "task arithmetic");
    assert_eq!(ta[5], "34.00 ± 50.82");
    let gaps: Vec<&str> = section
        .lines()
        .filter(|l| l.starts_with("| task arithmetic |"))
        .nth(1)
        .expect("the gaps row")
        .trim_matches('|')
        .split('|')
        .map(str::trim)
        .collect();
    assert_eq!(gaps[4], "12.00 ± 25.41");
}
