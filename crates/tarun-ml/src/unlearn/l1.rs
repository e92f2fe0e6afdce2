//! l1-sparse fine-tuning: cross-entropy on the retained data plus `gamma_e * ||theta||_1`, with
//! `gamma_e` decaying linearly over the epochs (docs/study.md §5.1).

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};

/// The penalty weight for 0-based `epoch` of `epochs`: `gamma0 * (1 - epoch / epochs)`, constant
/// within an epoch (so the first epoch uses `gamma0` and the last `gamma0 / epochs`).
pub fn l1_gamma(gamma0: f64, epoch: u64, epochs: u64) -> f64 {
    let e = epochs.max(1) as f64;
    gamma0 * (1.0 - epoch.min(epochs) as f64 / e)
}

/// `||theta||_1` over `vars`, as an f32 scalar on their device (0 for no variables).
pub fn l1_norm(vars: &[Var]) -> Result<Option<Tensor>> {
    let sums = vars
        .iter()
        .map(|v| v.as_tensor().detach().abs()?.sum_all())
        .collect::<Result<Vec<_>>>()?;
    if sums.is_empty() {
        return Ok(None);
    }
    Ok(Some(Tensor::stack(&sums, 0)?.sum_all()?))
}

/// Adds the penalty's gradient, `gamma * sign(theta)` (0 where theta is 0, as the derivative of
/// `|x|` is taken in autograd), to every variable's gradient; a variable without a gradient gets
/// the penalty's alone.
pub fn add_l1_gradient(vars: &[Var], grads: &mut GradStore, gamma: f64) -> Result<()> {
    if gamma == 0.0 {
        return Ok(());
    }
    for var in vars {
        let theta = var.as_tensor();
        let penalty = (theta.detach().sign()? * gamma)?;
        let grad = match grads.get(theta) {
            Some(g) => (g + penalty)?,
            None => penalty,
        };
        grads.insert(theta, grad);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gamma_decays_linearly_per_epoch() {
        for (e, want) in [8e-4, 6e-4, 4e-4, 2e-4].into_iter().enumerate() {
            assert!(
                (l1_gamma(8e-4, e as u64, 4) - want).abs() < 1e-18,
                "epoch {e}"
            );
        }
        assert_eq!(l1_gamma(1.0, 9, 4), 0.0);
    }
}
