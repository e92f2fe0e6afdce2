//! Trustworthiness of an embedding (Venna & Kaski 2001), as scikit-learn's
//! `sklearn.manifold.trustworthiness`: how many of each point's k nearest neighbours in the
//! embedding are also near it in the input space.
//!
//! `T(k) = 1 − 2 / (n k (2n − 3k − 1)) · Σ_i Σ_{j ∈ N_k^emb(i)} max(0, r(i, j) − k)`, where
//! `r(i, j)` is the 1-based rank of j among i's neighbours in the input space. 1 means every
//! embedded neighbourhood is a true one.

use rayon::prelude::*;

use super::affinity::squared_distances;
use crate::metrics::MetricsError;

/// Trustworthiness of `embedded` (`n × embedded_dim`) with respect to `points` (`n × dim`).
///
/// # Errors
/// Mismatched point counts, or `k` not below `n / 2` (scikit-learn's requirement).
pub fn trustworthiness(
    points: &[f64],
    dim: usize,
    embedded: &[f64],
    embedded_dim: usize,
    k: usize,
) -> Result<f64, MetricsError> {
    let n = points.len() / dim.max(1);
    if embedded.len() / embedded_dim.max(1) != n {
        return Err(MetricsError::LengthMismatch {
            what: "input and embedded points",
            left: n,
            right: embedded.len() / embedded_dim.max(1),
        });
    }
    if k == 0 || 2 * k >= n {
        return Err(MetricsError::InvalidParameter(format!(
            "trustworthiness needs 0 < k < n / 2 (k = {k}, n = {n})"
        )));
    }
    let input = squared_distances(points, dim);
    let output = squared_distances(embedded, embedded_dim);
    let penalty: usize = (0..n)
        .into_par_iter()
        .map(|i| {
            let rank = neighbour_ranks(&input[i * n..(i + 1) * n], i);
            sorted_neighbours(&output[i * n..(i + 1) * n], i)
                .iter()
                .take(k)
                .map(|&j| rank[j].saturating_sub(k))
                .sum::<usize>()
        })
        .sum();
    let (n, k) = (n as f64, k as f64);
    Ok(1.0 - penalty as f64 * 2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0)))
}

/// Other points ordered by distance from point `i` (ties by index).
fn sorted_neighbours(row: &[f64], i: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..row.len()).filter(|&j| j != i).collect();
    order.sort_by(|&a, &b| row[a].total_cmp(&row[b]).then(a.cmp(&b)));
    order
}

/// `rank[j]` = 1-based position of j among i's input-space neighbours (0 for i itself).
fn neighbour_ranks(row: &[f64], i: usize) -> Vec<usize> {
    let mut rank = vec![0; row.len()];
    for (position, j) in sorted_neighbours(row, i).into_iter().enumerate() {
        rank[j] = position + 1;
    }
    rank
}
