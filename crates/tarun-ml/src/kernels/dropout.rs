//! Dropout masks from a counter-based generator, the same numbers on every device.
//!
//! Element `i` of a mask drawn with `seed` is dropped when the top 24 bits of splitmix64's
//! `i`-th output from that seed fall below `p * 2^24`. Each element is a pure function of
//! `(seed, i)`, so the GPU draws the mask in one kernel (`tarun_dropout_mask`) instead of
//! a million host draws and an upload per VGG step, and CPU and GPU masks are identical.

use candle_core::{Device, Result, Shape, Tensor};
use rayon::prelude::*;

/// splitmix64's increment.
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// The `i`-th output of splitmix64 started at `seed` (`kernels.cu` has the same function).
fn splitmix64(seed: u64, i: u64) -> u64 {
    let mut z = seed.wrapping_add(i.wrapping_add(1).wrapping_mul(GAMMA));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The drop threshold on 24-bit draws for probability `p` in [0, 1).
fn threshold(p: f64) -> u32 {
    (p.clamp(0.0, 1.0) * f64::from(1u32 << 24)).round() as u32
}

/// An inverted-dropout mask of `shape` on `device`: each element 0 with probability `p`, else
/// `1 / (1 - p)`.
pub fn dropout_mask(shape: impl Into<Shape>, p: f64, seed: u64, device: &Device) -> Result<Tensor> {
    let shape = shape.into();
    let keep = (1.0 / (1.0 - p)) as f32;
    let limit = threshold(p);
    #[cfg(feature = "cuda")]
    if let Device::Cuda(dev) = device {
        return super::cuda::dropout_mask(dev, shape, seed, limit, keep);
    }
    let n = shape.elem_count();
    let mask: Vec<f32> = (0..n as u64)
        .into_par_iter()
        .map(|i| {
            if ((splitmix64(seed, i) >> 40) as u32) < limit {
                0.0
            } else {
                keep
            }
        })
        .collect();
    Tensor::from_vec(mask, shape, device)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// splitmix64's published first outputs for seed 1234567 (Vigna's reference C code).
    #[test]
    fn the_generator_is_splitmix64() {
        let expected = [
            6457827717110365317u64,
            3203168211198807973,
            9817491932198370423,
            4593380528125082431,
            16408922859458223821,
        ];
        for (i, e) in expected.iter().enumerate() {
            assert_eq!(splitmix64(1234567, i as u64), *e);
        }
    }

    #[test]
    fn masks_drop_about_p_and_rescale_the_rest() {
        let m: Vec<f32> = dropout_mask(100_000, 0.5, 7, &Device::Cpu)
            .unwrap()
            .to_vec1()
            .unwrap();
        let dropped = m.iter().filter(|&&v| v == 0.0).count();
        // Binomial(100000, 0.5): sd 158; 5 sd either side.
        assert!((dropped as i64 - 50_000).abs() < 800, "{dropped} dropped");
        assert!(m.iter().all(|&v| v == 0.0 || v == 2.0));
        let m2: Vec<f32> = dropout_mask(100_000, 0.2, 7, &Device::Cpu)
            .unwrap()
            .to_vec1()
            .unwrap();
        let dropped = m2.iter().filter(|&&v| v == 0.0).count();
        assert!((dropped as i64 - 20_000).abs() < 700, "{dropped} dropped");
        assert!(m2.iter().all(|&v| v == 0.0 || v == 1.25));
    }

    #[test]
    fn a_seed_fixes_the_mask_and_another_changes_it() {
        let a: Vec<f32> = dropout_mask(1000, 0.5, 1, &Device::Cpu)
            .unwrap()
            .to_vec1()
            .unwrap();
        let b: Vec<f32> = dropout_mask(1000, 0.5, 1, &Device::Cpu)
            .unwrap()
            .to_vec1()
            .unwrap();
        let c: Vec<f32> = dropout_mask(1000, 0.5, 2, &Device::Cpu)
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
