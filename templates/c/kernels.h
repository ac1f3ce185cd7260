{= header =}
/*
 * The kernels {= name =}.c calls, and only those. Included once, by {= name =}.c only: they are
 * static so that two generated libraries link side by side and the compiler can specialise each
 * call for its fixed shapes. Every activation is HWC: element (y, x, c) of an h x w x c tensor is
 * at (y * w + x) * c + c. Elementwise kernels may run in place (output == an input).
 */
#ifndef {= upper =}_KERNELS_H
#define {= upper =}_KERNELS_H

#include <math.h>
#include <stddef.h>

/* The largest float: clamp bounds of a kernel without an activation. */
#define {= upper =}_UNBOUNDED 3.4028235e38f

/* a * b + c. Where the target has a fused multiply-add as fast as a multiply (C99's FP_FAST_FMAF,
 * or GCC's and Clang's __FP_FAST_FMAF where the C library omits it, as newlib does: x86 with FMA,
 * Cortex-M4F/M7, AArch64), fmaf is one instruction and one rounding; strict ISO C (-std=c99)
 * never contracts a * b + c by itself, which would halve the arithmetic rate. */
#if defined(FP_FAST_FMAF) || defined(__FP_FAST_FMAF)
#define MUL_ADD(a, b, c) fmaf((a), (b), (c))
#else
#define MUL_ADD(a, b, c) ((a) * (b) + (c))
#endif
{% if k.window %}
/* A sliding window: input row of output row oy and tap ky is oy * stride_h + ky * dilation_h - pad_top. */
typedef struct {
    size_t kernel_h, kernel_w;
    size_t stride_h, stride_w;
    size_t dilation_h, dilation_w;
    size_t pad_top, pad_left;
} kernel_window;

/* Input coordinate read by output coordinate o at tap k, or `size` when it falls in the padding. */
static size_t window_source(size_t o, size_t k, size_t stride, size_t dilation, size_t pad_before, size_t size)
{
    const size_t pos = o * stride + k * dilation;
    return (pos < pad_before || pos - pad_before >= size) ? size : pos - pad_before;
}
{% endif %}
{%- if k.clamp_value %}
static float clamp_value(float v, float lo, float hi)
{
    v = v < lo ? lo : v;
    return v > hi ? hi : v;
}
{% endif %}
{%- if k.conv_pointwise %}
/* Pixels a 1x1 convolution tile computes at once (its accumulators are POINTWISE_ROWS x 16
 * floats: 4 x 16 fills half of AVX-512's or a quarter of AVX2's registers). Override for small
 * cores, e.g. -D{= upper =}_POINTWISE_ROWS=1 on a Cortex-M. */
#ifndef {= upper =}_POINTWISE_ROWS
#define {= upper =}_POINTWISE_ROWS 4
#endif
#define POINTWISE_ROWS {= upper =}_POINTWISE_ROWS
#define POINTWISE_BLOCK 16

/* `rows` pixels x 16 outputs of a 1x1 convolution: acc[r][o] += x[r][i] * w[i][o] over i, the
 * tile's accumulators kept in registers. Each step reads the tile's inputs first, then runs one
 * output at a time across them, a loop shape compilers vectorise over the 16 outputs. */
static void pointwise_tile(const float *restrict x, size_t rows, size_t in_c,
                           const float *restrict w, const float *restrict bias,
                           float acc[POINTWISE_ROWS][POINTWISE_BLOCK])
{
    size_t r, i, o;
    for (r = 0; r < POINTWISE_ROWS; ++r) {
        for (o = 0; o < POINTWISE_BLOCK; ++o) {
            acc[r][o] = bias[o];
        }
    }
    for (i = 0; i < in_c; ++i) {
        const float *restrict wi = w + i * POINTWISE_BLOCK;
        float xi[POINTWISE_ROWS];
        for (r = 0; r < POINTWISE_ROWS; ++r) {
            xi[r] = x[(r < rows ? r : 0) * in_c + i];
        }
        for (o = 0; o < POINTWISE_BLOCK; ++o) {
            const float wo = wi[o];
            for (r = 0; r < POINTWISE_ROWS; ++r) {
                acc[r][o] = MUL_ADD(xi[r], wo, acc[r][o]);
            }
        }
    }
}

/* 1x1 convolution: out[p][o] = clamp(bias[o] + sum_i in[p][i] * W[i][o] (+ out[p][o] when
 * residual)), W[i][o] at weights[o / 16][i][o % 16] (zero-padded to whole blocks of 16). */
static void conv_pointwise(const float *restrict in, size_t pixels, size_t in_c,
                           float *restrict out, size_t out_c,
                           const float *restrict weights, const float *restrict bias, int residual,
                           float lo, float hi)
{
    size_t p, block, r, o;
    float acc[POINTWISE_ROWS][POINTWISE_BLOCK];
    for (p = 0; p < pixels; p += POINTWISE_ROWS) {
        const size_t rows = pixels - p < POINTWISE_ROWS ? pixels - p : POINTWISE_ROWS;
        for (block = 0; block * POINTWISE_BLOCK < out_c; ++block) {
            const size_t first = block * POINTWISE_BLOCK;
            const size_t width = out_c - first < POINTWISE_BLOCK ? out_c - first : POINTWISE_BLOCK;
            pointwise_tile(in + p * in_c, rows, in_c, weights + block * in_c * POINTWISE_BLOCK,
                           bias + first, acc);
            for (r = 0; r < rows; ++r) {
                float *y = out + (p + r) * out_c + first;
                for (o = 0; o < width; ++o) {
                    y[o] = clamp_value(acc[r][o] + (residual ? y[o] : 0.0f), lo, hi);
                }
            }
        }
    }
}
{% endif %}
{%- if k.conv_depthwise %}
/* Depthwise convolution: out[oy][ox][c] = clamp(bias[c] + sum_{ky,kx} in[iy][ix][c] * weights[ky][kx][c]).
 * A 3x3 window wholly inside the input (every pixel but the border) takes a loop over channels
 * with its nine taps unrolled; the border and other windows accumulate tap by tap. */
static void conv_depthwise(const float *restrict in, size_t in_h, size_t in_w, size_t channels,
                           float *restrict out, size_t out_h, size_t out_w, const kernel_window *win,
                           const float *restrict weights, const float *restrict bias, float lo, float hi)
{
    const int fast_window = win->kernel_h == 3 && win->kernel_w == 3 && win->dilation_h == 1 && win->dilation_w == 1;
    const size_t row = in_w * channels;
    size_t oy, ox, ky, kx, c;
    for (oy = 0; oy < out_h; ++oy) {
        const size_t top = oy * win->stride_h;
        const int rows_inside = top >= win->pad_top && top - win->pad_top + 3 <= in_h;
        for (ox = 0; ox < out_w; ++ox) {
            const size_t left = ox * win->stride_w;
            float *restrict y = out + (oy * out_w + ox) * channels;
            if (fast_window && rows_inside && left >= win->pad_left && left - win->pad_left + 3 <= in_w) {
                const float *restrict x = in + (top - win->pad_top) * row + (left - win->pad_left) * channels;
                const float *restrict w = weights;
                for (c = 0; c < channels; ++c) {
                    /* Three rows summed apart, then together: shorter dependency chains. */
                    float top_row = MUL_ADD(x[c], w[c], bias[c]);
                    float mid_row = x[row + c] * w[3 * channels + c];
                    float low_row = x[2 * row + c] * w[6 * channels + c];
                    top_row = MUL_ADD(x[channels + c], w[channels + c], top_row);
                    mid_row = MUL_ADD(x[row + channels + c], w[4 * channels + c], mid_row);
                    low_row = MUL_ADD(x[2 * row + channels + c], w[7 * channels + c], low_row);
                    top_row = MUL_ADD(x[2 * channels + c], w[2 * channels + c], top_row);
                    mid_row = MUL_ADD(x[row + 2 * channels + c], w[5 * channels + c], mid_row);
                    low_row = MUL_ADD(x[2 * row + 2 * channels + c], w[8 * channels + c], low_row);
                    y[c] = clamp_value(top_row + mid_row + low_row, lo, hi);
                }
                continue;
            }
            for (c = 0; c < channels; ++c) {
                y[c] = bias[c];
            }
            for (ky = 0; ky < win->kernel_h; ++ky) {
                const size_t iy = window_source(oy, ky, win->stride_h, win->dilation_h, win->pad_top, in_h);
                if (iy == in_h) {
                    continue;
                }
                for (kx = 0; kx < win->kernel_w; ++kx) {
                    const size_t ix = window_source(ox, kx, win->stride_w, win->dilation_w, win->pad_left, in_w);
                    const float *x;
                    const float *w;
                    if (ix == in_w) {
                        continue;
                    }
                    x = in + (iy * in_w + ix) * channels;
                    w = weights + (ky * win->kernel_w + kx) * channels;
                    for (c = 0; c < channels; ++c) {
                        y[c] = MUL_ADD(x[c], w[c], y[c]);
                    }
                }
            }
            for (c = 0; c < channels; ++c) {
                y[c] = clamp_value(y[c], lo, hi);
            }
        }
    }
}
{% endif %}
{%- if k.conv_general %}
/* Grouped convolution: weights[g][ky][kx][i][o], i < in_c / groups, o < out_c / groups. */
static void conv_general(const float *restrict in, size_t in_h, size_t in_w, size_t in_c,
                         float *restrict out, size_t out_h, size_t out_w, size_t out_c,
                         const kernel_window *win, size_t groups,
                         const float *restrict weights, const float *restrict bias, float lo, float hi)
{
    const size_t ipg = in_c / groups;
    const size_t opg = out_c / groups;
    size_t oy, ox, g, ky, kx, i, o;
    for (oy = 0; oy < out_h; ++oy) {
        for (ox = 0; ox < out_w; ++ox) {
            float *y = out + (oy * out_w + ox) * out_c;
            for (o = 0; o < out_c; ++o) {
                y[o] = bias[o];
            }
            for (g = 0; g < groups; ++g) {
                float *yg = y + g * opg;
                for (ky = 0; ky < win->kernel_h; ++ky) {
                    const size_t iy = window_source(oy, ky, win->stride_h, win->dilation_h, win->pad_top, in_h);
                    if (iy == in_h) {
                        continue;
                    }
                    for (kx = 0; kx < win->kernel_w; ++kx) {
                        const size_t ix = window_source(ox, kx, win->stride_w, win->dilation_w, win->pad_left, in_w);
                        const float *x;
                        const float *w;
                        if (ix == in_w) {
                            continue;
                        }
                        x = in + (iy * in_w + ix) * in_c + g * ipg;
                        w = weights + ((g * win->kernel_h + ky) * win->kernel_w + kx) * ipg * opg;
                        for (i = 0; i < ipg; ++i) {
                            const float v = x[i];
                            const float *wi = w + i * opg;
                            for (o = 0; o < opg; ++o) {
                                yg[o] = MUL_ADD(v, wi[o], yg[o]);
                            }
                        }
                    }
                }
            }
            for (o = 0; o < out_c; ++o) {
                y[o] = clamp_value(y[o], lo, hi);
            }
        }
    }
}
{% endif %}
{%- if k.add %}
/* out = clamp(a + b); may run in place. */
static void add(const float *a, const float *b, float *out, size_t n, float lo, float hi)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        out[i] = clamp_value(a[i] + b[i], lo, hi);
    }
}
{% endif %}
{%- if k.clamp %}
/* out = clamp(in); may run in place. */
static void clamp(const float *in, float *out, size_t n, float lo, float hi)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        out[i] = clamp_value(in[i], lo, hi);
    }
}
{% endif %}
{%- if k.channel_affine %}
/* out[p][c] = in[p][c] * scale[c] + bias[c]; may run in place. */
static void channel_affine(const float *in, float *out, size_t pixels, size_t channels,
                           const float *scale, const float *bias)
{
    size_t p, c;
    for (p = 0; p < pixels; ++p) {
        for (c = 0; c < channels; ++c) {
            out[p * channels + c] = in[p * channels + c] * scale[c] + bias[c];
        }
    }
}
{% endif %}
{%- if k.avg_pool %}
/* Average over each window: sums in (ky, kx) order, then divides by kh * kw when
 * count_include_pad, else by the number of taps inside the input. */
static void avg_pool(const float *restrict in, size_t in_h, size_t in_w, size_t channels,
                     float *restrict out, size_t out_h, size_t out_w, const kernel_window *win,
                     int count_include_pad)
{
    size_t oy, ox, ky, kx, c;
    for (oy = 0; oy < out_h; ++oy) {
        for (ox = 0; ox < out_w; ++ox) {
            float *y = out + (oy * out_w + ox) * channels;
            size_t count = 0;
            float divisor;
            for (c = 0; c < channels; ++c) {
                y[c] = 0.0f;
            }
            for (ky = 0; ky < win->kernel_h; ++ky) {
                const size_t iy = window_source(oy, ky, win->stride_h, win->dilation_h, win->pad_top, in_h);
                if (iy == in_h) {
                    continue;
                }
                for (kx = 0; kx < win->kernel_w; ++kx) {
                    const size_t ix = window_source(ox, kx, win->stride_w, win->dilation_w, win->pad_left, in_w);
                    const float *x;
                    if (ix == in_w) {
                        continue;
                    }
                    x = in + (iy * in_w + ix) * channels;
                    for (c = 0; c < channels; ++c) {
                        y[c] += x[c];
                    }
                    ++count;
                }
            }
            divisor = (float)(count_include_pad ? win->kernel_h * win->kernel_w : (count > 0 ? count : 1));
            for (c = 0; c < channels; ++c) {
                y[c] = y[c] / divisor;
            }
        }
    }
}
{% endif %}
{%- if k.max_pool %}
/* Maximum over the taps inside the input. */
static void max_pool(const float *restrict in, size_t in_h, size_t in_w, size_t channels,
                     float *restrict out, size_t out_h, size_t out_w, const kernel_window *win)
{
    size_t oy, ox, ky, kx, c;
    for (oy = 0; oy < out_h; ++oy) {
        for (ox = 0; ox < out_w; ++ox) {
            float *y = out + (oy * out_w + ox) * channels;
            for (c = 0; c < channels; ++c) {
                y[c] = -HUGE_VALF;
            }
            for (ky = 0; ky < win->kernel_h; ++ky) {
                const size_t iy = window_source(oy, ky, win->stride_h, win->dilation_h, win->pad_top, in_h);
                if (iy == in_h) {
                    continue;
                }
                for (kx = 0; kx < win->kernel_w; ++kx) {
                    const size_t ix = window_source(ox, kx, win->stride_w, win->dilation_w, win->pad_left, in_w);
                    const float *x;
                    if (ix == in_w) {
                        continue;
                    }
                    x = in + (iy * in_w + ix) * channels;
                    for (c = 0; c < channels; ++c) {
                        y[c] = x[c] > y[c] ? x[c] : y[c];
                    }
                }
            }
        }
    }
}
{% endif %}
{%- if k.pad %}
/* Zero padding: the input lands at row pad_top, column pad_left of the output. */
static void pad(const float *restrict in, size_t in_h, size_t in_w, size_t channels,
                float *restrict out, size_t out_h, size_t out_w, size_t pad_top, size_t pad_left)
{
    size_t i, y, x;
    for (i = 0; i < out_h * out_w * channels; ++i) {
        out[i] = 0.0f;
    }
    for (y = 0; y < in_h; ++y) {
        for (x = 0; x < in_w * channels; ++x) {
            out[((y + pad_top) * out_w + pad_left) * channels + x] = in[y * in_w * channels + x];
        }
    }
}
{% endif %}
{%- if k.copy_channels %}
/* Channel concatenation, one input at a time: its channels go to out[p][first .. first + in_c). */
static void copy_channels(const float *restrict in, size_t pixels, size_t in_c,
                          float *restrict out, size_t out_c, size_t first)
{
    size_t p, c;
    for (p = 0; p < pixels; ++p) {
        for (c = 0; c < in_c; ++c) {
            out[p * out_c + first + c] = in[p * in_c + c];
        }
    }
}
{% endif %}
{%- if k.patchcore %}
/* sum_i (a[i] - b[i])^2 in sixteen interleaved partial sums, so the loop vectorises without
 * reassociating floats (sixteen, not eight: GCC 12 turns eight into slow lane shuffles). Not
 * MUL_ADD: inlined into the scorers, GCC 12 keeps fmaf's partial sums in memory (2x slower). */
static float squared_distance(const float *restrict a, const float *restrict b, size_t n)
{
    float part[16] = {0.0f};
    float total = 0.0f;
    const size_t whole = n - n % 16;
    size_t i, l;
    for (i = 0; i < whole; i += 16) {
        for (l = 0; l < 16; ++l) {
            const float d = a[i + l] - b[i + l];
            part[l] += d * d;
        }
    }
    for (i = whole; i < n; ++i) {
        const float d = a[i] - b[i];
        total = MUL_ADD(d, d, total);
    }
    for (l = 0; l < 16; ++l) {
        total += part[l];
    }
    return total;
}

{% endif %}
{%- if k.dot %}
/* sum_i a[i] * b[i] in sixteen interleaved partial sums, so the loop vectorises without
 * reassociating floats. Not MUL_ADD: inlined into the scorers, GCC 12 keeps fmaf's partial sums
 * in memory (2x slower). */
static float dot(const float *restrict a, const float *restrict b, size_t n)
{
    float part[16] = {0.0f};
    float total = 0.0f;
    const size_t whole = n - n % 16;
    size_t i, l;
    for (i = 0; i < whole; i += 16) {
        for (l = 0; l < 16; ++l) {
            part[l] += a[i + l] * b[i + l];
        }
    }
    for (i = whole; i < n; ++i) {
        total = MUL_ADD(a[i], b[i], total);
    }
    for (l = 0; l < 16; ++l) {
        total += part[l];
    }
    return total;
}

{% endif %}
{%- if k.patchcore %}
/* Index of the smallest of x[0..n), tracked in sixteen lanes so the scan vectorises. */
static size_t argmin(const float *restrict x, size_t n)
{
    const size_t whole = n - n % 16;
    float least[16];
    size_t where[16];
    size_t i, l, best;
    for (l = 0; l < 16; ++l) {
        least[l] = x[0];
        where[l] = 0;
    }
    for (i = 0; i < whole; i += 16) {
        for (l = 0; l < 16; ++l) {
            const int closer = x[i + l] < least[l];
            least[l] = closer ? x[i + l] : least[l];
            where[l] = closer ? i + l : where[l];
        }
    }
    best = where[0];
    for (l = 1; l < 16; ++l) {
        best = least[l] < x[best] ? where[l] : best;
    }
    for (i = whole; i < n; ++i) {
        best = x[i] < x[best] ? i : best;
    }
    return best;
}

/* Inserts d into best[0..k), ascending, dropping the largest; returns where (k if nowhere). */
static size_t keep_smallest(float *best, size_t k, float d)
{
    size_t j = k - 1;
    if (!(d < best[j])) {
        return k;
    }
    while (j > 0 && best[j - 1] > d) {
        best[j] = best[j - 1];
        --j;
    }
    best[j] = d;
    return j;
}

/* (sqrt(d) + slack)^2: the largest bound a row can have and still be among the nearest. */
static float bound_limit(float d, float slack)
{
    const float r = sqrtf(d) + slack;
    return r * r;
}

/* The largest component count the search projects a cell onto (the generator's PATCHCORE_RANK). */
#define PATCHCORE_MAX_RANK 16
/* Cells whose bounds one pass computes: each projected row is loaded once per group, not per cell. */
#define PATCHCORE_GROUP 4

/* ||q[0..4) - (x0, x1, x2, x3)||^2 */
static float axes_distance(const float *q, float x0, float x1, float x2, float x3)
{
    const float d0 = q[0] - x0, d1 = q[1] - x1, d2 = q[2] - x2, d3 = q[3] - x3;
    return MUL_ADD(d0, d0, d1 * d1) + MUL_ADD(d2, d2, d3 * d3);
}

/* PatchCore scores of `cells` cell vectors (cells_in: [cells][dim]): each the mean L2 distance to
 * its `neighbors` nearest memory bank rows, by an exact search that skips rows a lower bound
 * proves too far. With c = v - mean, q = basis c and r the norm of c off the basis, row m is at
 * least sqrt(||q - projected[., m]||^2 + (r - residuals[m])^2) away. Bounds are computed for
 * PATCHCORE_GROUP cells at a time. Rows are then checked exactly, cell by cell: first the seeds
 * (the previous cell's nearest row, as neighbouring cells look alike; then the rows of smallest
 * bound), then every row whose bound is within reach of the k-th best.
 * scratch: PATCHCORE_GROUP * memory_len + neighbors floats. */
static void patchcore_scores(const float *restrict cells_in, size_t cells, size_t dim,
                             const float *restrict bank, size_t memory_len, size_t neighbors,
                             const float *restrict mean, const float *restrict basis,
                             const float *restrict basis_mean, size_t rank,
                             const float *restrict projected, const float *restrict residuals,
                             float radius, float *restrict scratch, float *restrict scores)
{
    float *restrict best = scratch + PATCHCORE_GROUP * memory_len;
    size_t nearest = memory_len; /* none yet: the first cell seeds by bounds alone */
    size_t first, g, j, m, n, block;
    for (first = 0; first < cells; first += PATCHCORE_GROUP) {
        float q[PATCHCORE_GROUP][PATCHCORE_MAX_RANK];
        float slack[PATCHCORE_GROUP];
        float *restrict b0 = scratch;
        float *restrict b1 = b0 + memory_len;
        float *restrict b2 = b1 + memory_len;
        float *restrict b3 = b2 + memory_len;
        /* A short last group repeats its last cell (computed, never searched). */
        for (g = 0; g < PATCHCORE_GROUP; ++g) {
            const float *restrict v = cells_in + (first + g < cells ? first + g : cells - 1) * dim;
            float *restrict bound = scratch + g * memory_len;
            const float norm2 = squared_distance(v, mean, dim);
            float inside = 0.0f;
            float r2, allowance, r_low, r_high;
            for (j = 0; j < rank; ++j) {
                q[g][j] = dot(basis + j * dim, v, dim) - basis_mean[j];
                inside = MUL_ADD(q[g][j], q[g][j], inside);
            }
            r2 = norm2 - inside;
            allowance = 1e-5f * norm2;
            r_low = sqrtf(r2 - allowance > 0.0f ? r2 - allowance : 0.0f);
            r_high = sqrtf((r2 > 0.0f ? r2 : 0.0f) + allowance);
            slack[g] = 1e-4f * (sqrtf(norm2) + radius);
            for (m = 0; m < memory_len; ++m) {
                const float below = r_low - residuals[m];
                const float above = residuals[m] - r_high;
                const float gap = below > 0.0f ? below : (above > 0.0f ? above : 0.0f);
                bound[m] = gap * gap;
            }
        }
        /* Four axes x four cells per pass: each projected value and each bound is loaded once
         * for sixteen multiply-adds. */
        for (j = 0; j < rank - rank % 4; j += 4) {
            const float *restrict p0 = projected + j * memory_len;
            const float *restrict p1 = p0 + memory_len;
            const float *restrict p2 = p1 + memory_len;
            const float *restrict p3 = p2 + memory_len;
            for (m = 0; m < memory_len; ++m) {
                const float x0 = p0[m], x1 = p1[m], x2 = p2[m], x3 = p3[m];
                b0[m] += axes_distance(q[0] + j, x0, x1, x2, x3);
                b1[m] += axes_distance(q[1] + j, x0, x1, x2, x3);
                b2[m] += axes_distance(q[2] + j, x0, x1, x2, x3);
                b3[m] += axes_distance(q[3] + j, x0, x1, x2, x3);
            }
        }
        for (j = rank - rank % 4; j < rank; ++j) {
            const float *restrict row = projected + j * memory_len;
            for (m = 0; m < memory_len; ++m) {
                const float x = row[m];
                b0[m] += (q[0][j] - x) * (q[0][j] - x);
                b1[m] += (q[1][j] - x) * (q[1][j] - x);
                b2[m] += (q[2][j] - x) * (q[2][j] - x);
                b3[m] += (q[3][j] - x) * (q[3][j] - x);
            }
        }
        for (g = 0; g < PATCHCORE_GROUP && first + g < cells; ++g) {
            const float *restrict v = cells_in + (first + g) * dim;
            float *restrict bound = scratch + g * memory_len;
            size_t seeds = neighbors;
            float limit, total = 0.0f;
            for (n = 0; n < neighbors; ++n) {
                best[n] = HUGE_VALF;
            }
            if (nearest < memory_len) {
                keep_smallest(best, neighbors, squared_distance(v, bank + nearest * dim, dim));
                bound[nearest] = HUGE_VALF;
                --seeds;
            }
            for (n = 0; n < seeds; ++n) {
                const size_t seed = argmin(bound, memory_len);
                bound[seed] = HUGE_VALF;
                if (keep_smallest(best, neighbors, squared_distance(v, bank + seed * dim, dim)) == 0) {
                    nearest = seed;
                }
            }
            limit = bound_limit(best[neighbors - 1], slack[g]);
            /* A vectorised count skips the blocks of 64 bounds where no row is within reach (most). */
            for (block = 0; block < memory_len; block += 64) {
                const size_t end = memory_len - block < 64 ? memory_len : block + 64;
                int within = 0;
                if (end - block < 64) {
                    within = 1;
                } else {
                    for (m = block; m < end; ++m) {
                        within += bound[m] <= limit;
                    }
                }
                if (!within) {
                    continue;
                }
                for (m = block; m < end; ++m) {
                    if (bound[m] <= limit) {
                        if (keep_smallest(best, neighbors, squared_distance(v, bank + m * dim, dim)) == 0) {
                            nearest = m;
                        }
                        limit = bound_limit(best[neighbors - 1], slack[g]);
                    }
                }
            }
            for (n = 0; n < neighbors; ++n) {
                total += sqrtf(best[n]);
            }
            scores[first + g] = total / (float)neighbors;
        }
    }
}
{% endif %}
{%- if k.project %}
/* Random projection of each cell: out[p][j] = sum_c projection[j][c] * in[p][c]. */
static void project_cells(const float *restrict in, size_t cells, size_t channels,
                          const float *restrict projection, size_t dim, float *restrict out)
{
    size_t p, j;
    for (p = 0; p < cells; ++p) {
        for (j = 0; j < dim; ++j) {
            out[p * dim + j] = dot(projection + j * channels, in + p * channels, channels);
        }
    }
}
{% endif %}
{%- if k.gmm %}
/* Adds t to a running log-sum-exp kept as (max, sum of exp(t - max)). */
static void log_sum_exp_add(float t, float *max, float *sum)
{
    if (t > *max) {
        *sum = *sum * expf(*max - t) + 1.0f;
        *max = t;
    } else {
        *sum += expf(t - *max);
    }
}
{% endif %}
{%- if k.gmm_full %}
/* Log-likelihood of x under a full-covariance mixture: for each component k,
 * t_k = log_constants[k] - 0.5 ||(x - means[k]) U_k||^2, where row j of U_k^T is packed at
 * precision[k][j (j + 1) / 2 ..]; returns log sum_k exp(t_k). diff: dim floats of scratch. */
static float gmm_full_log_likelihood(const float *restrict x, size_t dim, size_t components,
                                     const float *restrict means, const float *restrict precision,
                                     const float *restrict log_constants, float *restrict diff)
{
    const size_t packed = dim * (dim + 1) / 2;
    size_t k, i, j;
    float max = -HUGE_VALF;
    float sum = 0.0f;
    for (k = 0; k < components; ++k) {
        const float *mean = means + k * dim;
        const float *row = precision + k * packed;
        float q = 0.0f;
        for (i = 0; i < dim; ++i) {
            diff[i] = x[i] - mean[i];
        }
        for (j = 0; j < dim; ++j) {
            const float y = dot(diff, row, j + 1);
            row += j + 1;
            q = MUL_ADD(y, y, q);
        }
        log_sum_exp_add(log_constants[k] - 0.5f * q, &max, &sum);
    }
    return max + logf(sum);
}
{% endif %}
{%- if k.gmm_diag %}
/* Log-likelihood of x under a diagonal mixture: t_k = log_constants[k] -
 * 0.5 sum_j ((x[j] - means[k][j]) * precision[k][j])^2; returns log sum_k exp(t_k). */
static float gmm_diag_log_likelihood(const float *restrict x, size_t dim, size_t components,
                                     const float *restrict means, const float *restrict precision,
                                     const float *restrict log_constants)
{
    size_t k, j;
    float max = -HUGE_VALF;
    float sum = 0.0f;
    for (k = 0; k < components; ++k) {
        const float *mean = means + k * dim;
        const float *p = precision + k * dim;
        float q = 0.0f;
        for (j = 0; j < dim; ++j) {
            const float y = (x[j] - mean[j]) * p[j];
            q = MUL_ADD(y, y, q);
        }
        log_sum_exp_add(log_constants[k] - 0.5f * q, &max, &sum);
    }
    return max + logf(sum);
}
{% endif %}
#endif /* {= upper =}_KERNELS_H */
