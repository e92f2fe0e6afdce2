//! Metrics of docs/study.md §7.1–7.4 against hand-computed values and numpy/scipy/scikit-learn.
//!
//! The reference numbers come from this script (numpy 2, scipy, scikit-learn 1.9), run on the
//! `float32` values of the logits below, which is what the Rust code sees:
//!
//! ```python
//! import numpy as np
//! from scipy.special import log_softmax, softmax
//! from sklearn.metrics import roc_auc_score, confusion_matrix
//! rng = np.random.default_rng(3)
//! R = np.round(rng.normal(0, 2, (6, 4)), 1)
//! U = np.round(rng.normal(0, 2, (6, 4)), 1)
//! T = np.round(rng.normal(0, 0.5, (6, 4)), 1)
//! T2 = np.round(rng.normal(0, 0.5, (6, 4)), 1)
//! R, U, T, T2 = (a.astype(np.float32).astype(np.float64) for a in (R, U, T, T2))
//! labels = np.array([0, 2, 1, 2, 3, 2])
//! lp, lq = log_softmax(R, axis=1), log_softmax(U, axis=1)
//! kl = (np.exp(lp) * (lp - lq)).sum(1)                       # KL(p_R || q_U) per sample
//! kl[labels == 2].mean(), kl[labels != 2].mean()
//! def zrf(A, B):
//!     p, q = softmax(A, axis=1), softmax(B, axis=1)
//!     m = (p + q) / 2
//!     js = 0.5 * (p * (np.log(p) - np.log(m + 1e-8))).sum(1) \
//!        + 0.5 * (q * (np.log(q) - np.log(m + 1e-8))).sum(1)
//!     return 1 - (js / np.log(2)).mean()
//! def neg_entropy(A):
//!     p = softmax(A, axis=1)
//!     return (p * np.log(p + 1e-8)).sum(1)
//! s_m, s_n = neg_entropy(R), neg_entropy(U)
//! roc_auc_score(np.r_[np.ones(6), np.zeros(6)], np.r_[s_m, s_n])
//! confusion_matrix(labels, R.argmax(1), labels=range(4))
//! ```

mod metrics {
    use tarun_ml::metrics::{
        ConfusionMatrix, Logits, MetricsError, auc, entropy_mia_auc, forget_retain_accuracy,
        kl_forget_retain, kl_per_sample, mean_kl, negative_entropy_scores, per_class_accuracy, zrf,
        zrf_multi,
    };

    const R: [f32; 24] = [
        4.1, -5.1, 0.8, -1.1, -0.9, -0.4, -4.0, -0.5, -1.7, 6.6, 0.5, -0.7, -0.6, -1.3, -2.1, -0.8,
        1.0, -0.5, 1.9, -0.4, 0.0, 3.1, 1.1, -1.0,
    ];
    const U: [f32; 24] = [
        -0.4, 1.1, 3.9, -0.5, -0.5, 2.0, -1.8, -0.6, 1.8, 1.2, 0.2, 1.3, -5.7, 2.0, -1.9, -3.3,
        0.6, 1.4, -0.9, -2.2, 0.1, -0.1, 2.8, 1.5,
    ];
    const T: [f32; 24] = [
        0.1, 0.6, -0.1, -0.5, 0.3, 0.3, -0.1, -0.4, 0.1, -1.2, 0.3, 0.2, -0.8, 0.0, -0.5, 0.4,
        -1.0, -0.5, 0.4, 0.6, -1.1, -0.2, 0.2, -0.3,
    ];
    const T2: [f32; 24] = [
        0.8, -0.6, 0.2, -0.5, 0.7, -0.0, -0.2, -0.9, 0.8, 0.4, 0.4, 0.6, 0.2, -0.3, -0.4, -0.4,
        0.7, -0.7, -0.3, -0.2, 0.1, 0.3, -0.6, -0.9,
    ];
    const LABELS: [u32; 6] = [0, 2, 1, 2, 3, 2];

    fn logits(data: &[f32]) -> Logits<'_> {
        Logits::new(data, 4).unwrap()
    }

    fn assert_close(actual: f64, expected: f64, tol: f64) {
        assert!(
            (actual - expected).abs() <= tol,
            "{actual} vs {expected} (difference {})",
            (actual - expected).abs()
        );
    }

    #[test]
    fn logits_reject_ragged_buffers() {
        assert!(matches!(
            Logits::new(&[1.0; 7], 4),
            Err(MetricsError::RaggedLogits { .. })
        ));
        assert!(Logits::new(&[], 4).unwrap().is_empty());
    }

    #[test]
    fn argmax_takes_the_first_maximum() {
        let data = [1.0, 3.0, 3.0, -1.0, -1.0, -2.0];
        assert_eq!(Logits::new(&data, 3).unwrap().predictions(), [1, 0]);
    }

    #[test]
    fn confusion_matrix_matches_sklearn() {
        let cm = ConfusionMatrix::from_logits(logits(&R), &LABELS).unwrap();
        assert_eq!(
            cm.to_rows(),
            [[1, 0, 0, 0], [0, 1, 0, 0], [1, 2, 0, 0], [0, 0, 1, 0]]
        );
        assert_eq!(cm.overall().correct, 2);
        assert_eq!(cm.overall().percent(), Some(2.0 / 6.0 * 100.0));
    }

    #[test]
    fn accuracies_come_from_integer_counts() {
        let per_class = per_class_accuracy(logits(&R), &LABELS).unwrap();
        let percents: Vec<Option<f64>> = per_class.iter().map(|t| t.percent()).collect();
        assert_eq!(percents, [Some(100.0), Some(100.0), Some(0.0), Some(0.0)]);
        let split = forget_retain_accuracy(logits(&R), &LABELS, 2).unwrap();
        assert_eq!((split.forget.correct, split.forget.total), (0, 3));
        assert_eq!((split.retain.correct, split.retain.total), (2, 3));
        // The seed's float32 mean gives 2.9999999329447746 for 30/1000; counts give 3 exactly.
        let cm = ConfusionMatrix::from_counts(2, vec![970, 30, 0, 0]).unwrap();
        assert_eq!(cm.class_tally(0).percent(), Some(97.0));
        let cm = ConfusionMatrix::from_counts(2, vec![0, 0, 970, 30]).unwrap();
        assert_eq!(cm.class_tally(1).percent(), Some(3.0));
    }

    #[test]
    fn out_of_range_labels_are_errors() {
        assert!(matches!(
            ConfusionMatrix::from_predictions(&[0, 1], &[0, 4], 4),
            Err(MetricsError::ClassOutOfRange { class: 4, .. })
        ));
    }

    #[test]
    fn kl_matches_scipy() {
        let expected = [
            4.044573883856649,
            0.6038169546979727,
            1.4357384131059467,
            3.846098415967286,
            1.3465567905766171,
            2.29579551949383,
        ];
        let kl = kl_per_sample(logits(&R), logits(&U)).unwrap();
        for (k, e) in kl.iter().zip(expected) {
            assert_close(*k, e, 1e-12);
        }
        let split = kl_forget_retain(logits(&R), logits(&U), &LABELS, 2).unwrap();
        assert_close(split.forget, 2.2485702967196963, 1e-12);
        assert_close(split.retain, 2.2756230291797377, 1e-12);
        assert_close(
            mean_kl(logits(&R), logits(&U)).unwrap(),
            expected.iter().sum::<f64>() / 6.0,
            1e-12,
        );
    }

    #[test]
    fn kl_by_hand() {
        // p = (1/2, 1/2) from equal logits; q = softmax(0, ln 3) = (1/4, 3/4).
        // KL = ½ ln(½ / ¼) + ½ ln(½ / ¾) = ½ ln 2 + ½ ln(2/3).
        let q_logits = [0.0, 3f32.ln()];
        let kl = kl_per_sample(
            Logits::new(&[0.0, 0.0], 2).unwrap(),
            Logits::new(&q_logits, 2).unwrap(),
        );
        let expected = 0.5 * 2f64.ln() + 0.5 * (2.0f64 / 3.0).ln();
        assert_close(kl.unwrap()[0], expected, 1e-7);
        // Identical distributions: 0.
        assert_close(mean_kl(logits(&U), logits(&U)).unwrap(), 0.0, 1e-15);
    }

    #[test]
    fn kl_split_needs_both_subsets() {
        assert!(matches!(
            kl_forget_retain(logits(&R), logits(&U), &[2; 6], 2),
            Err(MetricsError::Empty { .. })
        ));
    }

    #[test]
    fn zrf_matches_numpy() {
        assert_close(
            zrf(logits(&U), logits(&T)).unwrap(),
            0.7107832528137573,
            1e-12,
        );
        let summary = zrf_multi(logits(&U), &[logits(&T), logits(&T2)]).unwrap();
        assert_close(summary.per_teacher[1], 0.6919936350600653, 1e-12);
        assert_close(
            summary.mean,
            (0.7107832528137573 + 0.6919936350600653) / 2.0,
            1e-12,
        );
        // Two values: sample std = |a − b| / √2.
        assert_close(
            summary.std,
            (0.7107832528137573f64 - 0.6919936350600653).abs() / 2f64.sqrt(),
            1e-12,
        );
    }

    #[test]
    fn zrf_of_a_model_against_itself_is_one_up_to_the_epsilon() {
        // JS(p, p) = Σ p (ln p − ln(p + 1e-8)) ≈ −1e-8 · C: ZRF slightly above 1, as in the seed.
        let z = zrf(logits(&U), logits(&U)).unwrap();
        assert!((1.0..1.0 + 1e-7).contains(&z), "{z}");
        assert!(matches!(
            zrf_multi(logits(&U), &[]),
            Err(MetricsError::Empty { .. })
        ));
    }

    #[test]
    fn entropy_scores_and_mia_auc_match_sklearn() {
        let members = [
            -0.1867830964028423,
            -1.1254945647103374,
            -0.023772225535095455,
            -1.2648470157364402,
            -0.9781449761830947,
            -0.5793550481025599,
        ];
        for (s, e) in negative_entropy_scores(logits(&R)).iter().zip(members) {
            assert_close(*s, e, 1e-12);
        }
        assert_close(
            entropy_mia_auc(logits(&R), logits(&U)).unwrap(),
            0.4444444444444445,
            1e-15,
        );
    }

    #[test]
    fn auc_counts_ties_as_half() {
        // roc_auc_score(np.r_[np.ones(5), np.zeros(4)],
        //               [0.1, 0.4, 0.4, 0.8, 0.35, 0.4, 0.2, 0.8, 0.1])  == 0.55
        let pos = [0.1, 0.4, 0.4, 0.8, 0.35];
        let neg = [0.4, 0.2, 0.8, 0.1];
        assert_close(auc(&pos, &neg).unwrap(), 0.55, 1e-15);
        // By hand: one positive above one negative, everything else tied.
        assert_eq!(auc(&[1.0, 0.0], &[0.0]).unwrap(), 0.75);
        assert_eq!(auc(&[1.0], &[0.0]).unwrap(), 1.0);
        assert_eq!(auc(&[0.0], &[1.0]).unwrap(), 0.0);
        assert!(matches!(
            auc(&[f64::NAN], &[0.0]),
            Err(MetricsError::NotANumber { .. })
        ));
        assert!(matches!(auc(&[], &[0.0]), Err(MetricsError::Empty { .. })));
    }
}
