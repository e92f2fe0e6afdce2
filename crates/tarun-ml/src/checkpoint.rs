//! Checkpoints: one safetensors file per network, with torchvision state-dict keys and string
//! metadata (`arch`, `width`, `num_classes` and whatever the caller adds, e.g. a recipe as JSON).
//!
//! Files are written atomically (a temporary file in the same directory, then a rename), so a
//! crash never leaves a half-written checkpoint under the final name.
//!
//! # Loading into PyTorch
//!
//! At width 1.0 a checkpoint loads into the torchvision constructors unchanged (other widths need
//! models built with the same scaled channel counts; `mobilenet_v2(width_mult=w)` matches ours):
//!
//! ```python
//! import torch, torchvision
//! from safetensors import safe_open
//! from safetensors.torch import load_file
//!
//! path = "base.safetensors"
//! meta = safe_open(path, "pt").metadata()       # {"arch": "resnet18", "width": "1", ...}
//! n = int(meta["num_classes"])
//! if meta["arch"] == "resnet18":
//!     m = torchvision.models.resnet18(num_classes=n)
//!     m.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)   # CIFAR stem
//!     m.maxpool = torch.nn.Identity()
//! elif meta["arch"] == "vgg11_bn":
//!     m = torchvision.models.vgg11_bn(num_classes=n)
//! else:
//!     m = torchvision.models.mobilenet_v2(num_classes=n, width_mult=float(meta["width"]))
//! m.load_state_dict(load_file(path))
//! m.eval()
//! logits = m(images)   # images: [B, 3, 32, 32], normalised as tarun's loader does
//! ```
//!
//! The logits then agree with [`crate::models::Network::forward_t`] in eval mode to float32
//! rounding (the parity tests in `tests/models_parity.rs` check this against PyTorch).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use crate::models::{Arch, ModelError, Network};

/// Metadata keys this module owns; callers may add any others.
const RESERVED: [&str; 4] = ["arch", "width", "num_classes", "format"];

/// Errors from saving or loading a checkpoint; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading, writing or renaming failed.
    #[error("checkpoint {}: {source}", path.display())]
    Io {
        /// The checkpoint path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not valid safetensors.
    #[error("checkpoint {}: not a valid safetensors file: {source}", path.display())]
    Format {
        /// The checkpoint path.
        path: PathBuf,
        /// The underlying error.
        source: safetensors::SafeTensorError,
    },
    /// A tensor could not be converted.
    #[error("checkpoint {}: {source}", path.display())]
    Candle {
        /// The checkpoint path.
        path: PathBuf,
        /// The underlying error.
        source: candle_core::Error,
    },
    /// Metadata is missing or malformed.
    #[error("checkpoint {}: {message}", path.display())]
    Metadata {
        /// The checkpoint path.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The tensors do not fit the architecture the metadata names.
    #[error("checkpoint {}: {source}", path.display())]
    Model {
        /// The checkpoint path.
        path: PathBuf,
        /// The underlying error.
        source: ModelError,
    },
}

/// A checkpoint's metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Metadata {
    /// The architecture.
    pub arch: Arch,
    /// The width multiplier.
    pub width: f64,
    /// The number of classes.
    pub num_classes: usize,
    /// Caller-supplied entries (for example `"recipe"` holding JSON).
    pub extra: BTreeMap<String, String>,
}

/// Writes `net` to `path` with the caller's metadata entries (which must not use the reserved
/// keys `arch`, `width`, `num_classes` and `format`).
pub fn save(
    net: &Network,
    path: &Path,
    extra: &BTreeMap<String, String>,
) -> Result<(), CheckpointError> {
    let meta_err = |message: String| CheckpointError::Metadata {
        path: path.to_path_buf(),
        message,
    };
    if let Some(k) = extra.keys().find(|k| RESERVED.contains(&k.as_str())) {
        return Err(meta_err(format!("metadata key `{k}` is reserved")));
    }
    let mut meta: HashMap<String, String> = extra.clone().into_iter().collect();
    meta.insert("arch".into(), net.arch().name().into());
    // `{}` on f64 prints the shortest string that parses back to the same value.
    meta.insert("width".into(), format!("{}", net.width()));
    meta.insert("num_classes".into(), net.num_classes().to_string());
    // What Hugging Face tooling expects of a PyTorch-layout file.
    meta.insert("format".into(), "pt".into());

    let candle_err = |source| CheckpointError::Candle {
        path: path.to_path_buf(),
        source,
    };
    // Copy to the CPU once, so serialisation does not fetch each tensor from a device.
    let tensors: Vec<(String, Tensor)> = net
        .state_dict()
        .map_err(|source| CheckpointError::Model {
            path: path.to_path_buf(),
            source,
        })?
        .into_iter()
        .map(|(k, t)| Ok((k, t.to_device(&Device::Cpu).map_err(candle_err)?)))
        .collect::<Result<_, CheckpointError>>()?;
    let bytes =
        safetensors::serialize(tensors, Some(meta)).map_err(|source| CheckpointError::Format {
            path: path.to_path_buf(),
            source,
        })?;
    write_atomically(path, &canonical_header(bytes))
}

/// The same safetensors file with its JSON header's keys in sorted order. safetensors writes
/// the metadata from a `HashMap`, whose order changes from process to process; the store keys
/// artifacts by content, so the same weights must give the same bytes in every run.
fn canonical_header(bytes: Vec<u8>) -> Vec<u8> {
    let len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + len]).expect("safetensors wrote valid JSON");
    let sorted: BTreeMap<&String, serde_json::Value> = header
        .iter()
        .map(|(k, v)| {
            let v = match v.as_object() {
                // Sort the metadata's entries too (tensor entries are structs, already fixed).
                Some(o) if k == "__metadata__" => {
                    serde_json::to_value(o.iter().collect::<BTreeMap<_, _>>()).expect("json")
                }
                _ => v.clone(),
            };
            (k, v)
        })
        .collect();
    let mut json = serde_json::to_vec(&sorted).expect("json");
    // safetensors pads the header with spaces so that the data starts 8-byte aligned.
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + json.len() + bytes.len() - 8 - len);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&bytes[8 + len..]);
    out
}

/// Writes `bytes` to a temporary file next to `path`, syncs it and renames it over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let io_err = |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| {
        io_err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "path has no file name",
        ))
    })?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        // Best effort: the write already failed, a leftover temp file is the lesser problem.
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io_err)
}

/// Reads a checkpoint written by [`save`] (or any safetensors file with torchvision keys and the
/// same metadata) onto `device`.
pub fn load(path: &Path, device: &Device) -> Result<(Network, Metadata), CheckpointError> {
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|source| {
        CheckpointError::Format {
            path: path.to_path_buf(),
            source,
        }
    })?;
    let meta = parse_metadata(path, header.metadata().clone().unwrap_or_default())?;
    let tensors: BTreeMap<String, Tensor> = candle_core::safetensors::load_buffer(&bytes, device)
        .map_err(|source| CheckpointError::Candle {
            path: path.to_path_buf(),
            source,
        })?
        .into_iter()
        .collect();
    let net = Network::from_state_dict(meta.arch, meta.width, meta.num_classes, &tensors, device)
        .map_err(|source| CheckpointError::Model {
        path: path.to_path_buf(),
        source,
    })?;
    Ok((net, meta))
}

fn parse_metadata(
    path: &Path,
    mut raw: HashMap<String, String>,
) -> Result<Metadata, CheckpointError> {
    let err = |message: String| CheckpointError::Metadata {
        path: path.to_path_buf(),
        message,
    };
    let mut take = |key: &str| {
        raw.remove(key)
            .ok_or_else(|| err(format!("metadata lacks `{key}`")))
    };
    let arch_s = take("arch")?;
    let width_s = take("width")?;
    let classes_s = take("num_classes")?;
    let arch: Arch = arch_s.parse().map_err(|e: ModelError| err(e.to_string()))?;
    let width: f64 = width_s
        .parse()
        .map_err(|_| err(format!("bad width `{width_s}`")))?;
    let num_classes: usize = classes_s
        .parse()
        .map_err(|_| err(format!("bad num_classes `{classes_s}`")))?;
    raw.remove("format");
    Ok(Metadata {
        arch,
        width,
        num_classes,
        extra: raw.into_iter().collect(),
    })
}
