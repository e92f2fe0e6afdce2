//! The setup section: what a reader needs to rerun the study or to judge its numbers, stated
//! near the top: the study, protocol, seed and data, the `--set` overrides, the tarun version,
//! when the report was rendered, the devices the inputs ran on, and the training recipes.

use std::collections::BTreeMap;

use tarun_core::manifest::Protocol;

use super::View;
use super::doc::{Document, Table, fmt_axis, fmt_seconds};
use super::model::{Provenance, ReportStudy, TrainInfo};

pub fn section(doc: &mut Document, study: &ReportStudy, view: &View<'_>) {
    doc.heading(2, "Setup");
    let mut table = Table::new(&["setting", "value"]);
    let protocol = match study.protocol {
        Protocol::Seed => "seed",
        Protocol::Corrected => "corrected",
    };
    let overrides = if study.overrides.is_empty() {
        "none".to_owned()
    } else {
        codes(&study.overrides)
    };
    let rows = [
        ("study", format!("`{}`", study.name)),
        ("protocol", protocol.to_owned()),
        ("seed", study.seed.to_string()),
        ("data", data(study)),
        ("`--set` overrides", overrides),
        ("tarun", format!("`{}`", study.version)),
        (
            "rendered",
            format!("{} UTC", study.rendered.strftime("%Y-%m-%d %H:%M:%S")),
        ),
        ("devices", devices(view)),
    ];
    for (item, value) in rows {
        table.push(vec![item.to_owned(), value], None);
    }
    doc.table(table);
    doc.paragraph(
        "A report is cached like any other node: it is rendered again only when its inputs or \
         its own parameters change, so the overrides, version and date above are those of the \
         run that rendered it.",
    );
    recipes(doc, view);
}

/// `` `a`, `b` ``.
fn codes(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The source and the other `[data]` keys: `` `synthetic`; train-per-class 200, ... ``.
fn data(study: &ReportStudy) -> String {
    let source = study
        .data_source
        .as_deref()
        .map_or_else(|| "unspecified source".to_owned(), |s| format!("`{s}`"));
    if study.data.is_empty() {
        return source;
    }
    let sizes: Vec<String> = study.data.iter().map(|(k, v)| format!("{k} {v}")).collect();
    format!("{source}; {}", sizes.join(", "))
}

/// Each device with the number of input records computed on it and their wall seconds.
fn devices(view: &View<'_>) -> String {
    let mut by_device: BTreeMap<&str, (usize, f64)> = BTreeMap::new();
    for input in view.all {
        let entry = by_device.entry(&input.prov.device).or_default();
        entry.0 += 1;
        entry.1 += input.prov.seconds;
    }
    if by_device.is_empty() {
        return "none (no inputs)".to_owned();
    }
    by_device
        .into_iter()
        .map(|(device, (n, seconds))| {
            let records = if n == 1 { "record" } else { "records" };
            format!("`{device}` ({n} {records}, {} s)", fmt_seconds(seconds))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A hyper-parameter as written in a manifest: `2.5e-4`, `0.01`, `0.9`.
fn fmt_param(v: f64) -> String {
    if v != 0.0 && v.abs() < 0.01 {
        format!("{v:e}")
    } else {
        fmt_axis(v)
    }
}

const RECIPE_HEADER: [&str; 12] = [
    "kind",
    "arch",
    "width",
    "optimizer",
    "lr",
    "weight decay",
    "momentum",
    "length",
    "batch size",
    "schedule",
    "augment",
    "objective",
];

/// A training run's recipe, in the order of [`RECIPE_HEADER`].
fn recipe_cells(p: &Provenance, t: &TrainInfo) -> Vec<String> {
    let r = &t.params;
    let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "–".into());
    let number = |v: Option<f64>| v.map_or_else(|| "–".into(), fmt_param);
    let length = match (r.steps, r.epochs) {
        (Some(s), _) => format!("{s} steps"),
        (None, Some(1)) => "1 epoch".into(),
        (None, Some(e)) => format!("{e} epochs"),
        (None, None) => "–".into(),
    };
    vec![
        p.kind.clone(),
        t.arch.clone(),
        if t.width > 0.0 {
            fmt_axis(t.width)
        } else {
            "–".into()
        },
        text(&r.optimizer),
        number(r.lr),
        number(r.weight_decay),
        number(r.momentum),
        length,
        r.batch_size.map_or_else(|| "–".into(), |b| b.to_string()),
        text(&r.schedule),
        r.augment
            .map_or_else(|| "–".into(), |a| if a { "yes" } else { "no" }.into()),
        text(&r.objective),
    ]
}

/// The family of a node id: `expert[arch=vgg11_bn,class=8]` -> `expert`.
fn family(id: &str) -> &str {
    id.split('[').next().unwrap_or(id)
}

/// A recipe's cells and the node families that used it, each with its number of members.
type RecipeGroup<'a> = (Vec<String>, Vec<(&'a str, usize)>);

/// One row per distinct recipe of the `train` and `expert` inputs, naming the node families
/// that used it (with their number of members when more than one).
fn recipes(doc: &mut Document, view: &View<'_>) {
    if view.trains.is_empty() {
        return;
    }
    // Recipes in order of first appearance, each with its families and their member counts.
    let mut groups: Vec<RecipeGroup<'_>> = vec![];
    for &(p, t) in &view.trains {
        let cells = recipe_cells(p, t);
        let at = match groups.iter().position(|(c, _)| *c == cells) {
            Some(at) => at,
            None => {
                groups.push((cells, vec![]));
                groups.len() - 1
            }
        };
        let families = &mut groups[at].1;
        match families.iter_mut().find(|(f, _)| *f == family(&p.id)) {
            Some((_, n)) => *n += 1,
            None => families.push((family(&p.id), 1)),
        }
    }
    doc.paragraph(
        "**Training recipes.** The hyper-parameters of the `train` and `expert` nodes among the \
         inputs, as the manifest resolved them (recipe tables merged, overrides and defaults \
         applied); nodes with the same recipe share a row, and a count after a node name is \
         its number of members (one per axis value). What each node trained on is in the \
         training runs' `data` column.",
    );
    let mut header = vec!["nodes"];
    header.extend(RECIPE_HEADER);
    let mut table = Table::new(&header);
    for (cells, families) in groups {
        let nodes: Vec<String> = families
            .iter()
            .map(|(f, n)| match n {
                1 => format!("`{f}`"),
                n => format!("`{f}` ({n})"),
            })
            .collect();
        let mut row = vec![nodes.join(", ")];
        row.extend(cells);
        table.push(row, None);
    }
    doc.table(table);
}
