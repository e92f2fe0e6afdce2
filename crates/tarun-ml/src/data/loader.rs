//! Batches for training and evaluation: seeded shuffling, the seed's augmentation, and
//! normalisation, prepared on a background thread.
//!
//! The train transform is torchvision's `RandomCrop(32, padding=4)` (zero padding on the uint8
//! image, so padded pixels are black), `RandomHorizontalFlip()`, `ToTensor()` and
//! `Normalize(MEAN, STD)`; the test transform is `ToTensor()` and `Normalize` only. Each image is
//! written straight from its bytes into the batch's `Vec<f32>` through a per-channel lookup
//! table, so preparing a batch costs a few microseconds per image and loading never holds the
//! model up.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{DataError, Dataset, IMAGE_BYTES, SIDE, mix_seed};

/// Per-channel normalisation mean (the seed's "kuangliu" constants, docs/study.md §1).
pub const MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];
/// Per-channel normalisation standard deviation (as given, not CIFAR-10's true std).
pub const STD: [f32; 3] = [0.2023, 0.1994, 0.2010];
/// Zero padding of the random crop.
const PAD: usize = 4;
/// Batches prepared ahead of the consumer: enough to hide jitter, little memory.
const QUEUE: usize = 4;
/// Stream tags, so the shuffle and the augmentation of an epoch are independent draws.
const SHUFFLE: u64 = 0x5348_5546;
const AUGMENT: u64 = 0x4155_474d;

/// One batch on the device.
#[derive(Debug)]
pub struct Batch {
    /// Normalised images, `f32` `[B, 3, 32, 32]`.
    pub images: Tensor,
    /// Labels, `u32` `[B]`.
    pub labels: Tensor,
    /// Each image's index in the dataset.
    pub indices: Vec<usize>,
}

/// A batch as the worker prepares it, before it becomes tensors on the consumer's thread (GPU
/// contexts are bound per thread, so uploads happen where the model runs).
struct HostBatch {
    images: Vec<f32>,
    labels: Vec<u32>,
    indices: Vec<usize>,
}

/// The random crop offsets (0..=8 into the 40x40 padded image) and flip of one image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Crop {
    /// First row of the crop in the padded image.
    pub top: usize,
    /// First column of the crop in the padded image.
    pub left: usize,
    /// Mirror left-right after cropping.
    pub flip: bool,
}

/// An iterator over one epoch's batches, prepared on a background thread. Dropping it early
/// stops the thread cleanly.
pub struct Loader {
    rx: Option<Receiver<HostBatch>>,
    worker: Option<JoinHandle<()>>,
    device: Device,
    remaining: usize,
}

/// One epoch of `ds` in batches of `batch_size` (the last one partial; no drop_last).
///
/// With `shuffle`, the order is a permutation drawn from `(seed, epoch)` alone, so any epoch
/// can be reproduced without replaying the earlier ones; otherwise it is dataset order. With
/// `augment`, each image gets the seed's random crop and flip, also drawn from `(seed, epoch)`.
///
/// # Panics
/// If `batch_size` is 0.
pub fn batches(
    ds: Arc<Dataset>,
    batch_size: usize,
    shuffle: bool,
    augment: bool,
    seed: u64,
    epoch: u64,
    device: &Device,
) -> Loader {
    assert!(batch_size > 0, "batch size must be positive");
    let order = epoch_order(ds.len(), shuffle, seed, epoch);
    let crops = augment.then(|| crop_params(seed, epoch, ds.len()));
    let remaining = ds.len().div_ceil(batch_size);
    let (tx, rx) = sync_channel(QUEUE);
    let worker = std::thread::Builder::new()
        .name("tarun-data".into())
        .spawn(move || produce(&ds, &order, crops.as_deref(), batch_size, &tx))
        .expect("spawning the data loader thread");
    Loader {
        rx: Some(rx),
        worker: Some(worker),
        device: device.clone(),
        remaining,
    }
}

/// The dataset indices in the order an epoch visits them.
pub fn epoch_order(n: usize, shuffle: bool, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    if shuffle {
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(mix_seed(&[
            seed, epoch, SHUFFLE,
        ])));
    }
    order
}

/// The crop and flip of each of an epoch's `n` positions, as torchvision draws them: crop
/// row, crop column, then a fair coin for the flip.
pub fn crop_params(seed: u64, epoch: u64, n: usize) -> Vec<Crop> {
    let mut rng = ChaCha8Rng::seed_from_u64(mix_seed(&[seed, epoch, AUGMENT]));
    (0..n)
        .map(|_| Crop {
            top: rng.random_range(0..=2 * PAD),
            left: rng.random_range(0..=2 * PAD),
            flip: rng.random_bool(0.5),
        })
        .collect()
}

/// `ToTensor` then `Normalize` for every byte value, per channel, computed in `f32` as PyTorch
/// does (divide by 255, subtract the mean, divide by the std).
pub fn normalisation_table() -> [[f32; 256]; 3] {
    std::array::from_fn(|c| std::array::from_fn(|v| (v as f32 / 255.0 - MEAN[c]) / STD[c]))
}

/// Writes one image, cropped and flipped as `crop` says (or as is), normalised, into `out`
/// (3072 floats, CHW). Pixels from the padding are byte 0.
pub fn transform_into(image: &[u8], crop: Option<Crop>, table: &[[f32; 256]; 3], out: &mut [f32]) {
    let Some(Crop { top, left, flip }) = crop else {
        for (c, (src, dst)) in image
            .chunks_exact(SIDE * SIDE)
            .zip(out.chunks_exact_mut(SIDE * SIDE))
            .enumerate()
        {
            dst.iter_mut()
                .zip(src)
                .for_each(|(d, &s)| *d = table[c][usize::from(s)]);
        }
        return;
    };
    for c in 0..3 {
        let plane = &image[c * SIDE * SIDE..(c + 1) * SIDE * SIDE];
        for y in 0..SIDE {
            let row = &mut out[(c * SIDE + y) * SIDE..(c * SIDE + y + 1) * SIDE];
            // Source row in the unpadded image; outside it, the whole row is padding.
            let Some(sy) = (y + top).checked_sub(PAD).filter(|&sy| sy < SIDE) else {
                row.fill(table[c][0]);
                continue;
            };
            for (x, dst) in row.iter_mut().enumerate() {
                let cx = if flip { SIDE - 1 - x } else { x };
                let byte = (cx + left)
                    .checked_sub(PAD)
                    .filter(|&sx| sx < SIDE)
                    .map_or(0, |sx| plane[sy * SIDE + sx]);
                *dst = table[c][usize::from(byte)];
            }
        }
    }
}

/// The worker: prepares the epoch's batches in order until done or the consumer is gone.
fn produce(
    ds: &Dataset,
    order: &[usize],
    crops: Option<&[Crop]>,
    batch_size: usize,
    tx: &SyncSender<HostBatch>,
) {
    let table = normalisation_table();
    for (b, chunk) in order.chunks(batch_size).enumerate() {
        let mut images = vec![0f32; chunk.len() * IMAGE_BYTES];
        for (k, (&i, out)) in chunk
            .iter()
            .zip(images.chunks_exact_mut(IMAGE_BYTES))
            .enumerate()
        {
            let crop = crops.map(|c| c[b * batch_size + k]);
            transform_into(ds.image(i), crop, &table, out);
        }
        let labels = chunk.iter().map(|&i| u32::from(ds.label(i))).collect();
        if tx
            .send(HostBatch {
                images,
                labels,
                indices: chunk.to_vec(),
            })
            .is_err()
        {
            return; // the Loader was dropped: stop quietly
        }
    }
}

impl Loader {
    fn to_tensors(&self, hb: HostBatch) -> Result<Batch, DataError> {
        let n = hb.labels.len();
        let images = Tensor::from_vec(hb.images, (n, 3, SIDE, SIDE), &self.device)?;
        let labels = Tensor::from_vec(hb.labels, n, &self.device)?;
        Ok(Batch {
            images,
            labels,
            indices: hb.indices,
        })
    }

    /// Joins the finished worker, passing on its panic if it had one.
    fn join_worker(&mut self) {
        if let Some(worker) = self.worker.take()
            && let Err(panic) = worker.join()
        {
            std::panic::resume_unwind(panic);
        }
    }
}

impl Iterator for Loader {
    type Item = Result<Batch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.rx.as_ref()?.recv() {
            Ok(hb) => {
                self.remaining -= 1;
                Some(self.to_tensors(hb))
            }
            Err(_) => {
                self.rx = None;
                self.join_worker();
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Loader {}

impl Drop for Loader {
    fn drop(&mut self) {
        // Closing the channel first makes a worker blocked on a full queue return at once.
        self.rx = None;
        if let Some(worker) = self.worker.take() {
            // A worker panic was already reported on stderr; do not panic inside drop.
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
#[path = "loader_tests.rs"]
mod tests;
