//! The time-savings claim (docs/study.md §7.9): `savings = 1 − (t_expert + t_surgery) / t_retrain`.
//!
//! The seed reports it in percent (88.27% for VGG-11-BN). Which stages the times cover is the
//! caller's choice; docs/study.md §10.2 item 14 lists what the seed's benchmark left out (base
//! training, the grid search, one expert per class) and how its expert recipe differs from the real
//! one.

use serde::{Deserialize, Serialize};

use super::MetricsError;

/// Wall-clock seconds of the three stages compared in docs/study.md §7.9.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimingBreakdown {
    /// Fine-tuning the expert.
    pub expert_seconds: f64,
    /// The task-arithmetic surgery.
    pub surgery_seconds: f64,
    /// Retraining from scratch without the forget class.
    pub retrain_seconds: f64,
}

impl TimingBreakdown {
    /// `1 − (expert + surgery) / retrain`; negative when unlearning is slower than retraining.
    ///
    /// # Errors
    /// A negative or non-finite time, or a zero retraining time.
    pub fn savings_fraction(&self) -> Result<f64, MetricsError> {
        let times = [
            self.expert_seconds,
            self.surgery_seconds,
            self.retrain_seconds,
        ];
        if times.iter().any(|t| !t.is_finite() || *t < 0.0) || self.retrain_seconds == 0.0 {
            return Err(MetricsError::InvalidParameter(format!(
                "times must be finite and non-negative with a positive retrain time: {self:?}"
            )));
        }
        Ok(1.0 - (self.expert_seconds + self.surgery_seconds) / self.retrain_seconds)
    }

    /// [`Self::savings_fraction`] × 100, the seed's `Computational_Savings_Percent`.
    ///
    /// # Errors
    /// As [`Self::savings_fraction`].
    pub fn savings_percent(&self) -> Result<f64, MetricsError> {
        Ok(self.savings_fraction()? * 100.0)
    }
}
