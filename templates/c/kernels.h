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
/* 1x1 convolution: out[p][o] = clamp(bias[o] + sum_i in[p][i] * weights[i][o]). */
static void conv_pointwise(const float *restrict in, size_t pixels, size_t in_c,
                           float *restrict out, size_t out_c,
                           const float *restrict weights, const float *restrict bias, float lo, float hi)
{
    size_t p, i, o;
    for (p = 0; p < pixels; ++p) {
        const float *x = in + p * in_c;
        float *y = out + p * out_c;
        for (o = 0; o < out_c; ++o) {
            y[o] = bias[o];
        }
        for (i = 0; i < in_c; ++i) {
            const float v = x[i];
            const float *w = weights + i * out_c;
            for (o = 0; o < out_c; ++o) {
                y[o] += v * w[o];
            }
        }
        for (o = 0; o < out_c; ++o) {
            y[o] = clamp_value(y[o], lo, hi);
        }
    }
}
{% endif %}
{%- if k.conv_depthwise %}
/* Depthwise convolution: out[oy][ox][c] = clamp(bias[c] + sum_{ky,kx} in[iy][ix][c] * weights[ky][kx][c]). */
static void conv_depthwise(const float *restrict in, size_t in_h, size_t in_w, size_t channels,
                           float *restrict out, size_t out_h, size_t out_w, const kernel_window *win,
                           const float *restrict weights, const float *restrict bias, float lo, float hi)
{
    size_t oy, ox, ky, kx, c;
    for (oy = 0; oy < out_h; ++oy) {
        for (ox = 0; ox < out_w; ++ox) {
            float *y = out + (oy * out_w + ox) * channels;
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
                        y[c] += x[c] * w[c];
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
                                yg[o] += v * wi[o];
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
/* PatchCore score of one cell vector v: the mean L2 distance to its `neighbors` nearest memory
 * bank rows. Candidates come from ||v||^2 - 2 v.b + ||b||^2 (bank norms precomputed); the winners'
 * distances are then recomputed as sum (v - b)^2, which stays exact when v is close to b.
 * d2: memory_len floats of scratch. */
static float patchcore_cell(const float *restrict v, size_t dim,
                            const float *restrict bank, const float *restrict bank_norms,
                            size_t memory_len, size_t neighbors, float *restrict d2)
{
    size_t m, i, n;
    float norm = 0.0f;
    float total = 0.0f;
    for (i = 0; i < dim; ++i) {
        norm += v[i] * v[i];
    }
    for (m = 0; m < memory_len; ++m) {
        const float *b = bank + m * dim;
        float dot = 0.0f;
        float d;
        for (i = 0; i < dim; ++i) {
            dot += v[i] * b[i];
        }
        d = norm - 2.0f * dot + bank_norms[m];
        d2[m] = d > 0.0f ? d : 0.0f;
    }
    for (n = 0; n < neighbors; ++n) {
        size_t best = 0;
        const float *b;
        float exact = 0.0f;
        for (m = 1; m < memory_len; ++m) {
            best = d2[m] < d2[best] ? m : best;
        }
        d2[best] = HUGE_VALF;
        b = bank + best * dim;
        for (i = 0; i < dim; ++i) {
            const float diff = v[i] - b[i];
            exact += diff * diff;
        }
        total += sqrtf(exact);
    }
    return total / (float)neighbors;
}
{% endif %}
{%- if k.project %}
/* Random projection of each cell: out[p][j] = sum_c projection[j][c] * in[p][c]. */
static void project_cells(const float *restrict in, size_t cells, size_t channels,
                          const float *restrict projection, size_t dim, float *restrict out)
{
    size_t p, j, c;
    for (p = 0; p < cells; ++p) {
        for (j = 0; j < dim; ++j) {
            const float *row = projection + j * channels;
            float sum = 0.0f;
            for (c = 0; c < channels; ++c) {
                sum += row[c] * in[p * channels + c];
            }
            out[p * dim + j] = sum;
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
            float y = 0.0f;
            for (i = 0; i <= j; ++i) {
                y += diff[i] * row[i];
            }
            row += j + 1;
            q += y * y;
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
            q += y * y;
        }
        log_sum_exp_add(log_constants[k] - 0.5f * q, &max, &sum);
    }
    return max + logf(sum);
}
{% endif %}
#endif /* {= upper =}_KERNELS_H */
