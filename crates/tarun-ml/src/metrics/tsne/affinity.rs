//! Input affinities P of t-SNE: per-point Gaussian bandwidths calibrated to a perplexity, then
//! symmetrised and normalised, following scikit-learn (`_binary_search_perplexity`,
//! `_joint_probabilities` and `_joint_probabilities_nn`).

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Which pairs carry input affinity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Affinities {
    /// Every pair (scikit-learn `method="exact"`).
    Exact,
    /// Each point's `min(n − 1, ⌊3·perplexity + 1⌋)` nearest neighbours, as scikit-learn's default
    /// Barnes–Hut method, which the seed used (docs/study.md §7.8). Only P is sparse; the gradient
    /// stays exact.
    #[default]
    NearestNeighbours,
}

/// scikit-learn's binary-search constants: 100 steps, tolerance `1e-5` on the entropy (a C
/// `float`, hence the `f32` round trip), and `1e-8` for an all-zero row.
const SEARCH_STEPS: usize = 100;
const ENTROPY_TOLERANCE: f32 = 1e-5;
const EMPTY_ROW_SUM: f32 = 1e-8;

/// Conditional probabilities `p_{j|i}` calibrated so each row has the given perplexity, exactly
/// as scikit-learn's `_binary_search_perplexity`.
///
/// `sq_distances` is row-major `rows × cols`: either the full square matrix (`cols == rows`, the
/// diagonal is ignored and gets probability 0) or each row's distances to its `cols < rows`
/// neighbours. Distances are squared Euclidean, in `f32` like scikit-learn's. Each row's
/// precision β starts at 1 and is doubled/halved until bracketed, then bisected, until the row's
/// entropy (natural log) is within `1e-5` of `ln(perplexity)`.
///
/// # Panics
/// If `rows` is zero or does not divide the length.
pub fn conditional_probabilities(sq_distances: &[f32], rows: usize, perplexity: f64) -> Vec<f64> {
    assert!(rows > 0 && sq_distances.len().is_multiple_of(rows));
    let cols = sq_distances.len() / rows;
    let mut p = vec![0.0; sq_distances.len()];
    p.par_chunks_mut(cols.max(1))
        .zip(sq_distances.par_chunks(cols.max(1)))
        .enumerate()
        .for_each(|(i, (p_row, d_row))| {
            // In the square case the point itself is not a candidate.
            let skip = (cols == rows).then_some(i);
            calibrate_row(p_row, d_row, skip, perplexity);
        });
    p
}

fn calibrate_row(p: &mut [f64], d: &[f32], skip: Option<usize>, perplexity: f64) {
    let desired_entropy = perplexity.ln();
    let (mut beta, mut beta_min, mut beta_max) = (1.0f64, f64::NEG_INFINITY, f64::INFINITY);
    for _ in 0..SEARCH_STEPS {
        let mut sum_p = 0.0;
        for (j, (p, &d)) in p.iter_mut().zip(d).enumerate() {
            if Some(j) != skip {
                *p = (-f64::from(d) * beta).exp();
                sum_p += *p;
            }
        }
        if sum_p == 0.0 {
            sum_p = f64::from(EMPTY_ROW_SUM);
        }
        let mut sum_dp = 0.0;
        for (p, &d) in p.iter_mut().zip(d) {
            *p /= sum_p;
            sum_dp += f64::from(d) * *p;
        }
        let entropy_diff = sum_p.ln() + beta * sum_dp - desired_entropy;
        if entropy_diff.abs() <= f64::from(ENTROPY_TOLERANCE) {
            break;
        }
        if entropy_diff > 0.0 {
            beta_min = beta;
            beta = if beta_max == f64::INFINITY {
                beta * 2.0
            } else {
                (beta + beta_max) / 2.0
            };
        } else {
            beta_max = beta;
            beta = if beta_min == f64::NEG_INFINITY {
                beta / 2.0
            } else {
                (beta + beta_min) / 2.0
            };
        }
    }
}

/// Symmetric joint probabilities `p_ij` in compressed-row form, summing to 1 over all entries.
#[derive(Clone, Debug, PartialEq)]
pub struct JointProbabilities {
    /// `row_start[i]..row_start[i + 1]` indexes row i's entries.
    pub row_start: Vec<usize>,
    /// Column of each entry.
    pub cols: Vec<u32>,
    /// Value of each entry.
    pub values: Vec<f64>,
}

impl JointProbabilities {
    /// The entries of row `i` as `(column, p_ij)`.
    pub fn row(&self, i: usize) -> impl Iterator<Item = (usize, f64)> + '_ {
        let range = self.row_start[i]..self.row_start[i + 1];
        self.cols[range.clone()]
            .iter()
            .map(|&c| c as usize)
            .zip(self.values[range].iter().copied())
    }

    /// Number of points.
    pub fn rows(&self) -> usize {
        self.row_start.len() - 1
    }
}

/// Computes P for `n` points of dimension `dim` (row-major `points`).
///
/// Exact: `P = (C + Cᵀ) / Σ(C + Cᵀ)` over all pairs, each entry at least `f64::EPSILON`
/// (scikit-learn's `MACHINE_EPSILON` floor). Nearest neighbours: C is calibrated over each
/// point's k nearest neighbours only, then symmetrised and normalised the same way, unfloored.
pub fn joint_probabilities(
    points: &[f64],
    dim: usize,
    perplexity: f64,
    affinities: Affinities,
) -> JointProbabilities {
    let n = points.len() / dim;
    let sq = squared_distances(points, dim);
    let neighbours: Vec<Vec<u32>> = match affinities {
        Affinities::Exact => (0..n)
            .map(|i| (0..n as u32).filter(|&j| j as usize != i).collect())
            .collect(),
        Affinities::NearestNeighbours => {
            let k = (n - 1).min((3.0 * perplexity + 1.0) as usize);
            (0..n)
                .into_par_iter()
                .map(|i| nearest(&sq[i * n..(i + 1) * n], i, k))
                .collect()
        }
    };
    let k = neighbours.first().map_or(0, Vec::len);
    let candidate_sq: Vec<f32> = neighbours
        .iter()
        .enumerate()
        .flat_map(|(i, row)| row.iter().map(move |&j| i * n + j as usize))
        .map(|index| sq[index] as f32)
        .collect();
    let conditional = conditional_probabilities(&candidate_sq, n, perplexity);
    // C + Cᵀ: collect both orientations, then merge duplicates per row.
    let mut entries: Vec<(u32, u32, f64)> = Vec::with_capacity(2 * n * k);
    for (i, row) in neighbours.iter().enumerate() {
        for (slot, &j) in row.iter().enumerate() {
            let c = conditional[i * k + slot];
            entries.push((i as u32, j, c));
            entries.push((j, i as u32, c));
        }
    }
    entries.par_sort_unstable_by_key(|&(i, j, _)| (i, j));
    let floor = if affinities == Affinities::Exact {
        f64::EPSILON
    } else {
        0.0
    };
    compress(n, &entries, floor)
}

/// Merges sorted `(row, col, value)` triples into normalised CSR form.
fn compress(n: usize, entries: &[(u32, u32, f64)], floor: f64) -> JointProbabilities {
    let total: f64 = entries.iter().map(|e| e.2).sum::<f64>().max(f64::EPSILON);
    let mut row_start = vec![0; n + 1];
    let (mut cols, mut values) = (Vec::new(), Vec::<f64>::new());
    for (index, &(i, j, v)) in entries.iter().enumerate() {
        let same_as_previous = index > 0 && entries[index - 1].0 == i && entries[index - 1].1 == j;
        if same_as_previous {
            *values.last_mut().expect("a previous entry exists") += v;
        } else {
            cols.push(j);
            values.push(v);
            row_start[i as usize + 1] = cols.len();
        }
    }
    // Rows without entries start where the previous row ended.
    for i in 1..=n {
        row_start[i] = row_start[i].max(row_start[i - 1]);
    }
    for v in &mut values {
        *v = (*v / total).max(floor);
    }
    JointProbabilities {
        row_start,
        cols,
        values,
    }
}

/// The `k` nearest other points of point `i`, given its squared distances to all points.
fn nearest(row: &[f64], i: usize, k: usize) -> Vec<u32> {
    let mut order: Vec<u32> = (0..row.len() as u32).filter(|&j| j as usize != i).collect();
    let by_distance =
        |a: &u32, b: &u32| row[*a as usize].total_cmp(&row[*b as usize]).then(a.cmp(b));
    if k < order.len() {
        order.select_nth_unstable_by(k, by_distance);
        order.truncate(k);
    }
    order.sort_unstable_by(by_distance);
    order
}

/// All pairwise squared Euclidean distances, row-major `n × n`.
pub(crate) fn squared_distances(points: &[f64], dim: usize) -> Vec<f64> {
    let n = points.len() / dim;
    let mut sq = vec![0.0; n * n];
    sq.par_chunks_mut(n.max(1))
        .enumerate()
        .for_each(|(i, row)| {
            let a = &points[i * dim..(i + 1) * dim];
            for (j, out) in row.iter_mut().enumerate() {
                let b = &points[j * dim..(j + 1) * dim];
                *out = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
            }
        });
    sq
}
