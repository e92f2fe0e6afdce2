//! The seed study's published CIFAR-10 numbers, embedded so that a report never reads the
//! design folder at run time.
//!
//! Every value is copied from docs/study.md §8 (which transcribes the upstream result JSONs);
//! the comment on each field names its subsection. Accuracies are percentages; ablation values
//! are rounded to three decimals.

/// The grid-search optimum for ship (docs/study.md §8.2, run 2; also the table in §4.5).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Optimum {
    pub alpha: f64,
    pub rho: f64,
    pub retain: f64,
    pub forget: f64,
    pub status: &'static str,
    pub score: f64,
}

/// Relearning for the Anamnesis Index (docs/study.md §8.9), counted in epochs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Anamnesis {
    pub target: f64,
    pub epochs_retrained: u32,
    pub epochs_unlearned: u32,
    pub ain: f64,
}

/// One architecture's published numbers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PublishedArch {
    /// Our architecture name (`Arch::name`).
    pub arch: &'static str,
    /// The seed's spelling, for the reader.
    pub seed_name: &'static str,
    /// docs/study.md §8.1: base model test accuracy.
    pub base_accuracy: f64,
    /// docs/study.md §8.1: base model per-class test accuracy, airplane .. truck.
    pub base_per_class: [f64; 10],
    /// docs/study.md §8.1: overall test accuracy of the expert for each class.
    pub expert_accuracy: [f64; 10],
    /// docs/study.md §8.2 run 2: the chosen (alpha, rho) and its scores.
    pub optimum: Optimum,
    /// docs/study.md §8.3: gradient ascent on ship, (retain, forget).
    pub gradient_ascent: (f64, f64),
    /// docs/study.md §8.3: random labels on ship, (retain, forget).
    pub random_labels: (f64, f64),
    /// docs/study.md §8.4: each class forgotten with the ship optimum, (retain, forget),
    /// airplane .. truck.
    pub ablation: [(f64, f64); 10],
    /// docs/study.md §8.5: KL(retrained || unlearned) on the forget and the retain part, nats.
    pub kl_forget: f64,
    pub kl_retain: f64,
    /// docs/study.md §8.6: ZRF against one random network.
    pub zrf: f64,
    /// docs/study.md §8.7: entropy MIA AUC of the base and the unlearned model.
    pub mia_base: f64,
    pub mia_unlearned: f64,
    /// docs/study.md §8.8: over-forgetting gap (others minus airplane), percentage points.
    pub over_forgetting_gap: f64,
    /// docs/study.md §8.9: the Anamnesis Index.
    pub anamnesis: Anamnesis,
    /// docs/study.md §8.10: overall test accuracy of the unlearned (ship) model.
    pub unlearned_accuracy: f64,
}

/// docs/study.md §8.12: the VGG11_bn time benchmark, seconds on the authors' Apple-Silicon machine.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimeBenchmark {
    pub arch: &'static str,
    pub expert_seconds: f64,
    pub surgery_seconds: f64,
    pub retrain_seconds: f64,
    pub savings_percent: f64,
}

/// 8.12.
pub const TIME_BENCHMARK: TimeBenchmark = TimeBenchmark {
    arch: "vgg11_bn",
    expert_seconds: 378.975_247_859_954_83,
    surgery_seconds: 2.389_456_033_706_665,
    retrain_seconds: 3_251.292_623_996_734_6,
    savings_percent: 88.270_366_651_130_3,
};

/// The forget class of every published single-class result: 8, ship (the class numbering of
/// docs/study.md).
pub const FORGET_CLASS: u32 = 8;

/// docs/study.md §8.1-8.10, per architecture.
pub const PUBLISHED: [PublishedArch; 3] = [
    PublishedArch {
        arch: "resnet18",
        seed_name: "ResNet18",
        base_accuracy: 89.10,
        base_per_class: [89.1, 91.1, 86.3, 77.2, 92.2, 79.6, 92.4, 93.8, 95.0, 94.3],
        expert_accuracy: [
            71.33, 81.21, 71.76, 67.48, 74.00, 66.59, 75.55, 75.57, 71.71, 73.44,
        ],
        optimum: Optimum {
            alpha: -1.0,
            rho: 0.628_947_368_421_052_6,
            retain: 62.311_112_880_706_79,
            forget: 2.999_999_932_944_774_6,
            status: "BEST_EFFORT",
            score: 57.811,
        },
        gradient_ascent: (46.900, 2.8),
        random_labels: (84.911, 15.9),
        ablation: [
            (71.378, 17.3),
            (73.822, 9.8),
            (61.200, 6.6),
            (76.211, 17.7),
            (68.300, 1.9),
            (71.667, 3.3),
            (73.389, 6.6),
            (67.278, 5.1),
            (62.322, 3.0),
            (71.089, 20.3),
        ],
        kl_forget: 3.204_805_094_718_933,
        kl_retain: 1.615_129_544_834_296,
        zrf: 0.316_352_101_770_232,
        mia_base: 0.410_704,
        mia_unlearned: 0.429_735,
        over_forgetting_gap: 13.3,
        anamnesis: Anamnesis {
            target: 90.0,
            epochs_retrained: 12,
            epochs_unlearned: 9,
            ain: 0.75,
        },
        unlearned_accuracy: 56.39,
    },
    PublishedArch {
        arch: "vgg11_bn",
        seed_name: "VGG11_bn",
        base_accuracy: 87.40,
        base_per_class: [89.1, 94.4, 82.0, 77.2, 88.5, 76.3, 90.8, 89.9, 93.5, 92.3],
        expert_accuracy: [
            25.32, 26.00, 10.08, 10.04, 16.29, 19.37, 15.35, 30.00, 29.63, 29.41,
        ],
        optimum: Optimum {
            alpha: -2.5,
            rho: 0.99,
            retain: 85.544_443_130_493_16,
            forget: 0.0,
            status: "PASSED",
            score: 85.544,
        },
        gradient_ascent: (11.133, 0.0),
        random_labels: (47.956, 0.0),
        ablation: [
            (84.422, 5.1),
            (85.278, 0.0),
            (85.822, 9.2),
            (86.011, 4.1),
            (86.533, 0.0),
            (83.011, 0.0),
            (82.856, 0.0),
            (81.900, 0.0),
            (85.589, 0.0),
            (78.233, 0.0),
        ],
        kl_forget: 0.970_459_144_532_680_6,
        kl_retain: 0.267_777_464_865_810_33,
        zrf: 0.827_530_650_424_52,
        mia_base: 0.471_782_7,
        mia_unlearned: 0.437_438_6,
        over_forgetting_gap: 3.425,
        anamnesis: Anamnesis {
            target: 88.5,
            epochs_retrained: 11,
            epochs_unlearned: 4,
            ain: 0.363_636_363_636_363_65,
        },
        unlearned_accuracy: 76.99,
    },
    PublishedArch {
        arch: "mobilenet_v2",
        seed_name: "MobileNetV2",
        base_accuracy: 77.09,
        base_per_class: [81.5, 90.1, 67.9, 58.5, 72.6, 65.7, 83.4, 80.9, 87.2, 83.1],
        expert_accuracy: [
            10.43, 10.69, 10.41, 10.88, 13.87, 11.75, 10.18, 14.22, 11.08, 12.64,
        ],
        optimum: Optimum {
            alpha: -1.5,
            rho: 0.5,
            retain: 57.099_997_997_283_936,
            forget: 0.100_000_004_749_745_13,
            status: "BEST_EFFORT",
            score: 56.95,
        },
        gradient_ascent: (49.600, 4.4),
        random_labels: (59.267, 9.6),
        ablation: [
            (57.867, 0.0),
            (57.944, 0.0),
            (57.678, 27.9),
            (59.078, 0.0),
            (57.344, 0.0),
            (40.011, 0.0),
            (63.022, 0.0),
            (55.500, 0.0),
            (57.100, 0.1),
            (63.556, 0.0),
        ],
        kl_forget: 5.909_668_396_711_35,
        kl_retain: 2.301_812_570_015_589_4,
        zrf: 0.413_009_490_453_486_8,
        mia_base: 0.452_458,
        mia_unlearned: 0.474_410_6,
        over_forgetting_gap: 8.8875,
        anamnesis: Anamnesis {
            target: 82.2,
            epochs_retrained: 30,
            epochs_unlearned: 16,
            ain: 0.533_333_333_333_333_3,
        },
        unlearned_accuracy: 51.40,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_savings_follow_from_the_published_seconds() {
        let t = TIME_BENCHMARK;
        let savings = (1.0 - (t.expert_seconds + t.surgery_seconds) / t.retrain_seconds) * 100.0;
        assert!((savings - t.savings_percent).abs() < 1e-9);
    }

    #[test]
    fn the_published_scores_follow_from_retain_and_forget() {
        for p in PUBLISHED {
            let o = p.optimum;
            assert!(
                (o.retain - 1.5 * o.forget - o.score).abs() < 1e-3,
                "{}",
                p.arch
            );
            let a = p.anamnesis;
            let ain = f64::from(a.epochs_unlearned) / f64::from(a.epochs_retrained);
            assert!((ain - a.ain).abs() < 1e-12, "{}", p.arch);
        }
    }
}
