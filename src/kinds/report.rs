//! `report`: the study's write-up, a thin adapter over [`crate::report`].
//!
//! It reads each input's record and JSON outputs (and what the manifest says about its node) into
//! plain data, has [`build_report`] render them, and writes `report.md`, `report.html`, every
//! figure as `.svg` and a PNG copy of each into the job's directory.

use tarun_core::engine::{Job, JobError, JobInput, JobOutput};
use tarun_core::manifest::params::ReportParams;

use super::failed;
use crate::report::model::{self, ModelRole, Provenance, RawInput, ReportStudy, TrainParams};
use crate::report::{build_report, png};

pub const VERSION: u32 = 5;

pub fn run(job: &Job) -> Result<JobOutput, JobError> {
    // Its `inputs` arrive as the job's inputs, in manifest order.
    let p: ReportParams = super::params(job)?;
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
        data: job
            .study
            .data
            .iter()
            // `path` is a folder on the machine that ran the study, of no use to a reader.
            .filter(|(k, _)| !matches!(k.as_str(), "source" | "path"))
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect(),
        overrides: job.study.overrides.clone(),
        version: env!("TARUN_VERSION").to_owned(),
        rendered: jiff::Timestamp::now(),
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
            started: record.started,
            run_id: record.run_id.clone(),
        }),
        summary: record.summary.clone(),
        selection: read("selection.json"),
        metrics: read("metrics.json"),
        params: node_params(&input.id).map(|(_, p)| p).unwrap_or_default(),
        model_role,
    }
}
