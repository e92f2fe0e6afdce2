//! The PCA initialisation of t-SNE (scikit-learn `init="pca"`): the first two principal
//! components, rescaled so the first has standard deviation `1e-4`.
//!
//! The inputs are low-dimensional (10 logits), so the covariance matrix is diagonalised directly
//! with cyclic Jacobi rotations instead of a randomised SVD; the components are the same up to
//! sign, and signs follow scikit-learn's `svd_flip` rule (each component's largest-magnitude
//! loading is positive), which makes the initialisation deterministic.

/// Scale of the first initial coordinate (scikit-learn, issue #18018).
const INIT_STD: f64 = 1e-4;

/// Returns `n × 2` initial coordinates (row-major) for `n` points of dimension `dim`.
pub(crate) fn pca_init(points: &[f64], dim: usize) -> Vec<f64> {
    let n = points.len() / dim;
    let mean: Vec<f64> = (0..dim)
        .map(|c| points.iter().skip(c).step_by(dim).sum::<f64>() / n as f64)
        .collect();
    let centred: Vec<f64> = points
        .iter()
        .enumerate()
        .map(|(i, x)| x - mean[i % dim])
        .collect();
    let mut cov = vec![0.0; dim * dim];
    for row in centred.chunks_exact(dim) {
        for a in 0..dim {
            for b in 0..dim {
                cov[a * dim + b] += row[a] * row[b];
            }
        }
    }
    let (values, vectors) = jacobi_eigen(cov, dim);
    let mut order: Vec<usize> = (0..dim).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    let components: Vec<Vec<f64>> = order
        .iter()
        .take(2)
        .map(|&k| flip_sign((0..dim).map(|r| vectors[r * dim + k]).collect()))
        .collect();
    let mut projected = vec![0.0; n * 2];
    for (row, out) in centred.chunks_exact(dim).zip(projected.chunks_exact_mut(2)) {
        for (o, component) in out.iter_mut().zip(&components) {
            *o = row.iter().zip(component).map(|(x, v)| x * v).sum();
        }
    }
    // A second component is missing when dim == 1; its coordinates stay 0.
    let first: Vec<f64> = projected.iter().step_by(2).copied().collect();
    let std = population_std(&first);
    let scale = if std > 0.0 { INIT_STD / std } else { 1.0 };
    projected.iter_mut().for_each(|x| *x *= scale);
    projected
}

/// Makes the largest-magnitude entry positive.
fn flip_sign(mut v: Vec<f64>) -> Vec<f64> {
    let largest = v
        .iter()
        .copied()
        .fold(0.0f64, |m, x| if x.abs() > m.abs() { x } else { m });
    if largest < 0.0 {
        v.iter_mut().for_each(|x| *x = -*x);
    }
    v
}

fn population_std(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    (values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt()
}

/// Eigenvalues and eigenvectors (columns of a row-major matrix) of a symmetric matrix.
fn jacobi_eigen(mut a: Vec<f64>, n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0.0; n * n];
    (0..n).for_each(|i| v[i * n + i] = 1.0);
    let norm: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|p| (0..n).filter(move |&q| q != p).map(move |q| (p, q)))
            .map(|(p, q)| a[p * n + q].powi(2))
            .sum::<f64>()
            .sqrt();
        if off <= 1e-15 * norm.max(f64::MIN_POSITIVE) {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                rotate(&mut a, &mut v, n, p, q);
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

/// One Jacobi rotation zeroing `a[p][q]` (Golub & Van Loan, algorithm 8.4.1).
fn rotate(a: &mut [f64], v: &mut [f64], n: usize, p: usize, q: usize) {
    let apq = a[p * n + q];
    if apq == 0.0 {
        return;
    }
    let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
    let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
    let t = if theta == 0.0 { 1.0 } else { t };
    let c = 1.0 / (t * t + 1.0).sqrt();
    let s = t * c;
    for k in 0..n {
        let (akp, akq) = (a[k * n + p], a[k * n + q]);
        a[k * n + p] = c * akp - s * akq;
        a[k * n + q] = s * akp + c * akq;
    }
    for k in 0..n {
        let (apk, aqk) = (a[p * n + k], a[q * n + k]);
        a[p * n + k] = c * apk - s * aqk;
        a[q * n + k] = s * apk + c * aqk;
    }
    for k in 0..n {
        let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
        v[k * n + p] = c * vkp - s * vkq;
        v[k * n + q] = s * vkp + c * vkq;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_diagonalises_a_symmetric_matrix() {
        // Eigenvalues of [[2, 1], [1, 2]] are 1 and 3.
        let (mut values, _) = jacobi_eigen(vec![2.0, 1.0, 1.0, 2.0], 2);
        values.sort_by(f64::total_cmp);
        assert!((values[0] - 1.0).abs() < 1e-12 && (values[1] - 3.0).abs() < 1e-12);
    }

    #[test]
    fn init_follows_the_main_axis_with_the_sklearn_scale() {
        // Points on the line y = 2x (plus a small orthogonal wobble) in 3-D.
        let points: Vec<f64> = (0..20)
            .flat_map(|i| {
                let t = f64::from(i) - 9.5;
                let wobble = if i % 2 == 0 { 0.01 } else { -0.01 };
                [t, 2.0 * t, wobble]
            })
            .collect();
        let init = pca_init(&points, 3);
        let first: Vec<f64> = init.iter().step_by(2).copied().collect();
        assert!((population_std(&first) - INIT_STD).abs() < 1e-12);
        // Monotone along the line, increasing because the main loading (on y) is positive.
        assert!(first.windows(2).all(|w| w[1] > w[0]));
    }
}
