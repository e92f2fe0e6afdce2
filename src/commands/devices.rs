//! `tarun devices`: what this build can compute on, and how `run` shares it out.

use std::process::ExitCode;

use super::Result;
use crate::cli::DevicesArgs;
use crate::kinds;
use crate::output::outln;

pub fn devices(args: &DevicesArgs) -> Result<ExitCode> {
    let infos = tarun_ml::device::describe();
    let specs = kinds::detect_devices();
    let features: Vec<&str> = [
        (cfg!(feature = "cuda"), "cuda"),
        (cfg!(feature = "metal"), "metal"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect();
    if args.json {
        let devices: Vec<serde_json::Value> = infos
            .iter()
            .zip(&specs)
            .map(|(info, spec)| {
                serde_json::json!({
                    "name": info.name,
                    "description": info.description,
                    "memory-mb": info.memory_mb,
                    "slots": spec.slots,
                    "budget-mb": spec.memory_mb,
                })
            })
            .collect();
        let out = serde_json::json!({ "devices": devices, "features": features });
        outln!(
            "{}",
            serde_json::to_string_pretty(&out).expect("plain data")
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!("{:<8} {:>5} {:>10}  hardware", "device", "slots", "memory")?;
    for (info, spec) in infos.iter().zip(&specs) {
        let memory = info.memory_mb.map_or_else(
            || "-".to_owned(),
            |mb| format!("{:.1} GB", mb as f64 / 1024.0),
        );
        outln!(
            "{:<8} {:>5} {:>10}  {}",
            info.name,
            spec.slots,
            memory,
            info.description
        )?;
    }
    if features.is_empty() {
        outln!(
            "this build has no GPU support: build with `--features cuda` (NVIDIA) or \
             `--features metal` (Apple) to use GPUs"
        )?;
    } else {
        outln!("built with: {}", features.join(", "))?;
    }
    Ok(ExitCode::SUCCESS)
}
