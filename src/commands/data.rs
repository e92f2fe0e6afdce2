//! `tarun data fetch cifar10`: download, verify and extract CIFAR-10's binary version.

use std::io::IsTerminal;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};

use super::Result;
use crate::cli::DataCommand;
use crate::errors::ExpectedError;
use crate::output::outln;

pub fn data(cmd: DataCommand) -> Result<ExitCode> {
    match cmd {
        DataCommand::Fetch { dataset, dest } => {
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
    }
}
