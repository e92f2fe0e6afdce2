// tarun's GPU kernels beside cuDNN's convolutions: batch norm fused with its activation (forward,
// statistics and backward), ResNet's relu(a + b), a convolution's bias and AdamW, on contiguous
// f32 NCHW tensors. Compiled once per process by NVRTC (see mod.rs); each mirrors the CPU kernel
// of the same name in ../, which the tests compare it with.
//
// Per-channel sums run one block per channel, each thread summing a strided share of the
// channel's B*HW elements in double and the block adding the threads' sums in a fixed tree: the
// result depends only on the data and the block size, never on scheduling.

#define ACT_NONE 0
#define ACT_RELU 1
#define ACT_RELU6 2

// Threads per block of the per-channel reductions (a power of two; mod.rs launches with it).
#define REDUCE_THREADS 512

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
__device__ __forceinline__ long long channel_index(long long i, int c, int C, int HW) {
    long long n = i / HW;
    long long p = i - n * HW;
    return (n * C + c) * HW + p;
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

// Per-channel mean and biased variance over (N, H, W): out[c] = mean, out[C + c] = variance.
// Grid: C blocks.
extern "C" __global__ void tarun_bn_stats(const float* x, float* out, int B, int C, int HW) {
    __shared__ double s1[REDUCE_THREADS];
    __shared__ double s2[REDUCE_THREADS];
    int c = blockIdx.x;
    long long n = (long long)B * HW;
    double sum = 0.0, sq = 0.0;
    for (long long i = threadIdx.x; i < n; i += REDUCE_THREADS) {
        double v = x[channel_index(i, c, C, HW)];
        sum += v;
        sq += v * v;
    }
    s1[threadIdx.x] = sum;
    s2[threadIdx.x] = sq;
    block_sum2(s1, s2);
    if (threadIdx.x == 0) {
        double count = n > 0 ? (double)n : 1.0;
        double mean = s1[0] / count;
        double var = s2[0] / count - mean * mean;
        out[c] = (float)mean;
        out[C + c] = (float)(var > 0.0 ? var : 0.0);
    }
}

// Channel c's scale gamma * istd and shift beta - mean * scale, with istd = 1 / sqrt(var + eps)
// in double, as the CPU kernel's `Affine` computes them. params = [gamma; beta], stats =
// [mean; var], both [2, C].
__device__ __forceinline__ void bn_affine(const float* params, const float* stats, float eps,
                                          int C, int c, float* scale, float* shift,
                                          float* istd) {
    float s = (float)(1.0 / sqrt((double)stats[C + c] + (double)eps));
    float sc = params[c] * s;
    *istd = s;
    *scale = sc;
    *shift = params[C + c] - stats[c] * sc;
}

// y = act(x * scale + shift) per channel.
extern "C" __global__ void tarun_bn_apply(const float* x, float* y, const float* params,
                                          const float* stats, float eps, int act, int C, int HW,
                                          long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        int c = (int)((i / HW) % C);
        float scale, shift, istd;
        bn_affine(params, stats, eps, C, c, &scale, &shift, &istd);
        y[i] = act_apply(act, x[i] * scale + shift);
    }
}

// Per channel, with g = dL/dy where the activation passes: out[c] = dgamma = sum g (x - mean)
// istd, out[C + c] = dbeta = sum g. Grid: C blocks.
extern "C" __global__ void tarun_bn_grad_sums(const float* x, const float* dy, const float* y,
                                              const float* stats, float* out, float eps,
                                              int act, int B, int C, int HW) {
    __shared__ double s1[REDUCE_THREADS];
    __shared__ double s2[REDUCE_THREADS];
    int c = blockIdx.x;
    long long n = (long long)B * HW;
    float mean = stats[c];
    float istd = (float)(1.0 / sqrt((double)stats[C + c] + (double)eps));
    double sg = 0.0, sgx = 0.0;
    for (long long i = threadIdx.x; i < n; i += REDUCE_THREADS) {
        long long k = channel_index(i, c, C, HW);
        float g = act_passes(act, y[k]) ? dy[k] : 0.0f;
        sg += g;
        sgx += (double)(g * (x[k] - mean));
    }
    s1[threadIdx.x] = sgx;
    s2[threadIdx.x] = sg;
    block_sum2(s1, s2);
    if (threadIdx.x == 0) {
        out[c] = (float)(s1[0] * istd);
        out[C + c] = (float)s2[0];
    }
}

// dx from sums = [dgamma; dbeta] (tarun_bn_grad_sums): with batch statistics
// dx = scale (g - dbeta / N - (x - mean) istd dgamma / N), N = B*HW; with fixed ones dx = scale g.
extern "C" __global__ void tarun_bn_input_grad(const float* x, const float* dy, const float* y,
                                               const float* params, const float* stats,
                                               const float* sums, float* dx, float eps, int act,
                                               int batch_stats, int C, int HW, long long n,
                                               float count) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        int c = (int)((i / HW) % C);
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
extern "C" __global__ void tarun_add_relu(const float* a, const float* b, float* y, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        y[i] = fmaxf(a[i] + b[i], 0.0f);
    }
}

// out = g where y > 0, else 0 (relu(a + b)'s gradient, read off its output).
extern "C" __global__ void tarun_relu_mask(const float* y, const float* g, float* out,
                                           long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        out[i] = y[i] > 0.0f ? g[i] : 0.0f;
    }
}

// y = x + bias[channel].
extern "C" __global__ void tarun_bias_add(const float* x, const float* bias, float* y, int C,
                                          int HW, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        y[i] = x[i] + bias[(i / HW) % C];
    }
}

// out[c] = sum of channel c over (N, H, W): a bias's gradient. Grid: C blocks.
extern "C" __global__ void tarun_channel_sums(const float* g, float* out, int B, int C, int HW) {
    __shared__ double s1[REDUCE_THREADS];
    __shared__ double s2[REDUCE_THREADS];
    int c = blockIdx.x;
    long long n = (long long)B * HW;
    double sum = 0.0;
    for (long long i = threadIdx.x; i < n; i += REDUCE_THREADS) {
        sum += g[channel_index(i, c, C, HW)];
    }
    s1[threadIdx.x] = sum;
    s2[threadIdx.x] = 0.0;
    block_sum2(s1, s2);
    if (threadIdx.x == 0) out[c] = (float)s1[0];
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
                                             long long n) {
    int Ho = H / 2, Wo = W / 2;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        long long plane = i / (Ho * Wo);
        int r = (int)(i - plane * Ho * Wo);
        int oi = r / Wo, oj = r - (r / Wo) * Wo;
        const float* p = x + plane * H * W + (2 * oi) * W + 2 * oj;
        y[i] = fmaxf(fmaxf(p[0], p[1]), fmaxf(p[W], p[W + 1]));
    }
}

// Its gradient: every input equal to its window's maximum gets the window's whole gradient
// (as the two max-reductions it replaces do), the others 0. One thread per input element.
extern "C" __global__ void tarun_max_pool2x2_grad(const float* x, const float* y, const float* g,
                                                  float* dx, int H, int W, long long n) {
    int Ho = H / 2, Wo = W / 2;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        long long plane = i / (H * W);
        int r = (int)(i - plane * H * W);
        int hi = r / W, wj = r - (r / W) * W;
        long long o = plane * Ho * Wo + (hi / 2) * Wo + wj / 2;
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
extern "C" __global__ void tarun_fold_columns(const float* w, float* y, int group, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        const float* run = w + i * group;
        float s = 0.0f;
        for (int k = 0; k < group; k++) s += run[k];
        y[i] = s;
    }
}

// The fold's gradient: each column's gradient repeated over its run. One thread per output.
extern "C" __global__ void tarun_spread_columns(const float* g, float* dw, int group,
                                                long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        dw[i] = g[i / group];
    }
}
