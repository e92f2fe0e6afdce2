//! A borrowed row-major `N × C` block of logits, and the softmax helpers every metric shares.

use super::MetricsError;

/// Model outputs for `rows()` samples over `classes()` classes, row-major.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Logits<'a> {
    data: &'a [f32],
    classes: usize,
}

impl<'a> Logits<'a> {
    /// Views `data` as rows of `classes` logits.
    ///
    /// # Errors
    /// [`MetricsError::RaggedLogits`] when `classes` is zero or does not divide the length.
    pub fn new(data: &'a [f32], classes: usize) -> Result<Self, MetricsError> {
        if classes == 0 || !data.len().is_multiple_of(classes) {
            return Err(MetricsError::RaggedLogits {
                len: data.len(),
                classes,
            });
        }
        Ok(Self { data, classes })
    }

    /// Number of samples.
    pub fn rows(&self) -> usize {
        self.data.len() / self.classes
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The logits of sample `i`.
    ///
    /// # Panics
    /// If `i >= rows()`.
    pub fn row(&self, i: usize) -> &'a [f32] {
        &self.data[i * self.classes..(i + 1) * self.classes]
    }

    /// The samples' logits in order.
    pub fn iter_rows(&self) -> impl ExactSizeIterator<Item = &'a [f32]> + 'a {
        self.data.chunks_exact(self.classes)
    }

    /// The predicted class per sample: the first index of the largest logit, as `torch.argmax`
    /// (a NaN logit wins, as in torch).
    pub fn predictions(&self) -> Vec<u32> {
        self.iter_rows().map(argmax).collect()
    }
}

fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in row.iter().enumerate().skip(1) {
        let current = row[best];
        if !current.is_nan() && (x > current || x.is_nan()) {
            best = i;
        }
    }
    best as u32
}

/// `log softmax` of one row in `f64`, stable for any logit scale.
///
/// The seed computes softmaxes in `float32`; `f64` changes results by about 1e-7 relative.
pub(crate) fn log_softmax(row: &[f32]) -> Vec<f64> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let max = f64::from(max);
    let log_sum = row
        .iter()
        .map(|&x| (f64::from(x) - max).exp())
        .sum::<f64>()
        .ln();
    row.iter().map(|&x| f64::from(x) - max - log_sum).collect()
}

/// Checks that two logit blocks describe the same samples over the same classes.
pub(crate) fn check_paired(
    a: &Logits<'_>,
    b: &Logits<'_>,
    what: &'static str,
) -> Result<(), MetricsError> {
    if a.classes() != b.classes() {
        return Err(MetricsError::LengthMismatch {
            what,
            left: a.classes(),
            right: b.classes(),
        });
    }
    if a.rows() != b.rows() {
        return Err(MetricsError::LengthMismatch {
            what,
            left: a.rows(),
            right: b.rows(),
        });
    }
    Ok(())
}
