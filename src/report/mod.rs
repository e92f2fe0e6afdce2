//! The study's write-up, built only from its inputs' records and JSON outputs.
//!
//! The `report` node kind (`src/kinds/report.rs`) writes it as `report.md` (figures linked as the
//! `.svg` files), a self-contained `report.html` (inline CSS and SVG, no external assets, print
//! rules for paper and PDF), every figure as its own `.svg` file and a PNG copy of each. Nothing is
//! recomputed: every number is copied from a record or an output file and cited by node id and the
//! first 12 hex digits of the record key, which the HTML links to the provenance table. Sections:
//! the protocol that ran; the setup (study, seed, data, `--set` overrides, tarun version, render
//! date, devices, training recipes); a summary; training runs; metric tables per architecture; the
//! (alpha, rho) grids of `select` nodes; confusion matrices; t-SNE plots coloured by class;
//! relearning curves; the time benchmark from the records' timings (without extra training); every
//! unlearning method against the retrained model with gaps and 95 % intervals over seeds; a
//! timeline of which node ran on which device when (one Gantt chart per run, from the records'
//! start times, durations and devices, with each device's busy time); the original study's
//! published CIFAR-10 numbers side by side; and the provenance of every record. The text cites
//! nothing a reader of the page cannot open: no design documents, store paths or output file names.
//!
//! [`png`] renders those copies with resvg at twice the SVG's size, with the fonts installed on
//! the machine that runs the node: tarun embeds none, so where there are none the PNGs have no
//! text (the node's log says so), while the SVGs name a font family and show their text in every
//! browser.
//!
//! The job-facing code (reading the inputs' records and files, writing the outputs) is the node
//! kind's; [`build_report`] is a pure function of plain data, which is what the tests exercise.

// `charts`, `doc`, `grid`, `html` and `svg` are crate-visible: `tarun compare --html` draws
// its page with them (src/commands/compare/html.rs).
pub(crate) mod charts;
mod compare;
pub(crate) mod doc;
pub(crate) mod grid;
pub(crate) mod html;
mod markdown;
mod methods;
pub mod model;
mod overview;
mod plots;
pub mod png;
mod published;
mod setup;
mod summary;
pub(crate) mod svg;
#[cfg(test)]
mod tests;
mod timeline;
mod timing;

use self::doc::Document;
use self::model::{
    AblateInfo, Content, EvalInfo, ModelRole, Provenance, ReportInput, ReportStudy, TrainInfo,
};
use crate::kinds::Selection;

/// The rendered report: two documents and the figures (file name, SVG text).
#[derive(Clone, Debug)]
pub struct Report {
    pub markdown: String,
    pub html: String,
    pub figures: Vec<(String, String)>,
}

/// The inputs sorted by kind, each with its provenance.
pub struct View<'a> {
    pub all: &'a [ReportInput],
    pub trains: Vec<(&'a Provenance, &'a TrainInfo)>,
    pub ablates: Vec<(&'a Provenance, &'a AblateInfo)>,
    pub selects: Vec<(&'a Provenance, &'a Selection)>,
    pub evals: Vec<(&'a Provenance, &'a EvalInfo)>,
}

impl<'a> View<'a> {
    pub fn new(all: &'a [ReportInput]) -> View<'a> {
        let mut v = View {
            all,
            trains: vec![],
            ablates: vec![],
            selects: vec![],
            evals: vec![],
        };
        for input in all {
            let p = &input.prov;
            match &input.content {
                Content::Train(t) => v.trains.push((p, t)),
                Content::Ablate(a) => v.ablates.push((p, a)),
                Content::Select(s) => v.selects.push((p, s)),
                Content::Evaluate(e) => v.evals.push((p, e)),
                Content::Other => {}
            }
        }
        v
    }

    /// The evaluations whose model has this role, forget class and metric, first first.
    pub fn metric(
        &self,
        role: &ModelRole,
        forget: Option<u32>,
        name: &str,
    ) -> Option<(f64, &'a Provenance)> {
        self.evals
            .iter()
            .filter(|(_, e)| &e.role == role && (forget.is_none() || e.forget == forget))
            .find_map(|(p, e)| Some((*e.metrics.get(name)?, *p)))
    }

    /// The evaluations grouped by architecture, architectures in order of first appearance.
    pub fn evals_by_arch(&self) -> Vec<(&'a str, Vec<(&'a Provenance, &'a EvalInfo)>)> {
        let mut groups: Vec<(&str, Vec<_>)> = vec![];
        for &(p, e) in &self.evals {
            match groups.iter_mut().find(|(a, _)| *a == e.arch) {
                Some((_, list)) => list.push((p, e)),
                None => groups.push((&e.arch, vec![(p, e)])),
            }
        }
        groups
    }
}

/// Builds the whole report from typed inputs. `notes` are shown under "Notes" (inputs that
/// could not be read).
pub fn build_report(inputs: &[ReportInput], study: &ReportStudy, notes: &[String]) -> Report {
    let view = View::new(inputs);
    let mut doc = Document {
        title: study.title.clone(),
        ..Document::default()
    };
    overview::header(&mut doc, study, &view);
    setup::section(&mut doc, study, &view);
    summary::section(&mut doc, &view);
    overview::training(&mut doc, &view);
    overview::metric_tables(&mut doc, &view);
    overview::per_class(&mut doc, &view);
    grid::section(&mut doc, &view);
    plots::confusion(&mut doc, &view);
    plots::tsne(&mut doc, &view);
    plots::relearning(&mut doc, &view);
    timing::section(&mut doc, &view, study);
    methods::section(&mut doc, &view);
    timeline::section(&mut doc, &view);
    compare::section(&mut doc, &view, study);
    overview::provenance(&mut doc, &view, notes);
    Report {
        markdown: markdown::render(&doc),
        html: html::render(&doc),
        figures: doc
            .figures
            .iter()
            .map(|f| (f.file.clone(), f.svg.clone()))
            .collect(),
    }
}
