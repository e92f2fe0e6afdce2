//! SCRUB's distillation loss (docs/study.md §5.1): the KL divergence from the frozen teacher's
//! softened distribution to the student's, scaled by the squared temperature.

use candle_core::{D, Result, Tensor};
use candle_nn::ops::log_softmax;

/// `T^2 / B * sum_i KL(softmax(t_i / T) || softmax(s_i / T))` for student logits `s` and teacher
/// logits `t` of shape `[B, C]`; differentiable in `student` only (the teacher is detached).
/// Terms where the teacher's probability underflows to 0 contribute 0.
pub fn distill_kl(student: &Tensor, teacher: &Tensor, temperature: f64) -> Result<Tensor> {
    let b = student.dim(0)?;
    let log_s = log_softmax(&(student / temperature)?, D::Minus1)?;
    let log_t = log_softmax(&(teacher.detach() / temperature)?, D::Minus1)?;
    let p_t = log_t.exp()?;
    let kl = (p_t * (log_t - log_s)?)?.sum_all()?;
    kl * (temperature * temperature / b.max(1) as f64)
}
