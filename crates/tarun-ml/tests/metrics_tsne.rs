//! t-SNE (docs/study.md §7.8): the perplexity calibration and P against scikit-learn,
//! trustworthiness against scikit-learn, and structure preservation of the embedding itself (exact
//! coordinates are not comparable across implementations).
//!
//! Reference values from scikit-learn 1.9.1:
//!
//! ```python
//! import numpy as np
//! from scipy.spatial.distance import squareform
//! from sklearn.manifold import _utils, trustworthiness
//! from sklearn.manifold._t_sne import _joint_probabilities, _joint_probabilities_nn
//! from sklearn.metrics import pairwise_distances
//! from sklearn.neighbors import NearestNeighbors
//! rng = np.random.default_rng(11)
//! X = np.round(rng.normal(0, 1, (8, 3)), 2)
//! D = pairwise_distances(X, squared=True)
//! cond = _utils._binary_search_perplexity(D.astype(np.float32), 3.0, 0)   # rows 0 and 1
//! P = squareform(_joint_probabilities(D, 3.0, 0))                         # row 0
//! k = min(len(X) - 1, int(3 * 1.5 + 1))                                   # 5
//! G = NearestNeighbors(n_neighbors=k).fit(X).kneighbors_graph(mode="distance")
//! G.data **= 2
//! Pnn = _joint_probabilities_nn(G, 1.5, 0).toarray()                      # rows 0 and 5
//! Y = np.round(rng.normal(0, 1, (20, 5)), 2)
//! E = np.round(Y[:, :2] + rng.normal(0, 0.3, (20, 2)), 2)
//! trustworthiness(Y, E, n_neighbors=5), trustworthiness(Y, E, n_neighbors=3)
//! ```

mod metrics {
    use std::time::Instant;

    use tarun_ml::metrics::tsne::{
        Affinities, JointProbabilities, TsneConfig, conditional_probabilities, joint_probabilities,
        trustworthiness, tsne,
    };

    const X: [f64; 24] = [
        0.03, 1.36, 1.22, -0.51, -0.3, -0.53, 0.57, -0.06, 0.75, -1.85, 1.57, -0.1, 0.68, -0.14,
        -0.38, 0.46, 0.82, -0.2, -0.15, 0.69, -0.87, -1.51, 0.39, -0.67,
    ];

    fn assert_rel(actual: &[f64], expected: &[f64], rel: f64) {
        assert_eq!(actual.len(), expected.len());
        for (j, (a, e)) in actual.iter().zip(expected).enumerate() {
            assert!(
                (a - e).abs() <= rel * e.abs().max(1e-300),
                "entry {j}: {a} vs {e}"
            );
        }
    }

    fn dense_row(p: &JointProbabilities, i: usize) -> Vec<f64> {
        let mut row = vec![0.0; p.rows()];
        p.row(i).for_each(|(j, v)| row[j] = v);
        row
    }

    fn squared_distances_f32(points: &[f64], dim: usize) -> Vec<f32> {
        let n = points.len() / dim;
        (0..n * n)
            .map(|ij| {
                let (a, b) = (
                    &points[ij / n * dim..][..dim],
                    &points[ij % n * dim..][..dim],
                );
                a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>() as f32
            })
            .collect()
    }

    #[test]
    fn perplexity_calibration_matches_sklearn() {
        let conditional = conditional_probabilities(&squared_distances_f32(&X, 3), 8, 3.0);
        assert_rel(
            &conditional[..8],
            &[
                0.0,
                0.0102715513346653,
                0.44019053789343343,
                0.023504112109703528,
                0.025788937787776432,
                0.457138986658402,
                0.03855113519296382,
                0.004554739023055541,
            ],
            1e-9,
        );
        assert_rel(
            &conditional[8..16],
            &[
                8.059701695789042e-08,
                0.0,
                0.0027162256925319416,
                6.136531641990785e-07,
                0.24179578686239786,
                0.0163024669954457,
                0.5206458407452522,
                0.21853898545419118,
            ],
            1e-9,
        );
        // Each row's perplexity 2^H (H in bits) is the target within the search tolerance.
        for row in conditional.chunks_exact(8) {
            let entropy: f64 = row.iter().filter(|&&p| p > 0.0).map(|p| -p * p.ln()).sum();
            assert!((entropy.exp() - 3.0).abs() < 1e-3, "{}", entropy.exp());
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn exact_joint_probabilities_match_sklearn() {
        let p = joint_probabilities(&X, 3, 3.0, Affinities::Exact);
        let expected = [
            0.0,
            0.0006419769957301411,
            0.03262220720535412,
            0.005805739820164185,
            0.001611834022617039,
            0.029671024327090966,
            0.002419678190616142,
            0.00029331129493952564,
        ];
        assert_rel(&dense_row(&p, 0)[1..], &expected[1..], 1e-6);
        assert!((p.values.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn nearest_neighbour_joint_probabilities_match_sklearn() {
        let p = joint_probabilities(&X, 3, 1.5, Affinities::NearestNeighbours);
        let row0 = [
            0.0,
            0.0,
            0.008907746932970573,
            0.0009839536151625412,
            6.466537201738867e-62,
            0.053732818367640975,
            1.5477486276860363e-53,
            0.0,
        ];
        let row5 = [
            0.053732818367640975,
            3.1351422492074274e-07,
            0.008112440830761288,
            0.0004968035596676861,
            0.06471610361205773,
            0.0,
            0.10898721074941495,
            1.2391254930713656e-10,
        ];
        // Tiny entries sit far in the Gaussian tail, where f32 distance rounding is amplified.
        assert_rel(&dense_row(&p, 0), &row0, 1e-4);
        assert_rel(&dense_row(&p, 5), &row5, 1e-4);
        assert!((p.values.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn trustworthiness_matches_sklearn() {
        let y: [f64; 100] = [
            -1.92, -0.81, -0.47, -1.19, -1.49, 0.04, 0.9, -0.23, -0.74, 0.38, 0.72, -0.3, 0.54,
            1.04, -0.21, -0.81, 0.35, 0.25, 1.1, -1.28, -0.66, -0.84, -1.73, 0.13, 0.53, -0.74,
            1.39, 0.82, 0.63, 0.4, 0.96, -1.33, 0.61, 0.6, -1.77, 0.35, -0.25, 0.78, -0.44, -0.02,
            0.34, -0.88, 0.6, -0.1, 0.49, -0.52, 1.09, 0.61, -0.18, 0.63, 1.26, 1.79, -1.57, 0.88,
            0.47, -0.09, -1.01, 1.26, -1.26, 0.57, 1.3, -1.6, -0.3, -1.31, 0.24, 1.51, 2.02, -1.78,
            -0.57, 0.7, 1.58, 0.42, -0.75, 0.3, -0.02, -0.2, -0.73, 0.39, 0.31, -0.09, -0.22,
            -1.28, -0.49, 1.21, -0.19, -1.44, 1.33, 0.53, 2.11, 0.06, -0.46, -1.45, 1.32, 2.57,
            -0.82, -0.65, 0.6, -0.83, -0.27, -0.35,
        ];
        let e: [f64; 40] = [
            -1.86, -0.48, 0.05, 1.18, 0.59, -0.2, -1.45, -0.08, -0.42, -1.02, -0.57, 1.55, 1.36,
            -1.09, 0.66, -0.28, 0.13, -1.1, -0.67, 0.75, 1.1, 1.76, -0.01, -1.11, 0.72, -1.62,
            1.58, 2.35, 1.75, 0.23, -0.42, -0.13, 0.01, -0.73, -0.8, 1.08, -0.34, -1.31, -0.48,
            0.76,
        ];
        let t5 = trustworthiness(&y, 5, &e, 2, 5).unwrap();
        let t3 = trustworthiness(&y, 5, &e, 2, 3).unwrap();
        assert!((t5 - 0.7866666666666666).abs() < 1e-12, "{t5}");
        assert!((t3 - 0.7944444444444445).abs() < 1e-12, "{t3}");
        // An embedding that is the input itself is perfectly trustworthy.
        assert_eq!(trustworthiness(&e, 2, &e, 2, 5).unwrap(), 1.0);
        assert!(trustworthiness(&e, 2, &e, 2, 10).is_err());
    }

    /// `clusters` Gaussian blobs of `per` points in `dim` dimensions, centres 20 apart along
    /// distinct axes, from a fixed-seed generator (a tiny LCG keeps the test self-contained).
    fn blobs(clusters: usize, per: usize, dim: usize) -> (Vec<f64>, Vec<usize>) {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut uniform = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        let mut normal = move || {
            let (u, v) = (uniform(), uniform());
            (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        };
        let mut points = Vec::new();
        let mut labels = Vec::new();
        for c in 0..clusters {
            for _ in 0..per {
                points.extend((0..dim).map(|d| normal() + if d == c { 20.0 } else { 0.0 }));
                labels.push(c);
            }
        }
        (points, labels)
    }

    /// Fraction of points whose nearest embedded neighbour has the same label.
    fn one_nn_agreement(coords: &[[f64; 2]], labels: &[usize]) -> f64 {
        let hits = (0..coords.len())
            .filter(|&i| {
                let d = |j: usize| {
                    (coords[i][0] - coords[j][0]).powi(2) + (coords[i][1] - coords[j][1]).powi(2)
                };
                let nearest = (0..coords.len())
                    .filter(|&j| j != i)
                    .min_by(|&a, &b| d(a).total_cmp(&d(b)))
                    .unwrap();
                labels[nearest] == labels[i]
            })
            .count();
        hits as f64 / coords.len() as f64
    }

    #[test]
    fn separated_clusters_stay_separated() {
        let (points, labels) = blobs(4, 40, 10);
        let config = TsneConfig::default();
        let embedding = tsne(&points, 10, &config).unwrap();
        assert_eq!(embedding.coords.len(), 160);
        assert!(embedding.kl_divergence.is_finite() && embedding.kl_divergence > 0.0);
        assert_eq!(one_nn_agreement(&embedding.coords, &labels), 1.0);
        let flat: Vec<f64> = embedding.coords.iter().flatten().copied().collect();
        let t = trustworthiness(&points, 10, &flat, 2, 10).unwrap();
        assert!(t > 0.9, "trustworthiness {t}");
        // Deterministic: same input, same output.
        assert_eq!(tsne(&points, 10, &config).unwrap(), embedding);
    }

    #[test]
    fn exact_affinities_also_separate_clusters() {
        let (points, labels) = blobs(3, 30, 5);
        let config = TsneConfig {
            affinities: Affinities::Exact,
            perplexity: 10.0,
            ..TsneConfig::default()
        };
        let embedding = tsne(&points, 5, &config).unwrap();
        assert_eq!(one_nn_agreement(&embedding.coords, &labels), 1.0);
    }

    #[test]
    fn perplexity_must_be_below_the_point_count() {
        let (points, _) = blobs(2, 10, 3);
        assert!(tsne(&points, 3, &TsneConfig::default()).is_err());
    }

    #[test]
    #[ignore = "timing only: run in release with --ignored --nocapture"]
    fn seed_sized_embedding_time() {
        // The seed's shape: 1,500 points of 10 logits.
        let (points, labels) = blobs(10, 150, 10);
        let start = Instant::now();
        let embedding = tsne(&points, 10, &TsneConfig::default()).unwrap();
        println!(
            "t-SNE of 1500 x 10: {:.2} s, {} iterations, KL {:.4}, 1-NN agreement {:.3}",
            start.elapsed().as_secs_f64(),
            embedding.iterations,
            embedding.kl_divergence,
            one_nn_agreement(&embedding.coords, &labels)
        );
    }
}
