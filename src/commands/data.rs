//! `tarun data fetch cifar10`: download, verify and extract CIFAR-10's binary version.
//! `tarun data info MANIFEST|PATH`: where a study's data is found and whether it is complete.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use camino::Utf8Path;
use indicatif::{ProgressBar, ProgressStyle};
use tarun_core::manifest::Study;
use tarun_ml::data::cifar::{TEST_FILE, TRAIN_FILES, read_cifar_file};
use tarun_ml::data::fetch::CIFAR10_DIR;
use tarun_ml::data::{self as mldata, DataSpec, RECORD_BYTES, Source};

use super::Result;
use crate::cli::{DataCommand, DataInfoArgs};
use crate::errors::{self, ExpectedError};
use crate::output::outln;

/// Images in each of CIFAR-10's six batch files.
const IMAGES_PER_FILE: u64 = 10_000;

pub fn data(cmd: DataCommand) -> Result<ExitCode> {
    match cmd {
        DataCommand::Fetch { dataset, dest } => fetch(&dataset, &dest),
        DataCommand::Info(args) => info(&args),
    }
}

fn fetch(dataset: &str, dest: &Utf8Path) -> Result<ExitCode> {
    if dataset != "cifar10" {
        return Err(ExpectedError::Usage(format!(
            "unknown dataset `{dataset}` (cifar10)"
        )));
    }
    let bar = ProgressBar::new(0);
    if std::io::stderr().is_terminal() {
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec}")
                .expect("valid template"),
        );
    } else {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut progress = |done: u64, total: Option<u64>| {
        if let Some(t) = total {
            bar.set_length(t);
        }
        bar.set_position(done);
    };
    let dir = tarun_ml::data::fetch_cifar10(dest.as_std_path(), &mut progress)
        .map_err(|e| ExpectedError::Other(anyhow::anyhow!("{e}")))?;
    bar.finish_and_clear();
    outln!("CIFAR-10 is in `{}`", dir.display())?;
    Ok(ExitCode::SUCCESS)
}

/// One of CIFAR-10's six batch files as found on disk.
struct BatchFile {
    name: &'static str,
    split: &'static str,
    bytes: Option<u64>,
    /// Records read and validated (labels 0-9, whole records), or why not.
    images: Option<std::result::Result<u64, String>>,
}

impl BatchFile {
    fn read(dir: &Path, name: &'static str, split: &'static str) -> BatchFile {
        let path = dir.join(name);
        let bytes = std::fs::metadata(&path)
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len());
        let images = bytes.map(|_| {
            read_cifar_file(&path)
                .map(|d| d.len() as u64)
                .map_err(|e| e.to_string())
        });
        BatchFile {
            name,
            split,
            bytes,
            images,
        }
    }

    fn valid(&self) -> bool {
        matches!(self.images, Some(Ok(_)))
    }

    fn official(&self) -> bool {
        matches!(self.images, Some(Ok(IMAGES_PER_FILE)))
            && self.bytes == Some(IMAGES_PER_FILE * RECORD_BYTES as u64)
    }

    fn json(&self) -> serde_json::Value {
        let (images, error) = match &self.images {
            Some(Ok(n)) => (Some(*n), None),
            Some(Err(e)) => (None, Some(e.clone())),
            None => (None, None),
        };
        serde_json::json!({
            "name": self.name,
            "split": self.split,
            "present": self.bytes.is_some(),
            "bytes": self.bytes,
            "images": images,
            "valid": self.valid(),
            "error": error,
        })
    }
}

/// What `data info` found: the study's data source and, for CIFAR-10, its folder and files.
struct Info {
    /// The manifest it came from, if any.
    study: Option<Study>,
    spec: DataSpec,
    files: Vec<BatchFile>,
}

fn info(args: &DataInfoArgs) -> Result<ExitCode> {
    let target = &args.target;
    let info = if target.is_file() {
        let study = tarun_core::manifest::load(target, &[])?;
        let spec = crate::kinds::data::spec(&study).map_err(ExpectedError::Usage)?;
        Info::new(Some(study), spec)
    } else if target.is_dir() {
        // The folder itself, or the one `data fetch --dest` made inside it.
        let inner = target.join(CIFAR10_DIR);
        let dir = if inner.is_dir() {
            inner
        } else {
            target.clone()
        };
        let spec = DataSpec {
            source: Source::Cifar10 {
                dir: dir.into_std_path_buf(),
            },
            train_per_class: None,
            test_per_class: None,
            validation_per_class: 0,
            seed: 0,
        };
        Info::new(None, spec)
    } else {
        return Err(ExpectedError::Usage(format!(
            "data info: `{target}` is neither a manifest nor a folder"
        )));
    };
    let complete = info.files.iter().all(BatchFile::valid);
    // Only complete data has a digest and splits; loading it is what a run would do.
    let (digest, splits) = if complete {
        let digest = mldata::content_digest(&info.spec)
            .map_err(|e| ExpectedError::Other(anyhow::anyhow!("{e}")))?;
        let splits = match &info.study {
            Some(_) => Some(
                mldata::load(&info.spec)
                    .map_err(|e| ExpectedError::Other(anyhow::anyhow!("{e}")))?,
            ),
            None => None,
        };
        (Some(digest), splits)
    } else {
        (None, None)
    };
    let split_sizes = splits.as_ref().map(|s| {
        serde_json::json!({
            "train": s.train.len(),
            "validation": s.validation.len(),
            "test": s.test.len(),
        })
    });
    let (source, folder) = match &info.spec.source {
        Source::Synthetic => ("synthetic", None),
        Source::Cifar10 { dir } => ("cifar10", Some(dir.clone())),
        Source::Files { .. } => ("files", None),
    };
    let official = folder.is_some() && info.files.iter().all(BatchFile::official);
    if args.json {
        let doc = serde_json::json!({
            "study": info.study.as_ref().map(|s| s.name.clone()),
            "source": source,
            "folder": folder.as_ref().map(|d| d.display().to_string()),
            "found": folder.as_ref().is_none_or(|d| d.is_dir()),
            "complete": complete,
            "official": official,
            "files": info.files.iter().map(BatchFile::json).collect::<Vec<_>>(),
            "content-digest": digest,
            "splits": split_sizes,
        });
        outln!("{}", serde_json::to_string_pretty(&doc).expect("json"))?;
    } else {
        if let Some(study) = &info.study {
            outln!("study:   {} ({})", study.name, study.path)?;
        }
        outln!("source:  {source}")?;
        if let Some(dir) = &folder {
            let found = if dir.is_dir() { "" } else { " (not found)" };
            outln!("folder:  {}{found}", dir.display())?;
        }
        for f in &info.files {
            let state = match &f.images {
                None => "missing".to_owned(),
                Some(Ok(n)) => format!(
                    "{n:>6} images {:>11} bytes{}",
                    f.bytes.unwrap_or(0),
                    if f.official() {
                        ""
                    } else {
                        " (not a full batch)"
                    }
                ),
                Some(Err(e)) => format!("damaged: {e}"),
            };
            outln!("  {:<18} {:<6} {state}", f.name, f.split)?;
        }
        if folder.is_some() {
            let verdict = match (complete, official) {
                (true, true) => "complete: all six files, at CIFAR-10's official sizes",
                (true, false) => "complete: six readable files, smaller than CIFAR-10's",
                (false, _) => "incomplete: `tarun data fetch cifar10` downloads CIFAR-10",
            };
            outln!("{verdict}")?;
        }
        if let Some(digest) = &digest {
            outln!("digest:  {digest}")?;
        }
        if let Some(s) = &splits {
            outln!(
                "splits:  train {}, validation {}, test {} images",
                s.train.len(),
                s.validation.len(),
                s.test.len()
            )?;
        }
    }
    Ok(if complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(errors::NODE_FAILED)
    })
}

impl Info {
    fn new(study: Option<Study>, spec: DataSpec) -> Info {
        let files = match &spec.source {
            Source::Cifar10 { dir } => TRAIN_FILES
                .iter()
                .map(|&name| BatchFile::read(dir, name, "train"))
                .chain([BatchFile::read(dir, TEST_FILE, "test")])
                .collect(),
            Source::Synthetic | Source::Files { .. } => Vec::new(),
        };
        Info { study, spec, files }
    }
}
