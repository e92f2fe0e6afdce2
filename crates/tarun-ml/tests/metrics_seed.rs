//! Metrics recomputed from the seed's own published numbers (docs/study.md §8): the transcribed
//! confusion matrices (§8.10) must give the over-forgetting table (§8.8) and the forget/retain
//! counts (§8.2); the relearning curves (§8.9) the AIN values; the timings (§8.12) the 88.27%.

mod metrics {
    use std::cell::Cell;
    use std::convert::Infallible;

    use tarun_ml::metrics::anamnesis::{SEED_TARGET_MARGIN_PP, relearn_target};
    use tarun_ml::metrics::overforgetting::SEED_NEIGHBOUR;
    use tarun_ml::metrics::{
        AinEstimate, ConfusionMatrix, RelearnConfig, RelearnCurve, TimingBreakdown, ain_corrected,
        ain_seed, confusion_neighbour, over_forgetting, over_forgetting_relative, relearn,
        relearn_tracking_retain,
    };

    const SHIP: u32 = 8;

    fn matrix(rows: [[u64; 10]; 10]) -> ConfusionMatrix {
        ConfusionMatrix::from_counts(10, rows.concat()).unwrap()
    }

    fn vgg_base() -> ConfusionMatrix {
        matrix([
            [891, 9, 19, 21, 7, 3, 0, 6, 28, 16],
            [4, 944, 0, 3, 1, 0, 0, 0, 10, 38],
            [32, 1, 820, 49, 40, 20, 19, 14, 4, 1],
            [7, 3, 34, 772, 37, 90, 32, 13, 8, 4],
            [8, 1, 31, 33, 885, 15, 12, 14, 1, 0],
            [7, 0, 12, 161, 29, 763, 3, 24, 0, 1],
            [3, 1, 15, 45, 19, 5, 908, 1, 1, 2],
            [6, 1, 4, 34, 20, 30, 1, 899, 1, 4],
            [35, 7, 3, 7, 0, 0, 1, 1, 935, 11],
            [16, 31, 1, 7, 0, 0, 3, 3, 16, 923],
        ])
    }

    fn vgg_unlearned() -> ConfusionMatrix {
        matrix([
            [825, 4, 88, 22, 8, 1, 0, 27, 0, 25],
            [7, 839, 5, 4, 1, 1, 8, 5, 0, 130],
            [12, 0, 845, 41, 44, 24, 14, 19, 0, 1],
            [4, 1, 40, 740, 51, 110, 26, 25, 0, 3],
            [5, 0, 31, 27, 900, 11, 7, 19, 0, 0],
            [3, 0, 15, 137, 35, 761, 2, 47, 0, 0],
            [0, 0, 28, 45, 22, 5, 898, 1, 0, 1],
            [3, 0, 3, 21, 21, 19, 1, 931, 0, 1],
            [142, 29, 13, 222, 3, 0, 171, 7, 0, 413],
            [7, 7, 2, 7, 1, 0, 4, 12, 0, 960],
        ])
    }

    fn resnet_unlearned() -> ConfusionMatrix {
        matrix([
            [505, 1, 32, 330, 3, 52, 4, 32, 0, 41],
            [2, 452, 3, 188, 0, 40, 0, 4, 0, 311],
            [11, 0, 534, 281, 9, 151, 5, 8, 0, 1],
            [0, 0, 3, 885, 2, 103, 2, 3, 0, 2],
            [0, 0, 24, 320, 431, 155, 6, 64, 0, 0],
            [0, 0, 3, 189, 2, 800, 0, 6, 0, 0],
            [1, 0, 15, 411, 1, 163, 408, 1, 0, 0],
            [0, 0, 3, 134, 2, 84, 0, 775, 0, 2],
            [264, 3, 44, 424, 9, 63, 2, 13, 30, 148],
            [2, 2, 1, 137, 0, 33, 0, 6, 0, 819],
        ])
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn confusion_matrices_reproduce_the_published_accuracies() {
        // docs/study.md §8.2 run 2: VGG retains 7699/9000 and gets 0/1000 ships; §8.10: overall
        // 76.99%.
        let split = vgg_unlearned().forget_retain(SHIP).unwrap();
        assert_eq!((split.retain.correct, split.retain.total), (7699, 9000));
        assert_eq!((split.forget.correct, split.forget.total), (0, 1000));
        assert!(close(vgg_unlearned().overall().percent().unwrap(), 76.99));
        assert!(close(
            resnet_unlearned().overall().percent().unwrap(),
            56.39
        ));
        // docs/study.md §8.1: the VGG base model's per-class accuracies.
        let per_class: Vec<f64> = vgg_base()
            .per_class()
            .iter()
            .map(|t| t.percent().unwrap())
            .collect();
        let published = [89.1, 94.4, 82.0, 77.2, 88.5, 76.3, 90.8, 89.9, 93.5, 92.3];
        assert!(per_class.iter().zip(published).all(|(a, b)| close(*a, b)));
    }

    #[test]
    fn over_forgetting_reproduces_the_published_table() {
        // docs/study.md §8.8: VGG 82.5 / 85.925 / 3.425 and ResNet 50.5 / 63.8 / 13.3.
        let vgg = over_forgetting(&vgg_unlearned(), SHIP, SEED_NEIGHBOUR).unwrap();
        assert_eq!(
            (vgg.neighbour_acc.correct, vgg.others_acc.correct),
            (825, 6874)
        );
        assert_eq!(vgg.others_acc.total, 8000);
        assert!(close(vgg.gap_pp, 3.425));
        let resnet = over_forgetting(&resnet_unlearned(), SHIP, SEED_NEIGHBOUR).unwrap();
        assert!(close(resnet.neighbour_acc.percent().unwrap(), 50.5));
        assert!(close(resnet.others_acc.percent().unwrap(), 63.8));
        assert!(close(resnet.gap_pp, 13.3));
    }

    #[test]
    fn relative_over_forgetting_subtracts_the_base_gap() {
        // Base VGG gap −2.675 (docs/study.md §8.8), so the surgery adds 3.425 + 2.675 = 6.1 points.
        assert_eq!(confusion_neighbour(&vgg_base(), SHIP).unwrap(), 0);
        let relative = over_forgetting_relative(&vgg_base(), &vgg_unlearned(), SHIP, None).unwrap();
        assert_eq!(relative.base.neighbour, 0);
        assert!(close(relative.base.gap_pp, -2.675));
        assert!(close(relative.gap_change_pp, 6.1));
        assert!(close(relative.neighbour_drop_pp, 89.1 - 82.5));
        assert!(close(relative.others_drop_pp, 86.425 - 85.925));
        assert!(over_forgetting(&vgg_base(), SHIP, SHIP).is_err());
    }

    #[test]
    fn confusion_neighbour_uses_both_directions_and_breaks_ties_low() {
        // Class 0 confuses with 1 (3 + 0) and 2 (0 + 3): a tie, the lower index wins.
        let cm = ConfusionMatrix::from_counts(3, vec![5, 3, 0, 0, 5, 0, 3, 0, 5]).unwrap();
        assert_eq!(confusion_neighbour(&cm, 0).unwrap(), 1);
        let cm = ConfusionMatrix::from_counts(3, vec![5, 1, 0, 0, 5, 0, 3, 0, 5]).unwrap();
        assert_eq!(confusion_neighbour(&cm, 0).unwrap(), 2);
    }

    #[test]
    fn seed_ain_from_the_published_curves() {
        // docs/study.md §8.9, ship test accuracy per epoch (index 0 = before relearning).
        let mut vgg_cmp = vec![0.0; 10];
        vgg_cmp.extend([83.4, 100.0]);
        let vgg_unl = [0.0, 3.7, 28.0, 55.4, 88.6];
        let target = relearn_target(93.5, SEED_TARGET_MARGIN_PP);
        let cmp = RelearnCurve::from_forget_curve(&vgg_cmp, target).unwrap();
        let unl = RelearnCurve::from_forget_curve(&vgg_unl, target).unwrap();
        assert_eq!((cmp.seed_count(), unl.seed_count()), (11, 4));
        assert!(close(
            ain_seed(unl.seed_count(), cmp.seed_count()),
            4.0 / 11.0
        ));

        let resnet_cmp = [0., 0., 0., 0., 0., 0., 0., 0., 4.3, 45.0, 71.2, 85.3, 92.3];
        let resnet_unl = [3.0, 11.1, 15.7, 17.1, 28.6, 43.3, 54.0, 72.6, 84.3, 90.9];
        let target = relearn_target(95.0, SEED_TARGET_MARGIN_PP);
        let cmp = RelearnCurve::from_forget_curve(&resnet_cmp, target).unwrap();
        let unl = RelearnCurve::from_forget_curve(&resnet_unl, target).unwrap();
        assert!(close(ain_seed(unl.seed_count(), cmp.seed_count()), 0.75));
        assert_eq!(ain_corrected(&unl, &cmp), AinEstimate::Exact(0.75));
    }

    #[test]
    fn mobilenet_comparison_reaches_the_target_exactly_at_the_cap() {
        // 31 entries; 88.5 ≥ 82.2 at epoch 30, which the seed cannot tell from censoring.
        let mut curve = vec![0.0; 16];
        curve.extend([
            1.4, 3.3, 3.3, 4.2, 3.1, 1.3, 2.6, 2.6, 4.3, 1.7, 2.3, 2.3, 16.7, 62.9,
        ]);
        curve.push(88.5);
        assert_eq!(curve.len(), 31);
        let reached = RelearnCurve::from_forget_curve(&curve, 82.2).unwrap();
        assert!(reached.reached);
        assert_eq!(reached.seed_count(), 30);
        curve.pop();
        curve.push(80.0);
        let censored = RelearnCurve::from_forget_curve(&curve, 82.2).unwrap();
        assert!(!censored.reached);
        assert_eq!(censored.seed_count(), 30);
        // Comparison censored at 30, unlearned reached at 16: AIN is at most 16/30.
        let mut unl_curve = vec![10.0; 16];
        unl_curve.push(94.9);
        let unl = RelearnCurve::from_forget_curve(&unl_curve, 82.2).unwrap();
        assert_eq!(
            ain_corrected(&unl, &censored),
            AinEstimate::AtMost(16.0 / 30.0)
        );
        assert_eq!(
            ain_corrected(&censored, &unl),
            AinEstimate::AtLeast(30.0 / 16.0)
        );
        assert_eq!(ain_corrected(&censored, &censored), AinEstimate::Undefined);
        assert!(close(ain_seed(16, 30), 0.533_333_333_333_333_3));
        assert!(close(ain_seed(4, 0), 4.0));
    }

    #[test]
    fn relearning_loop_stops_at_the_target() {
        // Each step adds 10 points of forget accuracy and costs 1 point of retain accuracy.
        let forget = Cell::new(5.0);
        let retain = Cell::new(90.0);
        let config = RelearnConfig::new(42.0, 100, 2).unwrap();
        let curve = relearn_tracking_retain::<Infallible>(
            &config,
            || {
                forget.set(forget.get() + 10.0);
                retain.set(retain.get() - 1.0);
                Ok(())
            },
            || Ok(forget.get()),
            || Ok(retain.get()),
        )
        .unwrap();
        // 5 → 45 after 4 steps; measured every 2 steps: steps 0, 2, 4.
        assert!(curve.reached);
        assert_eq!(curve.steps, 4);
        let steps: Vec<u64> = curve.points.iter().map(|p| p.step).collect();
        assert_eq!(steps, [0, 2, 4]);
        let retained: Vec<Option<f64>> = curve.points.iter().map(|p| p.retain_acc).collect();
        assert_eq!(retained, [Some(90.0), Some(88.0), Some(86.0)]);
    }

    #[test]
    fn relearning_measures_after_the_last_step_even_off_the_interval() {
        let config = RelearnConfig::new(1000.0, 5, 2).unwrap();
        let count = Cell::new(0);
        let curve = relearn::<Infallible>(
            &config,
            || {
                count.set(count.get() + 1);
                Ok(())
            },
            || Ok(f64::from(count.get())),
        )
        .unwrap();
        let steps: Vec<u64> = curve.points.iter().map(|p| p.step).collect();
        assert_eq!(steps, [0, 2, 4, 5]);
        assert!(!curve.reached && curve.steps == 5 && count.get() == 5);
    }

    #[test]
    fn relearning_loop_reports_censoring_and_errors() {
        let config = RelearnConfig::new(50.0, 3, 1).unwrap();
        let curve = relearn::<String>(&config, || Ok(()), || Ok(10.0)).unwrap();
        assert!(!curve.reached);
        assert_eq!(curve.steps, 3);
        assert_eq!(curve.points.len(), 4);
        // Already at the target before relearning: zero steps, no step taken.
        let stepped = Cell::new(false);
        let curve = relearn::<String>(
            &config,
            || {
                stepped.set(true);
                Ok(())
            },
            || Ok(60.0),
        )
        .unwrap();
        assert!(curve.reached && curve.steps == 0 && !stepped.get());
        let failed = relearn::<String>(&config, || Err("boom".into()), || Ok(0.0));
        assert_eq!(failed.unwrap_err(), "boom");
        assert!(RelearnConfig::new(50.0, 3, 0).is_err());
        assert_eq!(RelearnConfig::seed(88.5).unwrap().max_steps(), 30);
    }

    #[test]
    fn time_savings_reproduce_the_published_percentage() {
        // docs/study.md §8.12: (1 − (378.975… + 2.389…) / 3251.292…) × 100 = 88.2703666511303.
        let timing = TimingBreakdown {
            expert_seconds: 378.97524785995483,
            surgery_seconds: 2.389456033706665,
            retrain_seconds: 3251.2926239967346,
        };
        assert!((timing.savings_percent().unwrap() - 88.2703666511303).abs() < 1e-10);
        let broken = TimingBreakdown {
            retrain_seconds: 0.0,
            ..timing
        };
        assert!(broken.savings_fraction().is_err());
    }
}
