//! Checkpoint round trip: save, load, identical tensors, metadata and logits.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor};
use tarun_ml::checkpoint::{self, CheckpointError};
use tarun_ml::models::{Arch, Network};

#[test]
fn save_then_load_gives_identical_logits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("net.safetensors");
    let net = Network::new(Arch::MobilenetV2, 0.25, 10, 5, &Device::Cpu).unwrap();
    // Train-mode pass so the buffers differ from their initial values.
    let x = Tensor::randn(0f32, 1., (4, 3, 32, 32), &Device::Cpu).unwrap();
    net.forward_t(&x, true).unwrap();
    let extra = BTreeMap::from([("recipe".to_string(), r#"{"lr":0.001}"#.to_string())]);
    checkpoint::save(&net, &path, &extra).unwrap();

    let (loaded, meta) = checkpoint::load(&path, &Device::Cpu).unwrap();
    assert_eq!(
        (meta.arch, meta.width, meta.num_classes),
        (Arch::MobilenetV2, 0.25, 10)
    );
    assert_eq!(meta.extra, extra);
    let a = net.forward_t(&x, false).unwrap().to_vec2::<f32>().unwrap();
    let b = loaded
        .forward_t(&x, false)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    assert_eq!(a, b);
    let sd = loaded.state_dict().unwrap();
    assert_eq!(sd["features.0.1.num_batches_tracked"].dtype(), DType::I64);
    assert_eq!(
        sd["features.0.1.num_batches_tracked"]
            .to_scalar::<i64>()
            .unwrap(),
        1
    );
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.safetensors");
    let err = checkpoint::load(&missing, &Device::Cpu).unwrap_err();
    assert!(matches!(err, CheckpointError::Io { .. }));
    assert!(err.to_string().contains("absent.safetensors"), "{err}");

    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"not a checkpoint").unwrap();
    let err = checkpoint::load(&garbage, &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("garbage.safetensors"), "{err}");

    let net = Network::new(Arch::Resnet18, 0.125, 10, 0, &Device::Cpu).unwrap();
    let reserved = BTreeMap::from([("arch".to_string(), "vgg".to_string())]);
    let path = dir.path().join("x.safetensors");
    assert!(matches!(
        checkpoint::save(&net, &path, &reserved),
        Err(CheckpointError::Metadata { .. })
    ));
}

/// The store keys artifacts by content: saving the same weights must give the same bytes every
/// time, although safetensors keeps the metadata in a `HashMap` (random order per map).
#[test]
fn the_same_weights_always_give_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let net = Network::new(Arch::Resnet18, 0.0625, 10, 1, &Device::Cpu).unwrap();
    let extra = BTreeMap::from([
        ("recipe".to_string(), "{}".to_string()),
        ("node".to_string(), "base".to_string()),
        ("study".to_string(), "s".to_string()),
    ]);
    let mut files = vec![];
    for i in 0..12 {
        let path = dir.path().join(format!("{i}.safetensors"));
        checkpoint::save(&net, &path, &extra).unwrap();
        files.push(std::fs::read(&path).unwrap());
    }
    assert!(
        files.iter().all(|f| *f == files[0]),
        "checkpoint bytes differ"
    );
    // Still a valid file: it loads with its metadata.
    let (_, meta) = checkpoint::load(&dir.path().join("0.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(meta.extra, extra);
}
