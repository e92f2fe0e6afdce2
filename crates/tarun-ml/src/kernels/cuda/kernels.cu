// tarun's GPU kernels beside cuDNN's convolutions: batch norm fused with its activation (forward,
// statistics and backward), ResNet's relu(a + b), a convolution's bias and AdamW, on contiguous
// f32 NCHW tensors. Compiled once per process by NVRTC (see mod.rs); each mirrors the CPU kernel
// of the same name in ../, which the tests compare it with.
//
// Per-channel sums (batch norm's statistics and gradient sums, a bias's gradient) split each
// channel's B*HW elements into a fixed number of contiguous segments, one block each (a grid of
// C x S blocks, so that narrow layers with few channels still fill the GPU); each thread sums
// a strided share of its segment in double, the block adds its threads' sums in a fixed tree,
// and the segments' sums are added in order. S depends only on the shape (mod.rs), so the
// result depends only on the data, never on scheduling or on the GPU.
//
// Element indices are 32-bit: the host refuses tensors of 2^31 elements or more.

#define ACT_NONE 0
#define ACT_RELU 1
#define ACT_RELU6 2

// Threads per block of the per-channel reductions (a power of two; mod.rs launches with it).
#define REDUCE_THREADS 256

__device__ __forceinline__ float act_apply(int act, float v) {
    if (act == ACT_RELU) return fmaxf(v, 0.0f);
    if (act == ACT_RELU6) return fminf(fmaxf(v, 0.0f), 6.0f);
    return v;
}

// Whether the gradient passes at output y (PyTorch's convention: not at the kinks).
__device__ __forceinline__ bool act_passes(int act, float y) {
    if (act == ACT_RELU) return y > 0.0f;
    if (act == ACT_RELU6) return y > 0.0f && y < 6.0f;
    return true;
}

// Index of element i of channel c's B*HW elements in an NCHW tensor.
__device__ __forceinline__ unsigned channel_index(unsigned i, unsigned c, unsigned C,
                                                  unsigned HW) {
    unsigned n = i / HW;
    return (n * C + c) * HW + (i - n * HW);
}

// Sums a and b over the block (REDUCE_THREADS threads); the totals land in a[0] and b[0].
__device__ void block_sum2(double* a, double* b) {
    for (int s = REDUCE_THREADS / 2; s > 0; s >>= 1) {
        __syncthreads();
        if (threadIdx.x < s) {
            a[threadIdx.x] += a[threadIdx.x + s];
            b[threadIdx.x] += b[threadIdx.x + s];
        }
    }
    __syncthreads();
}

// What a per-channel reduction sums, and what it writes from the two totals.
#define SUMS_STATS 0  // x and x^2 -> out[c] = mean, out[C + c] = biased variance
#define SUMS_BN_GRAD 1  // g (x - mean) and g, g = dy where the activation passes
                        // -> out[c] = dgamma = sum g (x - mean) istd, out[C + c] = dbeta
#define SUMS_PLAIN 2  // x -> out[c] = its sum (a bias's gradient)

// istd = 1 / sqrt(var + eps) in double, rounded once, as the CPU kernel's `Affine`.
__device__ __forceinline__ float inv_std(float var, float eps) {
    return (float)(1.0 / sqrt((double)var + (double)eps));
}

// Writes channel c's results from its totals s1, s2 over `count` elements.
__device__ void channel_finish(int kind, double s1, double s2, double count, const float* stats,
                               float eps, int C, int c, float* out) {
    if (kind == SUMS_STATS) {
        double n = count > 0.0 ? count : 1.0;
        double mean = s1 / n;
        double var = s2 / n - mean * mean;
        out[c] = (float)mean;
        out[C + c] = (float)(var > 0.0 ? var : 0.0);
    } else if (kind == SUMS_BN_GRAD) {
        out[c] = (float)(s1 * inv_std(stats[C + c], eps));
        out[C + c] = (float)s2;
    } else {
        out[c] = (float)s1;
    }
}

// Block (c, s) sums segment s (`seg` elements) of channel c. With one segment it writes the
// channel's results to `out`; otherwise its two totals to part[(c * S + s) * 2 + {0, 1}], for
// tarun_channel_finish. `dy`, `y` and `stats` are read only for SUMS_BN_GRAD.
extern "C" __global__ void tarun_channel_partials(int kind, const float* x, const float* dy,
                                                  const float* y, const float* stats, float eps,
                                                  int act, int B, int C, int HW, int seg,
                                                  double* part, float* out) {
    __shared__ double s1[REDUCE_THREADS];
    __shared__ double s2[REDUCE_THREADS];
    unsigned c = blockIdx.x, S = gridDim.y, s = blockIdx.y;
    unsigned total = (unsigned)B * (unsigned)HW;
    unsigned lo = s * (unsigned)seg;
    unsigned hi = min(lo + (unsigned)seg, total);
    float mean = kind == SUMS_BN_GRAD ? stats[c] : 0.0f;
    double a = 0.0, b = 0.0;
    for (unsigned i = lo + threadIdx.x; i < hi; i += REDUCE_THREADS) {
        unsigned k = channel_index(i, c, C, HW);
        if (kind == SUMS_STATS) {
            double v = x[k];
            a += v;
            b += v * v;
        } else if (kind == SUMS_BN_GRAD) {
            float g = act_passes(act, y[k]) ? dy[k] : 0.0f;
            a += (double)(g * (x[k] - mean));
            b += g;
        } else {
            a += x[k];
        }
    }
    s1[threadIdx.x] = a;
    s2[threadIdx.x] = b;
    block_sum2(s1, s2);
    if (threadIdx.x != 0) return;
    if (S == 1) {
        channel_finish(kind, s1[0], s2[0], (double)total, stats, eps, C, c, out);
    } else {
        part[(c * S + s) * 2] = s1[0];
        part[(c * S + s) * 2 + 1] = s2[0];
    }
}

// Adds each channel's S segment totals in order and writes its results. One thread per channel.
extern "C" __global__ void tarun_channel_finish(int kind, const double* part, int S,
                                                const float* stats, float eps, int C,
                                                double count, float* out) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double a = 0.0, b = 0.0;
    for (int s = 0; s < S; s++) {
        a += part[((long long)c * S + s) * 2];
        b += part[((long long)c * S + s) * 2 + 1];
    }
    channel_finish(kind, a, b, count, stats, eps, C, c, out);
}

// Channel c's scale gamma * istd and shift beta - mean * scale, with istd = 1 / sqrt(var + eps)
// in double, as the CPU kernel's `Affine` computes them. params = [gamma; beta], stats =
// [mean; var], both [2, C].
__device__ __forceinline__ void bn_affine(const float* params, const float* stats, float eps,
                                          int C, int c, float* scale, float* shift,
                                          float* istd) {
    float s = inv_std(stats[C + c], eps);
    float sc = params[c] * s;
    *istd = s;
    *scale = sc;
    *shift = params[C + c] - stats[c] * sc;
}

// y = act(x * scale + shift) per channel.
extern "C" __global__ void tarun_bn_apply(const float* x, float* y, const float* params,
                                          const float* stats, float eps, int act, int C, int HW,
                                          int n) {
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < (unsigned)n;
         i += gridDim.x * blockDim.x) {
        unsigned c = (i / (unsigned)HW) % (unsigned)C;
        float scale, shift, istd;
        bn_affine(params, stats, eps, C, c, &scale, &shift, &istd);
        y[i] = act_apply(act, x[i] * scale + shift);
    }
}

// dx from sums = [dgamma; dbeta] (SUMS_BN_GRAD): with batch statistics
// dx = scale (g - dbeta / N - (x - mean) istd dgamma / N), N = B*HW; with fixed ones dx = scale g.
extern "C" __global__ void tarun_bn_input_grad(const float* x, const float* dy, const float* y,
                                               const float* params, const float* stats,
                                               const float* sums, float* dx, float eps, int act,
                                               int batch_stats, int C, int HW, int n,
                                               float count) {
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < (unsigned)n;
         i += gridDim.x * blockDim.x) {
        unsigned c = (i / (unsigned)HW) % (unsigned)C;
        float scale, shift, istd;
        bn_affine(params, stats, eps, C, c, &scale, &shift, &istd);
        float g = act_passes(act, y[i]) ? dy[i] : 0.0f;
        if (batch_stats) {
            float dgamma_n = sums[c] / count;
            float dbeta_n = sums[C + c] / count;
            dx[i] = scale * (g - dbeta_n - (x[i] - stats[c]) * istd * dgamma_n);
        } else {
            dx[i] = scale * g;
        }
    }
}

// y = max(a + b, 0).
extern "C" __global__ void tarun_add_relu(const float* a, const float* b, float* y, int n) {
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < (unsigned)n;
         i += gridDim.x * blockDim.x) {
        y[i] = fmaxf(a[i] + b[i], 0.0f);
    }
}

// out = g where y > 0, else 0 (relu(a + b)'s gradient, read off its output).
extern "C" __global__ void tarun_relu_mask(const float* y, const float* g, float* out,
                                           int n) {
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < (unsigned)n;
         i += gridDim.x * blockDim.x) {
        out[i] = y[i] > 0.0f ? g[i] : 0.0f;
    }
}

// y = x + bias[channel].
extern "C" __global__ void tarun_bias_add(const float* x, const float* bias, float* y, int C,
                                          int HW, int n) {
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < (unsigned)n;
         i += gridDim.x * blockDim.x) {
        y[i] = x[i] + bias[(i / (unsigned)HW) % (unsigned)C];
    }
}

// One AdamW step of one tensor in place, in the CPU kernel's (and torch.optim.AdamW's) order of
// f32 operations; `decay` < 0 means no weight decay.
extern "C" __global__ void tarun_adamw(float* theta, const float* grad, float* m, float* v,
                                       long long n, float decay, float one_minus_beta1,
                                       float beta2, float one_minus_beta2, float inv_sqrt_bc2,
                                       float eps, float step_size) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        float g = grad[i];
        float t = decay >= 0.0f ? __fmul_rn(theta[i], decay) : theta[i];
        float mi = m[i];
        mi = __fadd_rn(mi, __fmul_rn(__fsub_rn(g, mi), one_minus_beta1));
        float vi = __fadd_rn(__fmul_rn(v[i], beta2), __fmul_rn(__fmul_rn(g, g), one_minus_beta2));
        float denom = __fadd_rn(__fmul_rn(__fsqrt_rn(vi), inv_sqrt_bc2), eps);
        m[i] = mi;
        v[i] = vi;
        theta[i] = __fsub_rn(t, __fmul_rn(__fdiv_rn(mi, denom), step_size));
    }
}

// 2x2 max-pool with stride 2 over planes of H x W (both even): y = each window's maximum.
extern "C" __global__ void tarun_max_pool2x2(const float* x, float* y, int H, int W,
                                             int n) {
    int Ho = H / 2, Wo = W / 2;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < (unsigned)n;
         i += gridDim.x * blockDim.x) {
        unsigned plane = i / (unsigned)(Ho * Wo);
        int r = (int)(i - plane * Ho * Wo);
        int oi = r / Wo, oj = r - (r / Wo) * Wo;
        const float* p = x + plane * H * W + (2 * oi) * W + 2 * oj;
        y[i] = fmaxf(fmaxf(p[0], p[1]), fmaxf(p[W], p[W + 1]));
    }
}

// Its gradient: every input equal to its window's maximum gets the window's whole gradient
// (as the two max-reductions it replaces do), the others 0. One thread per input element.
extern "C" __global__ void tarun_max_pool2x2_grad(const float* x, const float* y, const float* g,
                                                  float* dx, int H, int W, int n) {
    int Ho = H / 2, Wo = W / 2;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < (unsigned)n;
         i += gridDim.x * blockDim.x) {
        unsigned plane = i / (unsigned)(H * W);
        int r = (int)(i - plane * H * W);
        int hi = r / W, wj = r - (r / W) * W;
        unsigned o = plane * Ho * Wo + (hi / 2) * Wo + wj / 2;
        dx[i] = x[i] == y[o] ? g[o] : 0.0f;
    }
}

// Batch norm's running statistics after a training batch, in place, in the CPU path's f32
// operations: r = r * (1 - momentum) + batch * momentum, with the variance unbiased first
// (var * unbias, unbias = N / (N - 1)); the batch counter goes up by one. stats = [mean; var].
extern "C" __global__ void tarun_bn_running(float* running_mean, float* running_var,
                                            long long* batches, const float* stats,
                                            float keep, float momentum, float unbias, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    running_mean[c] = __fadd_rn(__fmul_rn(running_mean[c], keep), __fmul_rn(stats[c], momentum));
    float unbiased = __fmul_rn(stats[C + c], unbias);
    running_var[c] = __fadd_rn(__fmul_rn(running_var[c], keep), __fmul_rn(unbiased, momentum));
    if (c == 0) batches[0] += 1;
}

// w [rows, cols * group] summed over each run of `group` consecutive columns: y [rows, cols]
// (VGG-11-BN's first classifier weight folded over the 49 copies of a 1x1 map).
extern "C" __global__ void tarun_fold_columns(const float* w, float* y, int group, int n) {
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < (unsigned)n;
         i += gridDim.x * blockDim.x) {
        const float* run = w + i * group;
        float s = 0.0f;
        for (int k = 0; k < group; k++) s += run[k];
        y[i] = s;
    }
}

// The fold's gradient: each column's gradient repeated over its run. One thread per output.
extern "C" __global__ void tarun_spread_columns(const float* g, float* dw, int group,
                                                int n) {
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < (unsigned)n;
         i += gridDim.x * blockDim.x) {
        dw[i] = g[i / (unsigned)group];
    }
}

// An inverted-dropout mask: element i is 0 when the top 24 bits of splitmix64's i-th output
// from `seed` fall below `limit`, else `keep` (the CPU's dropout.rs draws the same numbers).
extern "C" __global__ void tarun_dropout_mask(float* mask, unsigned long long seed,
                                              unsigned limit, float keep, int n) {
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < (unsigned)n;
         i += gridDim.x * blockDim.x) {
        unsigned long long z = seed + ((unsigned long long)i + 1ull) * 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z = z ^ (z >> 31);
        mask[i] = (unsigned)(z >> 40) < limit ? 0.0f : keep;
    }
}
