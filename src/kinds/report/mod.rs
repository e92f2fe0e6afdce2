//! `report`: the study's write-up, built only from its inputs' records and JSON outputs.
//!
//! It writes `report.md`, a self-contained `report.html` (inline CSS and SVG, no external
//! assets) and every figure as its own `.svg` file. Nothing is recomputed: every number is
//! copied from a record or an output file and cited by node id and the first 12 hex digits of
//! the record key. Sections: the protocol that ran, training runs, metric tables per
//! architecture, the (alpha, rho) grids of `select` nodes, confusion matrices, t-SNE plots,
//! relearning curves, the time benchmark from the records' timings (seed-spec 7.9, without
//! extra training), the seed's published CIFAR-10 numbers side by side (seed-spec 8), and the
//! provenance of every record.
//!
//! PNG copies of the figures are not written: rasterising text without system fonts would
//! need an embedded font, and the SVGs already render in every browser.
//!
//! The job-facing code is [`run`] and [`gather`]; [`build_report`] is a pure function of plain
//! data, which is what the tests exercise.

mod charts;
mod compare;
mod doc;
mod grid;
mod html;
mod markdown;
mod model;
mod overview;
mod plots;
mod png;
mod published;
mod summary;
mod svg;
#[cfg(test)]
mod tests;
mod timing;

use serde::Deserialize;
use tarun_core::engine::{Job, JobError, JobInput, JobOutput};

use self::doc::Document;
use self::model::{
    AblateInfo, Content, EvalInfo, ModelRole, Provenance, RawInput, ReportInput, ReportStudy,
    TrainInfo, TrainParams,
};
use super::failed;
use super::select::Selection;

pub const VERSION: u32 = 3;

/// The report's own parameter; its `inputs` arrive as the job's inputs, in manifest order.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Params {
    title: Option<String>,
}

/// The rendered report: two documents and the figures (file name, SVG text).
#[derive(Clone, Debug)]
pub struct Report {
    pub markdown: String,
    pub html: String,
    pub figures: Vec<(String, String)>,
}

pub fn run(job: &Job) -> Result<JobOutput, JobError> {
    let p: Params = super::params(job)?;
    let study = ReportStudy {
        name: job.study.name.clone(),
        title: p
            .title
            .unwrap_or_else(|| format!("Study `{}`", job.study.name)),
        protocol: job.study.protocol,
        data_source: job
            .study
            .data
            .get("source")
            .and_then(|v| v.as_str())
            .map(str::to_owned),
        seed: job.study.seed,
    };
    let mut inputs = vec![];
    let mut notes = vec![];
    for input in &job.inputs {
        match model::parse(gather(job, input)) {
            Ok(parsed) => inputs.push(parsed),
            Err(e) => {
                job.log(format!("skipping `{}`: {e}", input.id));
                notes.push(format!(
                    "`{}` could not be read and is left out: {e}",
                    input.id
                ));
            }
        }
    }
    let report = build_report(&inputs, &study, &notes);
    write(job, "report.md", &report.markdown)?;
    write(job, "report.html", &report.html)?;
    for (file, svg) in &report.figures {
        write(job, file, svg)?;
        let png = png::render(svg).map_err(|e| failed(format!("`{file}` as PNG: {e}")))?;
        let name = format!("{}.png", file.trim_end_matches(".svg"));
        let path = job.out_dir.join(&name);
        std::fs::write(&path, png).map_err(|e| failed(format!("writing `{path}`: {e}")))?;
    }
    if !report.figures.is_empty() && !png::have_fonts() {
        job.log("no system fonts found: the PNG figures have no text (the SVGs do)".to_string());
    }
    let summary = serde_json::json!({
        "title": study.title,
        "inputs": inputs.len(),
        "figures": report.figures.iter().map(|(f, _)| f).collect::<Vec<_>>(),
        "skipped": notes,
    });
    Ok(JobOutput {
        summary,
        log: vec![],
    })
}

fn write(job: &Job, name: &str, text: &str) -> Result<(), JobError> {
    let path = job.out_dir.join(name);
    std::fs::write(&path, text).map_err(|e| failed(format!("writing `{path}`: {e}")))
}

/// One input's record, the JSON outputs the report reads, and what the manifest says about it.
fn gather(job: &Job, input: &JobInput) -> RawInput {
    let record = &input.record;
    let read = |name: &str| {
        input
            .files
            .get(name)
            .and_then(|p| std::fs::read_to_string(p).ok())
    };
    let node_params = |id: &str| -> Option<(&'static str, TrainParams)> {
        let node = job.study.node(id)?;
        let params = serde_json::from_value(serde_json::Value::Object(node.params.clone()));
        Some((node.kind.as_str(), params.unwrap_or_default()))
    };
    let model_role = job
        .study
        .node(&input.id)
        .and_then(|n| n.params.get("model"))
        .and_then(|m| m.as_str())
        .and_then(node_params)
        .map(|(kind, params)| ModelRole::of(kind, &params))
        .unwrap_or_default();
    RawInput {
        prov: Some(Provenance {
            id: input.id.clone(),
            kind: input.kind.as_str().to_owned(),
            key: record.key.to_hex(),
            seconds: record.seconds,
            device: record.device.clone(),
        }),
        summary: record.summary.clone(),
        selection: read("selection.json"),
        metrics: read("metrics.json"),
        params: node_params(&input.id).map(|(_, p)| p).unwrap_or_default(),
        model_role,
    }
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
    summary::section(&mut doc, &view);
    overview::training(&mut doc, &view);
    overview::metric_tables(&mut doc, &view);
    overview::per_class(&mut doc, &view);
    grid::section(&mut doc, &view);
    plots::confusion(&mut doc, &view);
    plots::tsne(&mut doc, &view);
    plots::relearning(&mut doc, &view);
    timing::section(&mut doc, &view, study);
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
