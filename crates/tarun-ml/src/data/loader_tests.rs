use std::time::{Duration, Instant};

use super::*;
use crate::data::NUM_CLASSES;

/// A known image: channel `c`, row `y`, column `x` holds `1 + 50c + 3y + x` (never 0, so
/// padding is recognisable).
fn known_image() -> Vec<u8> {
    (0..3)
        .flat_map(|c| {
            (0..SIDE).flat_map(move |y| (0..SIDE).map(move |x| (1 + 50 * c + 3 * y + x) as u8))
        })
        .collect()
}

fn dataset(n: usize) -> Arc<Dataset> {
    let images = (0..n).flat_map(|i| [i as u8; IMAGE_BYTES]).collect();
    Arc::new(Dataset::new(
        images,
        (0..n).map(|i| (i % NUM_CLASSES) as u8).collect(),
    ))
}

/// Reference: pad to a 40x40 canvas of zeros, cut the 32x32 window, mirror it; bytes only.
fn reference_crop(image: &[u8], crop: Crop) -> Vec<u8> {
    let mut out = Vec::with_capacity(IMAGE_BYTES);
    for c in 0..3 {
        let mut padded = [[0u8; SIDE + 2 * PAD]; SIDE + 2 * PAD];
        for y in 0..SIDE {
            for x in 0..SIDE {
                padded[y + PAD][x + PAD] = image[c * 1024 + y * 32 + x];
            }
        }
        for y in 0..SIDE {
            let row: Vec<u8> = (0..SIDE)
                .map(|x| padded[y + crop.top][x + crop.left])
                .collect();
            out.extend(if crop.flip {
                row.into_iter().rev().collect()
            } else {
                row
            });
        }
    }
    out
}

fn transformed(image: &[u8], crop: Option<Crop>) -> Vec<f32> {
    let mut out = vec![0f32; IMAGE_BYTES];
    transform_into(image, crop, &normalisation_table(), &mut out);
    out
}

#[test]
fn normalisation_matches_pytorch_in_f32() {
    let t = normalisation_table();
    assert_eq!(t[0][0], -0.4914f32 / 0.2023);
    assert_eq!(t[2][255], (1.0f32 - 0.4465) / 0.2010);
    assert_eq!(t[1][128], (128.0f32 / 255.0 - 0.4822) / 0.1994);
    assert!((t[0][0] - -2.429_066).abs() < 1e-6);
    assert!((t[0][255] - 2.514_088).abs() < 1e-6);
    let out = transformed(&known_image(), None);
    assert_eq!(out[1024 + 2 * 32 + 5], t[1][1 + 50 + 6 + 5]);
}

#[test]
fn crop_and_flip_match_hand_computed_pixels() {
    let img = known_image();
    let t = normalisation_table();
    let crop = Crop {
        top: 1,
        left: 6,
        flip: true,
    };
    let out = transformed(&img, Some(crop));
    let at = |c: usize, y: usize, x: usize| out[c * 1024 + y * 32 + x];
    // Rows 0-2 come from the top padding (source row y + 1 - 4 < 0): black.
    assert_eq!(at(0, 2, 17), t[0][0]);
    // Output (y=3, x=0) shows padded column 31 + 6 = 37, i.e. source column 33: padding.
    assert_eq!(at(0, 3, 0), t[0][0]);
    assert_eq!(at(0, 3, 1), t[0][0]);
    // Output (y=3, x=2): padded column 35, source (row 0, column 31) = 1 + 0 + 31.
    assert_eq!(at(0, 3, 2), t[0][32]);
    // Output (c=2, y=10, x=20): source row 7, column 31 - 20 + 6 - 4 = 13 -> 1 + 100 + 21 + 13.
    assert_eq!(at(2, 10, 20), t[2][135]);
    // No flip, centre crop: the identity.
    assert_eq!(
        transformed(
            &img,
            Some(Crop {
                top: 4,
                left: 4,
                flip: false
            })
        ),
        transformed(&img, None)
    );
}

#[test]
fn seeded_augmentation_equals_the_reference_transform() {
    let img = known_image();
    let ds = Arc::new(Dataset::new(img.repeat(64), vec![3; 64]));
    let crops = crop_params(11, 2, 64);
    assert!(crops.iter().all(|c| c.top <= 8 && c.left <= 8));
    let flips = crops.iter().filter(|c| c.flip).count();
    assert!((16..=48).contains(&flips), "about half flipped: {flips}");
    let t = normalisation_table();
    let batch = batches(ds, 64, false, true, 11, 2, &Device::Cpu)
        .next()
        .unwrap()
        .unwrap();
    let got: Vec<f32> = batch.images.flatten_all().unwrap().to_vec1().unwrap();
    for (k, crop) in crops.iter().enumerate() {
        let bytes = reference_crop(&img, *crop);
        let want: Vec<f32> = bytes
            .iter()
            .enumerate()
            .map(|(p, &b)| t[p / 1024][usize::from(b)])
            .collect();
        assert_eq!(
            &got[k * IMAGE_BYTES..(k + 1) * IMAGE_BYTES],
            &want[..],
            "image {k}, {crop:?}"
        );
    }
    assert_ne!(
        crop_params(11, 2, 64),
        crop_params(11, 3, 64),
        "each epoch draws anew"
    );
}

#[test]
fn batches_cover_every_index_once_with_a_partial_last_batch() {
    let ds = dataset(10);
    let got: Vec<Batch> = batches(ds, 4, true, false, 1, 0, &Device::Cpu)
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        got.iter().map(|b| b.indices.len()).collect::<Vec<_>>(),
        [4, 4, 2]
    );
    let mut seen: Vec<usize> = got.iter().flat_map(|b| b.indices.clone()).collect();
    assert_ne!(seen, (0..10).collect::<Vec<_>>(), "shuffled");
    seen.sort();
    assert_eq!(seen, (0..10).collect::<Vec<_>>());
    let last = &got[2];
    assert_eq!(last.images.dims(), &[2, 3, 32, 32]);
    assert_eq!(last.labels.dtype(), candle_core::DType::U32);
    let labels: Vec<u32> = last.labels.to_vec1().unwrap();
    assert_eq!(
        labels,
        last.indices
            .iter()
            .map(|&i| (i % 10) as u32)
            .collect::<Vec<_>>()
    );
    // Image i is filled with byte i: check the first pixel of each against its index.
    let t = normalisation_table();
    let px: Vec<f32> = last.images.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(px[0], t[0][last.indices[0]]);
    assert_eq!(px[IMAGE_BYTES + 2048], t[2][last.indices[1]]);
}

#[test]
fn shuffling_is_deterministic_per_seed_and_epoch() {
    let order = |seed, epoch| -> Vec<usize> {
        batches(dataset(50), 8, true, true, seed, epoch, &Device::Cpu)
            .flat_map(|b| b.unwrap().indices)
            .collect()
    };
    assert_eq!(order(3, 5), order(3, 5));
    assert_eq!(order(3, 5), epoch_order(50, true, 3, 5));
    assert_ne!(order(3, 5), order(3, 6));
    assert_ne!(order(3, 5), order(4, 5));
    let unshuffled: Vec<usize> = batches(dataset(5), 2, false, false, 0, 0, &Device::Cpu)
        .flat_map(|b| b.unwrap().indices)
        .collect();
    assert_eq!(unshuffled, [0, 1, 2, 3, 4]);
}

#[test]
fn empty_dataset_and_sizes() {
    assert_eq!(
        batches(dataset(0), 4, true, true, 0, 0, &Device::Cpu).count(),
        0
    );
    let mut it = batches(dataset(9), 4, false, false, 0, 0, &Device::Cpu);
    assert_eq!(it.len(), 3);
    it.next();
    assert_eq!(it.len(), 2);
}

#[test]
fn dropping_early_stops_the_worker_promptly() {
    let ds = dataset(20_000);
    let started = Instant::now();
    let mut it = batches(ds, 16, true, true, 0, 0, &Device::Cpu);
    assert!(it.next().is_some());
    drop(it);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "worker did not run the whole epoch"
    );
}

#[test]
fn loading_keeps_up_with_training() {
    // A full CIFAR-10 epoch is 50,000 images; the worker should prepare them in well under the
    // seconds a CPU model needs for a single batch of them.
    let ds = dataset(5_000);
    let started = Instant::now();
    let n: usize = batches(ds, 128, true, true, 0, 0, &Device::Cpu)
        .map(|b| b.unwrap().indices.len())
        .sum();
    let took = started.elapsed();
    println!("5000 augmented images in {took:?}");
    assert_eq!(n, 5_000);
    assert!(took < Duration::from_secs(2), "{took:?}");
}
