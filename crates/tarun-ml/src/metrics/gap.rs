//! Unlearning metrics in the form papers since 2023 report them (docs/study.md §7.10): each
//! method's forget, retain and test accuracy, membership-inference score and run time beside the
//! retrained model's, the absolute gap of each, their average ("Avg. Gap") and the
//! tug-of-war product ("ToW"), and the mean with a Student-t 95 % interval over seeds.
//!
//! All accuracies and the MIA score are percentages, so every gap is in percentage points.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// One model's figures (percentages, seconds).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MethodFigures {
    /// Accuracy on the forget data.
    pub forget_acc: f64,
    /// Accuracy on the retained data.
    pub retain_acc: f64,
    /// Accuracy on the test data (of the retained classes, for class-wise forgetting).
    pub test_acc: f64,
    /// Membership-inference score, as a percentage; `None` where not measured.
    pub mia: Option<f64>,
    /// Run time of the method in seconds; `None` where not recorded.
    pub seconds: Option<f64>,
}

impl MethodFigures {
    /// Unlearning accuracy, `100 - forget accuracy`.
    pub fn unlearning_accuracy(&self) -> f64 {
        100.0 - self.forget_acc
    }
}

/// The absolute differences from the retrained model, in percentage points (seconds for time).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Gaps {
    /// `|forget_acc - forget_acc_retrained|` (equal to the unlearning-accuracy gap).
    pub forget: f64,
    /// `|retain_acc - retain_acc_retrained|`.
    pub retain: f64,
    /// `|test_acc - test_acc_retrained|`.
    pub test: f64,
    /// `|mia - mia_retrained|` where both are known.
    pub mia: Option<f64>,
    /// `|seconds - seconds_retrained|` where both are known (reported, not averaged).
    pub seconds: Option<f64>,
    /// Avg. Gap: the mean of the forget, retain, test and (where known) MIA gaps.
    pub average: f64,
    /// ToW: `(1 - forget/100) (1 - retain/100) (1 - test/100)`, 1 for a model that matches the
    /// retrained one in all three accuracies.
    pub tow: f64,
}

/// The gaps of `model` to `retrained`.
pub fn gaps(model: &MethodFigures, retrained: &MethodFigures) -> Gaps {
    let diff = |a: f64, b: f64| (a - b).abs();
    let forget = diff(model.forget_acc, retrained.forget_acc);
    let retain = diff(model.retain_acc, retrained.retain_acc);
    let test = diff(model.test_acc, retrained.test_acc);
    let mia = model.mia.zip(retrained.mia).map(|(a, b)| diff(a, b));
    let seconds = model
        .seconds
        .zip(retrained.seconds)
        .map(|(a, b)| diff(a, b));
    let parts: Vec<f64> = [Some(forget), Some(retain), Some(test), mia]
        .into_iter()
        .flatten()
        .collect();
    let average = parts.iter().sum::<f64>() / parts.len() as f64;
    let tow = [forget, retain, test]
        .iter()
        .map(|g| 1.0 - g / 100.0)
        .product();
    Gaps {
        forget,
        retain,
        test,
        mia,
        seconds,
        average,
        tow,
    }
}

/// A sample mean with its two-sided 95 % Student-t interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The sample mean.
    pub mean: f64,
    /// `t_{0.975, n-1} * s / sqrt(n)` with `s` the sample standard deviation (n − 1 in the
    /// denominator); `None` for a single value.
    pub half_width: Option<f64>,
    /// How many values.
    pub n: usize,
}

impl Interval {
    /// The 95 % interval of the mean of `values`; `None` when there are none.
    pub fn of(values: &[f64]) -> Option<Self> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let half_width = (n > 1).then(|| {
            let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            student_t_quantile(0.975, (n - 1) as f64) * (var / n as f64).sqrt()
        });
        Some(Self {
            mean,
            half_width,
            n,
        })
    }

    /// The interval's ends (both the mean for a single value).
    pub fn bounds(&self) -> (f64, f64) {
        let h = self.half_width.unwrap_or(0.0);
        (self.mean - h, self.mean + h)
    }
}

/// The `p`-quantile of Student's t distribution with `df` degrees of freedom (`0 < p < 1`,
/// `df > 0`).
pub fn student_t_quantile(p: f64, df: f64) -> f64 {
    assert!(
        p > 0.0 && p < 1.0 && df > 0.0,
        "t quantile of p = {p}, df = {df}"
    );
    StudentsT::new(0.0, 1.0, df)
        .expect("df > 0 checked above")
        .inverse_cdf(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_match_the_tables() {
        // Standard two-sided 95 % values (scipy.stats.t.ppf(0.975, df)); tests/ref/student_t.py
        // integrates the density to confirm each.
        for (df, want) in [
            (1.0, 12.7062047362),
            (2.0, 4.3026527297),
            (3.0, 3.1824463053),
            (4.0, 2.7764451052),
            (9.0, 2.2621571628),
            (29.0, 2.0452296421),
            (100.0, 1.9839715185),
        ] {
            let got = student_t_quantile(0.975, df);
            assert!((got - want).abs() < 1e-9, "df {df}: {got} against {want}");
            assert!((student_t_quantile(0.025, df) + want).abs() < 1e-9);
        }
    }

    #[test]
    fn interval_by_hand() {
        // 1, 2, 4: mean 7/3, s^2 = ((4/3)^2 + (1/3)^2 + (5/3)^2) / 2 = 7/3,
        // half width = 4.3026527297 * sqrt(7/9) = 3.794593...
        let i = Interval::of(&[1.0, 2.0, 4.0]).unwrap();
        assert!((i.mean - 7.0 / 3.0).abs() < 1e-15);
        let want = 4.3026527297 * (7.0f64 / 9.0).sqrt();
        assert!((i.half_width.unwrap() - want).abs() < 1e-9);
        let one = Interval::of(&[5.0]).unwrap();
        assert_eq!(
            (one.mean, one.half_width, one.bounds()),
            (5.0, None, (5.0, 5.0))
        );
        assert!(Interval::of(&[]).is_none());
    }

    #[test]
    fn gaps_average_and_tow_by_hand() {
        let retrained = MethodFigures {
            forget_acc: 0.0,
            retain_acc: 90.0,
            test_acc: 88.0,
            mia: Some(50.0),
            seconds: Some(100.0),
        };
        let model = MethodFigures {
            forget_acc: 10.0,
            retain_acc: 85.0,
            test_acc: 90.0,
            mia: Some(44.0),
            seconds: Some(10.0),
        };
        let g = gaps(&model, &retrained);
        assert_eq!(
            (g.forget, g.retain, g.test, g.mia, g.seconds),
            (10.0, 5.0, 2.0, Some(6.0), Some(90.0))
        );
        // (10 + 5 + 2 + 6) / 4 and 0.90 * 0.95 * 0.98.
        assert!((g.average - 5.75).abs() < 1e-12);
        assert!((g.tow - 0.8379).abs() < 1e-12);
        assert_eq!(model.unlearning_accuracy(), 90.0);
        // Without an MIA score the average is over the three accuracies.
        let g = gaps(&MethodFigures { mia: None, ..model }, &retrained);
        assert!((g.average - 17.0 / 3.0).abs() < 1e-12);
        assert_eq!(gaps(&retrained, &retrained).tow, 1.0);
    }
}
