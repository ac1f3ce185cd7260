//! Convolutions over HWC activations. Weights keep, for one input value, the weights of every
//! output channel it feeds adjacent, so the inner loops run over contiguous output channels, which
//! compilers vectorise: `[groups][kh][kw][in / groups][out / groups]` in general, which is
//! `[in][out]` for a 1x1 convolution and `[kh][kw][channels]` for a depthwise one.

use super::error::{check_len, Error};
use super::geometry::{Clamp, Shape, Window};

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
                                *o += value * w;
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

/// A 1x1 convolution: per pixel, `out = bias + in x W` with `W` as `[in][out]`.
pub fn conv2d_pointwise(
    p: &Conv2d,
    input: &[f32],
    weights: &[f32],
    bias: &[f32],
    output: &mut [f32],
) -> Result<(), Error> {
    if !p.is_pointwise() {
        return Err(Error::Shape(
            "pointwise conv needs a 1x1 kernel, stride 1, no padding and one group",
        ));
    }
    p.validate(input, weights, bias, output)?;
    let (in_c, out_c) = (p.input.c, p.output.c);
    for (pixel, out) in input.chunks_exact(in_c).zip(output.chunks_exact_mut(out_c)) {
        start_at_bias(out, bias);
        for (&value, row) in pixel.iter().zip(weights.chunks_exact(out_c)) {
            for (o, &w) in out.iter_mut().zip(row) {
                *o += value * w;
            }
        }
        p.clamp.apply_all(out);
    }
    Ok(())
}

/// A depthwise convolution (`groups == in == out`); weights are `[kh][kw][channels]`.
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
    for (oy, out_row) in output.chunks_exact_mut(p.output.w * c).enumerate() {
        for (ox, out) in out_row.chunks_exact_mut(c).enumerate() {
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
                        *o += value * w;
                    }
                }
            }
            p.clamp.apply_all(out);
        }
    }
    Ok(())
}
