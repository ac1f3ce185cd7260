//! Convolutions over HWC activations. Weights keep, for one input value, the weights of every
//! output channel it feeds adjacent, so the inner loops run over contiguous output channels, which
//! compilers vectorise: `[groups][kh][kw][in / groups][out / groups]` in general, which is
//! `[in][out]` for a 1x1 convolution and `[kh][kw][channels]` for a depthwise one.

use super::error::{check_len, Error};
use super::geometry::{Clamp, Shape, Window};
use super::math::mul_add;

/// A 2-D convolution with bias and a fused clamp, with every shape fixed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conv2d {
    pub input: Shape,
    pub output: Shape,
    pub window: Window,
    /// Input and output channels are split into this many independent groups.
    pub groups: usize,
    /// Applied to every output value ([`Clamp::NONE`] for none).
    pub clamp: Clamp,
}

impl Conv2d {
    /// Number of weights: `kh * kw * (input.c / groups) * output.c`.
    pub const fn weights_len(&self) -> usize {
        let [kh, kw] = self.window.kernel;
        let per_group = match self.input.c.checked_div(self.groups) {
            Some(per_group) => per_group,
            None => 0,
        };
        kh.saturating_mul(kw)
            .saturating_mul(per_group)
            .saturating_mul(self.output.c)
    }

    /// True for a 1x1, stride 1, unpadded, ungrouped convolution (a matrix product per pixel).
    pub fn is_pointwise(&self) -> bool {
        self.window.kernel == [1, 1]
            && self.window.stride == [1, 1]
            && self.window.pads == [0; 4]
            && self.groups == 1
    }

    /// True when every channel is convolved on its own (`groups == in == out`).
    pub fn is_depthwise(&self) -> bool {
        self.groups == self.input.c && self.groups == self.output.c
    }

    fn validate(
        &self,
        input: &[f32],
        weights: &[f32],
        bias: &[f32],
        output: &[f32],
    ) -> Result<(), Error> {
        if self.input.c == 0 || self.output.c == 0 {
            return Err(Error::Shape("conv channels must be positive"));
        }
        if self.groups == 0
            || !self.input.c.is_multiple_of(self.groups)
            || !self.output.c.is_multiple_of(self.groups)
        {
            return Err(Error::Shape("conv groups must divide its channels"));
        }
        self.window.check(self.input, self.output)?;
        check_len("input", input.len(), self.input.len())?;
        check_len("weights", weights.len(), self.weights_len())?;
        if !bias.is_empty() {
            check_len("bias", bias.len(), self.output.c)?;
        }
        check_len("output", output.len(), self.output.len())
    }
}

/// Starts an output pixel at its bias (or zero when there is none).
#[inline(always)]
fn start_at_bias(out: &mut [f32], bias: &[f32]) {
    if bias.is_empty() {
        out.fill(0.0);
    } else {
        out.copy_from_slice(bias);
    }
}

/// Any convolution (groups, strides, dilation, padding), weights
/// `[groups][kh][kw][in / groups][out / groups]`. `bias` may be empty for none.
// Inlined into the generated code, whose constant shapes then specialise the loops.
#[inline]
pub fn conv2d(
    p: &Conv2d,
    input: &[f32],
    weights: &[f32],
    bias: &[f32],
    output: &mut [f32],
) -> Result<(), Error> {
    p.validate(input, weights, bias, output)?;
    let (in_c, out_c) = (p.input.c, p.output.c);
    let (in_per_group, out_per_group) = (in_c / p.groups, out_c / p.groups);
    let [kh, kw] = p.window.kernel;
    // Weights of one group, and of one tap within it.
    let tap_len = in_per_group * out_per_group;
    let group_len = kh * kw * tap_len;
    for (oy, out_row) in output.chunks_exact_mut(p.output.w * out_c).enumerate() {
        for (ox, out) in out_row.chunks_exact_mut(out_c).enumerate() {
            start_at_bias(out, bias);
            for ky in 0..kh {
                let Some(y) = p.window.source(0, oy, ky, p.input.h) else {
                    continue;
                };
                for kx in 0..kw {
                    let Some(x) = p.window.source(1, ox, kx, p.input.w) else {
                        continue;
                    };
                    let pixel = &input[(y * p.input.w + x) * in_c..][..in_c];
                    for ((group_in, group_out), group_weights) in pixel
                        .chunks_exact(in_per_group)
                        .zip(out.chunks_exact_mut(out_per_group))
                        .zip(weights.chunks_exact(group_len))
                    {
                        let taps = &group_weights[(ky * kw + kx) * tap_len..][..tap_len];
                        for (&value, row) in group_in.iter().zip(taps.chunks_exact(out_per_group)) {
                            for (o, &w) in group_out.iter_mut().zip(row) {
                                *o = mul_add(value, w, *o);
                            }
                        }
                    }
                }
            }
            p.clamp.apply_all(out);
        }
    }
    Ok(())
}

/// Output channels a 1x1 convolution computes at once (the compiler's `POINTWISE_BLOCK`).
pub const POINTWISE_BLOCK: usize = 16;
/// Pixels a 1x1 convolution computes at once: 4 x 16 accumulators stay in vector registers.
const POINTWISE_ROWS: usize = 4;

/// Weights of a 1x1 convolution in blocks of [`POINTWISE_BLOCK`] outputs:
/// `ceil(out / 16) * in * 16`.
pub const fn pointwise_weights_len(in_c: usize, out_c: usize) -> usize {
    out_c
        .div_ceil(POINTWISE_BLOCK)
        .saturating_mul(in_c)
        .saturating_mul(POINTWISE_BLOCK)
}

/// A 1x1 convolution: per pixel, `out[o] = clamp(bias[o] + sum_i in[i] * W[i][o])`, plus the
/// value `out[o]` held on entry when `residual` (a fused skip connection). `W[i][o]` is at
/// `weights[o / 16][i][o % 16]` and `bias` has `ceil(out / 16) * 16` values, both zero-padded
/// to whole blocks, so every block computes 16 outputs for 4 pixels with its accumulators in
/// registers.
// Inlined into the generated code, whose constant shapes then specialise the loops.
#[inline]
pub fn conv2d_pointwise(
    p: &Conv2d,
    input: &[f32],
    weights: &[f32],
    bias: &[f32],
    output: &mut [f32],
    residual: bool,
) -> Result<(), Error> {
    if !p.is_pointwise() {
        return Err(Error::Shape(
            "pointwise conv needs a 1x1 kernel, stride 1, no padding and one group",
        ));
    }
    let (in_c, out_c) = (p.input.c, p.output.c);
    if in_c == 0 || out_c == 0 {
        return Err(Error::Shape("conv channels must be positive"));
    }
    p.window.check(p.input, p.output)?;
    check_len("input", input.len(), p.input.len())?;
    check_len("weights", weights.len(), pointwise_weights_len(in_c, out_c))?;
    check_len(
        "bias",
        bias.len(),
        out_c.div_ceil(POINTWISE_BLOCK) * POINTWISE_BLOCK,
    )?;
    check_len("output", output.len(), p.output.len())?;
    const B: usize = POINTWISE_BLOCK;
    for (x, y) in input
        .chunks(POINTWISE_ROWS * in_c)
        .zip(output.chunks_mut(POINTWISE_ROWS * out_c))
    {
        // A short last tile repeats its first pixel in the missing rows (computed, not stored).
        let row = |r: usize| x.chunks_exact(in_c).nth(r).or(x.get(..in_c)).unwrap_or(&[]);
        let (x0, x1, x2, x3) = (row(0), row(1), row(2), row(3));
        for (block, (w, b)) in weights
            .chunks_exact(in_c * B)
            .zip(bias.chunks_exact(B))
            .enumerate()
        {
            let mut acc = [[0.0f32; B]; POINTWISE_ROWS];
            for lane in acc.iter_mut() {
                lane.copy_from_slice(b);
            }
            for (wi, (&a0, (&a1, (&a2, &a3)))) in w
                .chunks_exact(B)
                .zip(x0.iter().zip(x1.iter().zip(x2.iter().zip(x3))))
            {
                // Always 16 long (chunks_exact); the array type lets the loop drop bounds checks.
                let Ok(wi) = <&[f32; B]>::try_from(wi) else {
                    continue;
                };
                for (o, &wo) in wi.iter().enumerate() {
                    acc[0][o] = mul_add(a0, wo, acc[0][o]);
                    acc[1][o] = mul_add(a1, wo, acc[1][o]);
                    acc[2][o] = mul_add(a2, wo, acc[2][o]);
                    acc[3][o] = mul_add(a3, wo, acc[3][o]);
                }
            }
            let first = block * B;
            for (lane, out) in acc.iter().zip(y.chunks_exact_mut(out_c)) {
                let out = out.get_mut(first..).unwrap_or(&mut []);
                for (o, &v) in out.iter_mut().zip(lane.iter()) {
                    *o = p.clamp.apply(if residual { v + *o } else { v });
                }
            }
        }
    }
    Ok(())
}

/// A depthwise convolution (`groups == in == out`); weights are `[kh][kw][channels]`.
// Inlined into the generated code, whose constant shapes then specialise the loops.
#[inline]
pub fn conv2d_depthwise(
    p: &Conv2d,
    input: &[f32],
    weights: &[f32],
    bias: &[f32],
    output: &mut [f32],
) -> Result<(), Error> {
    if !p.is_depthwise() {
        return Err(Error::Shape(
            "depthwise conv needs groups equal to its input and output channels",
        ));
    }
    p.validate(input, weights, bias, output)?;
    let c = p.input.c;
    let [kh, kw] = p.window.kernel;
    let fast_window = p.window.kernel == [3, 3] && p.window.dilation == [1, 1] && bias.len() == c;
    // Where a 3x3 window at output coordinate `o` starts, when it lies wholly inside the input.
    let inside = |axis: usize, o: usize, size: usize| {
        let start = (o * p.window.stride[axis]).checked_sub(p.window.pads[axis])?;
        (start + 3 <= size).then_some(start)
    };
    let taps_len = 9 * c;
    for (oy, out_row) in output.chunks_exact_mut(p.output.w * c).enumerate() {
        for (ox, out) in out_row.chunks_exact_mut(c).enumerate() {
            if let (true, Some(y), Some(x)) = (
                fast_window && weights.len() >= taps_len,
                inside(0, oy, p.input.h),
                inside(1, ox, p.input.w),
            ) {
                // Nine taps unrolled, one loop over channels; every slice is exactly `c` long
                // so the loop needs no bounds checks.
                let at = |ky: usize, kx: usize| &input[((y + ky) * p.input.w + x + kx) * c..][..c];
                let x = [
                    at(0, 0),
                    at(0, 1),
                    at(0, 2),
                    at(1, 0),
                    at(1, 1),
                    at(1, 2),
                    at(2, 0),
                    at(2, 1),
                    at(2, 2),
                ];
                let w: [&[f32]; 9] = core::array::from_fn(|k| &weights[k * c..][..c]);
                let bias = &bias[..c];
                for ch in 0..c {
                    // Three rows summed apart, then together: shorter dependency chains.
                    let mut top = mul_add(x[0][ch], w[0][ch], bias[ch]);
                    let mut mid = x[3][ch] * w[3][ch];
                    let mut low = x[6][ch] * w[6][ch];
                    top = mul_add(x[1][ch], w[1][ch], top);
                    mid = mul_add(x[4][ch], w[4][ch], mid);
                    low = mul_add(x[7][ch], w[7][ch], low);
                    top = mul_add(x[2][ch], w[2][ch], top);
                    mid = mul_add(x[5][ch], w[5][ch], mid);
                    low = mul_add(x[8][ch], w[8][ch], low);
                    out[ch] = p.clamp.apply(top + mid + low);
                }
                continue;
            }
            start_at_bias(out, bias);
            for ky in 0..kh {
                let Some(y) = p.window.source(0, oy, ky, p.input.h) else {
                    continue;
                };
                for kx in 0..kw {
                    let Some(x) = p.window.source(1, ox, kx, p.input.w) else {
                        continue;
                    };
                    let pixel = &input[(y * p.input.w + x) * c..][..c];
                    let taps = &weights[(ky * kw + kx) * c..][..c];
                    for ((o, &value), &w) in out.iter_mut().zip(pixel).zip(taps) {
                        *o = mul_add(value, w, *o);
                    }
                }
            }
            p.clamp.apply_all(out);
        }
    }
    Ok(())
}
