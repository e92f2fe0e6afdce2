//! Tests of the surgeon (docs/study.md §4) against hand-computed values and numpy.

mod surgery {
    use std::collections::BTreeMap;

    use candle_core::{DType, Device, Tensor};
    use tarun_ml::surgery::{
        BufferPolicy, QuantileMode, StateDict, SurgeryError, TaskVector, Term, abs_order_statistic,
        abs_quantile, apply, is_learnable, mask, mask_threshold, task_vector,
    };

    fn t(values: &[f32]) -> Tensor {
        Tensor::from_slice(values, values.len(), &Device::Cpu).unwrap()
    }

    fn values(tensor: &Tensor) -> Vec<f32> {
        tensor
            .flatten_all()
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    fn dict(entries: &[(&str, Tensor)]) -> StateDict {
        entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    fn assert_close(actual: &[f32], expected: &[f32], tol: f32) {
        assert_eq!(actual.len(), expected.len());
        for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
            assert!((a - e).abs() <= tol, "index {i}: {a} vs {e}");
        }
    }

    #[test]
    fn buffer_names_follow_the_seed() {
        assert!(is_learnable("features.1.weight"));
        assert!(is_learnable("classifier.6.bias"));
        assert!(!is_learnable("features.1.running_mean"));
        assert!(!is_learnable("bn1.running_var"));
        assert!(!is_learnable("layer1.0.bn2.num_batches_tracked"));
    }

    #[test]
    fn quantile_interpolates_linearly_by_hand() {
        // Sorted |x| = [1, 2, 3, 4]; q = 0.5 sits at position 1.5, halfway between 2 and 3.
        assert_eq!(abs_quantile(&[-4.0, 3.0, -2.0, 1.0], 0.5), 2.5);
        // Sorted [0.1, 0.3, 0.5]; q = 0.25 -> position 0.5 -> 0.1 + 0.5 * 0.2.
        assert!((abs_quantile(&[0.5, 0.1, 0.3], 0.25) - 0.2).abs() < 1e-7);
        // The ends are the extreme order statistics.
        assert_eq!(abs_quantile(&[0.5, -0.1, 0.3], 0.0), 0.1);
        assert_eq!(abs_quantile(&[0.5, -0.1, 0.3], 1.0), 0.5);
        assert_eq!(abs_quantile(&[7.0], 0.3), 7.0);
    }

    #[test]
    fn quantile_handles_ties() {
        // Sorted [1, 1, 1, 2, 2]; q = 0.6 -> position 2.4, between the last 1 and the first 2.
        assert!((abs_quantile(&[2.0, 1.0, -1.0, 2.0, 1.0], 0.6) - 1.4).abs() < 1e-6);
        // Sorted [1, 1, 1, 2]; q = 0.5 -> position 1.5, both neighbours are 1.
        assert_eq!(abs_quantile(&[1.0, 2.0, -1.0, 1.0], 0.5), 1.0);
        assert_eq!(abs_order_statistic(&[1.0, 2.0, -1.0, 1.0], 2), 1.0);
        assert_eq!(abs_order_statistic(&[0.0, -0.0, 0.0], 1), 0.0);
    }

    #[test]
    fn quantile_matches_numpy() {
        // import numpy as np
        // rng = np.random.default_rng(7)
        // x = (rng.standard_normal(23) * 0.01).astype(np.float32)
        // for q in [0.0, 0.1, 0.5, 0.6289473684210526, 0.99, 1.0]:
        //     print(q, np.quantile(np.abs(x).astype(np.float64), q, method="linear"))
        let x: [f32; 23] = [
            1.230_153_3e-5,
            0.002_987_455_3,
            -0.002_741_378_5,
            -0.008_905_918,
            -0.004_546_708,
            -0.009_916_466,
            0.000_601_436,
            0.013_402_153,
            -0.004_922_065_4,
            -0.006_204_749,
            0.004_898_420_5,
            0.003_568_87,
            0.001_054_142_5,
            -0.009_304_681,
            -0.000_292_518_23,
            0.006_953_031_8,
            -0.013_442_146,
            -0.004_576_158,
            -0.019_012_228,
            -0.012_895_377,
            -0.018_417_351,
            -0.002_350_911_3,
            -0.012_674_465,
        ];
        let expected = [
            (0.0, 1.230_153_338_838_135_8e-5),
            (0.1, 0.000_691_977_306_269_109_3),
            (0.5, 0.004_922_065_418_213_606),
            (0.628_947_368_421_052_6, 0.008_587_289_474_120_264),
            (0.99, 0.018_881_354_779_005_05),
            (1.0, 0.019_012_227_654_457_092),
        ];
        for (q, want) in expected {
            let got = f64::from(abs_quantile(&x, q));
            assert!((got - want).abs() <= 1e-9, "q = {q}: {got} vs {want}");
        }
    }

    #[test]
    fn mask_keeps_ties_at_the_threshold() {
        // |τ| sorted = [0.05, 0.1, 0.2, 0.2, 0.3]; ρ = 0.5 -> position 2 -> threshold 0.2 exactly,
        // and both entries equal to it survive.
        let tau = TaskVector::from_deltas(BTreeMap::from([(
            "w".to_owned(),
            t(&[0.1, -0.2, 0.2, 0.3, -0.05]),
        )]));
        let masked = mask(&tau, 0.5, QuantileMode::Exact).unwrap();
        assert_eq!(values(&masked.deltas()["w"]), [0.0, -0.2, 0.2, 0.3, 0.0]);
    }

    #[test]
    fn rho_at_or_below_zero_is_a_no_op_and_above_one_is_rejected() {
        let tau = TaskVector::from_deltas(BTreeMap::from([("w".to_owned(), t(&[0.1, -0.2, 0.0]))]));
        for rho in [0.0, -0.5] {
            let masked = mask(&tau, rho, QuantileMode::Exact).unwrap();
            assert_eq!(values(&masked.deltas()["w"]), [0.1, -0.2, 0.0]);
        }
        assert!(matches!(
            mask(&tau, 1.5, QuantileMode::Exact),
            Err(SurgeryError::InvalidRho { .. })
        ));
        assert!(matches!(
            mask(&tau, f64::NAN, QuantileMode::Exact),
            Err(SurgeryError::InvalidRho { .. })
        ));
    }

    #[test]
    fn single_element_tensors_are_never_masked() {
        let tau = TaskVector::from_deltas(BTreeMap::from([("b".to_owned(), t(&[0.001]))]));
        let masked = mask(&tau, 0.99, QuantileMode::Exact).unwrap();
        assert_eq!(values(&masked.deltas()["b"]), [0.001]);
        assert_eq!(mask_threshold(&[0.001], 0.99, QuantileMode::Exact, 0), 0.0);
    }

    fn base_and_expert() -> (StateDict, StateDict) {
        let base = dict(&[
            ("bn.weight", t(&[1.0, 1.0])),
            ("bn.running_mean", t(&[0.5, -0.5])),
            ("bn.running_var", t(&[2.0, 4.0])),
            (
                "bn.num_batches_tracked",
                Tensor::new(7i64, &Device::Cpu).unwrap(),
            ),
            ("fc.weight", t(&[1.0, 1.0, 1.0, 1.0])),
            ("fc.bias", t(&[0.0])),
        ]);
        let expert = dict(&[
            ("bn.weight", t(&[1.5, 0.5])),
            ("bn.running_mean", t(&[1.5, 0.5])),
            ("bn.running_var", t(&[4.0, 8.0])),
            (
                "bn.num_batches_tracked",
                Tensor::new(9i64, &Device::Cpu).unwrap(),
            ),
            ("fc.weight", t(&[1.1, 0.6, 1.2, 1.3])),
            // `fc.bias` is missing from the expert on purpose: the surgeon skips it.
        ]);
        (base, expert)
    }

    #[test]
    fn task_vector_covers_learnable_entries_present_in_the_expert() {
        let (base, expert) = base_and_expert();
        let tau = task_vector(&base, &expert).unwrap();
        let names: Vec<&str> = tau.deltas().keys().map(String::as_str).collect();
        assert_eq!(names, ["bn.weight", "fc.weight"]);
        assert_close(
            &values(&tau.deltas()["fc.weight"]),
            &[0.1, -0.4, 0.2, 0.3],
            1e-6,
        );
        assert_eq!(values(&tau.deltas()["bn.weight"]), [0.5, -0.5]);
        assert_eq!(tau.num_elements(), 6);
        assert_eq!(tau.expert_buffers().len(), 3);
    }

    #[test]
    fn task_vector_rejects_shape_mismatches() {
        let base = dict(&[("w", t(&[1.0, 2.0]))]);
        let expert = dict(&[("w", t(&[1.0, 2.0, 3.0]))]);
        assert!(matches!(
            task_vector(&base, &expert),
            Err(SurgeryError::ShapeMismatch { .. })
        ));
    }

    #[test]
    fn apply_copies_buffers_from_the_base_by_default() {
        let (base, expert) = base_and_expert();
        let tau = task_vector(&base, &expert).unwrap();
        let terms = [Term {
            vector: &tau,
            alpha: -2.5,
            rho: 0.5,
        }];
        let out = apply(&base, &terms, QuantileMode::Exact, BufferPolicy::FromBase).unwrap();
        assert_eq!(
            out.keys().collect::<Vec<_>>(),
            base.keys().collect::<Vec<_>>()
        );
        for name in [
            "bn.running_mean",
            "bn.running_var",
            "bn.num_batches_tracked",
        ] {
            assert_eq!(out[name].dtype(), base[name].dtype());
            assert_eq!(values(&out[name]), values(&base[name]), "{name}");
        }
        // Untouched learnable entry (missing from the expert) is the base's.
        assert_eq!(values(&out["fc.bias"]), [0.0]);
    }

    #[test]
    fn other_buffer_policies() {
        let (base, expert) = base_and_expert();
        let tau = task_vector(&base, &expert).unwrap();
        let terms = [Term {
            vector: &tau,
            alpha: -1.0,
            rho: 0.0,
        }];
        let from_expert =
            apply(&base, &terms, QuantileMode::Exact, BufferPolicy::FromExpert).unwrap();
        assert_eq!(values(&from_expert["bn.running_var"]), [4.0, 8.0]);
        assert_eq!(values(&from_expert["bn.num_batches_tracked"]), [9.0]);
        let averaged = apply(&base, &terms, QuantileMode::Exact, BufferPolicy::Average).unwrap();
        assert_eq!(values(&averaged["bn.running_mean"]), [1.0, 0.0]);
        assert_eq!(values(&averaged["bn.running_var"]), [3.0, 6.0]);
        assert_eq!(values(&averaged["bn.num_batches_tracked"]), [7.0]);
        let two = [terms[0], terms[0]];
        assert!(matches!(
            apply(&base, &two, QuantileMode::Exact, BufferPolicy::FromExpert),
            Err(SurgeryError::AmbiguousExpertBuffers { count: 2 })
        ));
    }

    #[test]
    fn two_vector_combination_by_hand() {
        // τ1 = [0.1, -0.4, 0.2, 0.3], ρ1 = 0.5: sorted |τ1| = [0.1, 0.2, 0.3, 0.4], position 1.5,
        // threshold 0.25, masked τ1 = [0, -0.4, 0, 0.3].
        // τ2 = [1, 2, 3, 4], ρ2 = 0 (no mask).
        // θ = 1 + (-1)·[0, -0.4, 0, 0.3] + 0.5·[1, 2, 3, 4] = [1.5, 2.4, 2.5, 2.7].
        let base = dict(&[("w", t(&[1.0; 4]))]);
        let tau1 =
            TaskVector::from_deltas(BTreeMap::from([("w".into(), t(&[0.1, -0.4, 0.2, 0.3]))]));
        let tau2 =
            TaskVector::from_deltas(BTreeMap::from([("w".into(), t(&[1.0, 2.0, 3.0, 4.0]))]));
        let terms = [
            Term {
                vector: &tau1,
                alpha: -1.0,
                rho: 0.5,
            },
            Term {
                vector: &tau2,
                alpha: 0.5,
                rho: 0.0,
            },
        ];
        let out = apply(&base, &terms, QuantileMode::Exact, BufferPolicy::FromBase).unwrap();
        assert_close(&values(&out["w"]), &[1.5, 2.4, 2.5, 2.7], 1e-6);
    }

    #[test]
    fn apply_equals_base_plus_alpha_times_the_masked_vector() {
        let n = 10_007;
        let base_w: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
        let expert_w: Vec<f32> = (0..n)
            .map(|i| (i as f32 * 0.37).sin() + (i as f32 * 1.3).cos() * 0.01)
            .collect();
        let base = dict(&[("w", t(&base_w))]);
        let expert = dict(&[("w", t(&expert_w))]);
        let tau = task_vector(&base, &expert).unwrap();
        let masked = mask(&tau, 0.9, QuantileMode::Exact).unwrap();
        let kept = values(&masked.deltas()["w"])
            .iter()
            .filter(|x| **x != 0.0)
            .count();
        // Position 0.9 · 10006 = 9005.4: the threshold lies between ranks 9005 and 9006.
        assert_eq!(kept, n - 9006);
        let terms = [Term {
            vector: &tau,
            alpha: -2.5,
            rho: 0.9,
        }];
        let out = values(
            &apply(&base, &terms, QuantileMode::Exact, BufferPolicy::FromBase).unwrap()["w"],
        );
        let expected: Vec<f32> = base_w
            .iter()
            .zip(values(&masked.deltas()["w"]))
            .map(|(b, m)| b + -2.5f32 * m)
            .collect();
        assert_eq!(out, expected);
    }

    #[test]
    fn apply_keeps_dtype_and_rejects_unknown_keys() {
        let base = dict(&[("w", t(&[1.0, 2.0]).to_dtype(DType::F64).unwrap())]);
        let tau = TaskVector::from_deltas(BTreeMap::from([("w".into(), t(&[0.5, 0.5]))]));
        let out = apply(
            &base,
            &[Term {
                vector: &tau,
                alpha: 2.0,
                rho: 0.0,
            }],
            QuantileMode::Exact,
            BufferPolicy::FromBase,
        )
        .unwrap();
        assert_eq!(out["w"].dtype(), DType::F64);
        assert_eq!(values(&out["w"]), [2.0, 3.0]);
        let stray = TaskVector::from_deltas(BTreeMap::from([("v".into(), t(&[0.5]))]));
        assert!(matches!(
            apply(
                &base,
                &[Term {
                    vector: &stray,
                    alpha: 1.0,
                    rho: 0.0
                }],
                QuantileMode::Exact,
                BufferPolicy::FromBase
            ),
            Err(SurgeryError::UnknownKey { .. })
        ));
    }

    #[test]
    fn seed_sampling_is_deterministic_and_close_to_exact() {
        let n = 200_000;
        // A Weyl sequence: equidistributed on [-0.5, 0.5) with few ties.
        let data: Vec<f32> = (0..n as u32)
            .map(|i| i.wrapping_mul(2_654_435_761) as f32 / 4_294_967_296.0 - 0.5)
            .collect();
        let exact = mask_threshold(&data, 0.9, QuantileMode::Exact, 0);
        // Below the cap the sampling mode is exact.
        assert_eq!(
            mask_threshold(&data, 0.9, QuantileMode::SeedSample { cap: n, seed: 1 }, 0),
            exact
        );
        let sampled = |seed, stream| {
            mask_threshold(
                &data,
                0.9,
                QuantileMode::SeedSample { cap: 20_000, seed },
                stream,
            )
        };
        assert_eq!(sampled(42, 3), sampled(42, 3));
        assert_ne!(sampled(42, 3), sampled(43, 3));
        // |x| is uniform on [0, 0.5]: the 0.9-quantile is 0.45 and a 20k sample lands within ~0.002.
        assert!((exact - 0.45).abs() < 1e-4);
        assert!((sampled(42, 3) - exact).abs() < 5e-3);
    }
}
