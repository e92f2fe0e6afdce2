//! SalUn's weight saliency mask (docs/study.md §5.1): the magnitude of the forget loss's gradient
//! ranked over all of the model's weights at once, the most salient fraction kept for updating.

use candle_core::backprop::GradStore;
use candle_core::{DType, Result, Tensor, Var};

/// A 0/1 mask per trainable variable; gradients are multiplied by it before each update.
pub struct SaliencyMask {
    masks: Vec<(Var, Tensor)>,
    kept: usize,
    total: usize,
}

impl SaliencyMask {
    /// Keeps, over all of `grads` (one per variable, same shapes) taken together, the
    /// `floor(n * (1 - sparsity))` entries of largest magnitude; among equal magnitudes the one
    /// earlier in variable order, then in row-major order, wins.
    pub fn from_gradients(vars: &[Var], grads: &[Tensor], sparsity: f64) -> Result<Self> {
        if vars.len() != grads.len() {
            candle_core::bail!("{} variables but {} gradients", vars.len(), grads.len());
        }
        if !(0.0..=1.0).contains(&sparsity) {
            candle_core::bail!("saliency sparsity {sparsity} is not in [0, 1]");
        }
        let mut scores = Vec::new();
        for (v, g) in vars.iter().zip(grads) {
            if v.dims() != g.dims() {
                candle_core::bail!(
                    "gradient of shape {:?} for a {:?} variable",
                    g.dims(),
                    v.dims()
                );
            }
            scores.extend(
                g.abs()?
                    .to_dtype(DType::F32)?
                    .flatten_all()?
                    .to_vec1::<f32>()?,
            );
        }
        let total = scores.len();
        let kept = (total as f64 * (1.0 - sparsity)).floor() as usize;
        let keep = top_k_mask(&scores, kept);
        let mut masks = Vec::with_capacity(vars.len());
        let mut offset = 0;
        for v in vars {
            let n = v.elem_count();
            let bits: Vec<f32> = keep[offset..offset + n]
                .iter()
                .map(|&k| f32::from(u8::from(k)))
                .collect();
            offset += n;
            let m = Tensor::from_vec(bits, v.dims(), v.device())?.to_dtype(v.dtype())?;
            masks.push((v.clone(), m));
        }
        Ok(Self { masks, kept, total })
    }

    /// Multiplies every masked variable's gradient by its mask.
    pub fn apply(&self, grads: &mut GradStore) -> Result<()> {
        for (var, mask) in &self.masks {
            if let Some(g) = grads.get(var.as_tensor()) {
                let masked = (g * mask)?;
                grads.insert(var.as_tensor(), masked);
            }
        }
        Ok(())
    }

    /// How many weights are updated.
    pub fn kept(&self) -> usize {
        self.kept
    }

    /// How many weights there are.
    pub fn total(&self) -> usize {
        self.total
    }

    /// The masks, in variable order.
    pub fn masks(&self) -> impl Iterator<Item = &Tensor> {
        self.masks.iter().map(|(_, m)| m)
    }
}

/// `true` for the `k` largest `scores`, ties going to the lower index; NaN counts as largest so
/// that a broken gradient is never silently frozen out.
pub fn top_k_mask(scores: &[f32], k: usize) -> Vec<bool> {
    let n = scores.len();
    let k = k.min(n);
    let mut keep = vec![false; n];
    if k == 0 {
        return keep;
    }
    if k == n {
        keep.fill(true);
        return keep;
    }
    // Descending by score, so the threshold is the k-th value (index k - 1).
    let desc = |a: &f32, b: &f32| b.total_cmp(a);
    let mut sorted: Vec<f32> = scores
        .iter()
        .map(|s| if s.is_nan() { f32::INFINITY } else { *s })
        .collect();
    let (_, threshold, _) = sorted.select_nth_unstable_by(k - 1, desc);
    let threshold = *threshold;
    let key = |s: f32| if s.is_nan() { f32::INFINITY } else { s };
    let above = scores.iter().filter(|&&s| key(s) > threshold).count();
    let mut ties_left = k - above;
    for (slot, &s) in keep.iter_mut().zip(scores) {
        let s = key(s);
        if s > threshold {
            *slot = true;
        } else if s == threshold && ties_left > 0 {
            *slot = true;
            ties_left -= 1;
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_breaks_ties_by_index() {
        let s = [0.5, 2.0, 0.5, 1.0, 0.5, 3.0];
        let keep = |k| {
            top_k_mask(&s, k)
                .iter()
                .enumerate()
                .filter(|(_, k)| **k)
                .map(|(i, _)| i)
                .collect::<Vec<_>>()
        };
        assert_eq!(keep(0), Vec::<usize>::new());
        assert_eq!(keep(2), [1, 5]);
        assert_eq!(keep(4), [0, 1, 3, 5]);
        assert_eq!(keep(5), [0, 1, 2, 3, 5]);
        assert_eq!(keep(6), [0, 1, 2, 3, 4, 5]);
        assert_eq!(keep(9), [0, 1, 2, 3, 4, 5]);
    }
}
