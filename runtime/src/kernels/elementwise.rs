//! Activations, residual adds, per-channel affines, padding, channel concatenation and input
//! scaling over HWC activations.

use super::error::{check_len, Error};
use super::geometry::{Clamp, Shape};

/// `output = clamp(input)`.
pub fn clamp(clamp: Clamp, input: &[f32], output: &mut [f32]) -> Result<(), Error> {
    check_len("output", output.len(), input.len())?;
    for (o, &v) in output.iter_mut().zip(input) {
        *o = clamp.apply(v);
    }
    Ok(())
}

/// `values = clamp(values)`.
pub fn clamp_in_place(clamp: Clamp, values: &mut [f32]) {
    clamp.apply_all(values);
}

/// `output = clamp(a + b)`: a residual connection with its activation fused.
pub fn add(clamp: Clamp, a: &[f32], b: &[f32], output: &mut [f32]) -> Result<(), Error> {
    check_len("b", b.len(), a.len())?;
    check_len("output", output.len(), a.len())?;
    for ((o, &x), &y) in output.iter_mut().zip(a).zip(b) {
        *o = clamp.apply(x + y);
    }
    Ok(())
}

/// `acc = clamp(acc + b)`: the residual add written over its first input.
pub fn add_in_place(clamp: Clamp, acc: &mut [f32], b: &[f32]) -> Result<(), Error> {
    check_len("b", b.len(), acc.len())?;
    for (o, &y) in acc.iter_mut().zip(b) {
        *o = clamp.apply(*o + y);
    }
    Ok(())
}

/// `values = clamp(values + values)`: a residual add of a tensor to itself, written over it.
pub fn double_in_place(clamp: Clamp, values: &mut [f32]) {
    for v in values {
        *v = clamp.apply(*v + *v);
    }
}

/// `output[p][c] = input[p][c] * scale[c] + bias[c]` (channels = `scale.len()`).
pub fn channel_affine(
    input: &[f32],
    scale: &[f32],
    bias: &[f32],
    output: &mut [f32],
) -> Result<(), Error> {
    let channels = scale.len();
    check_len("bias", bias.len(), channels)?;
    check_len("output", output.len(), input.len())?;
    if channels == 0 || !input.len().is_multiple_of(channels) {
        return Err(Error::Shape("input is not a whole number of pixels"));
    }
    for (out, pixel) in output
        .chunks_exact_mut(channels)
        .zip(input.chunks_exact(channels))
    {
        for (((o, &v), &s), &b) in out.iter_mut().zip(pixel).zip(scale).zip(bias) {
            *o = v * s + b;
        }
    }
    Ok(())
}

/// [`channel_affine`] written over its input.
pub fn channel_affine_in_place(
    values: &mut [f32],
    scale: &[f32],
    bias: &[f32],
) -> Result<(), Error> {
    let channels = scale.len();
    check_len("bias", bias.len(), channels)?;
    if channels == 0 || !values.len().is_multiple_of(channels) {
        return Err(Error::Shape("values are not a whole number of pixels"));
    }
    for pixel in values.chunks_exact_mut(channels) {
        for ((v, &s), &b) in pixel.iter_mut().zip(scale).zip(bias) {
            *v = *v * s + b;
        }
    }
    Ok(())
}

/// Zero padding of the spatial axes, `pads = [top, left, bottom, right]`.
pub fn pad(
    input_shape: Shape,
    pads: [usize; 4],
    input: &[f32],
    output: &mut [f32],
) -> Result<(), Error> {
    let [top, left, bottom, right] = pads;
    let out_w = input_shape.w.saturating_add(left).saturating_add(right);
    let out_h = input_shape.h.saturating_add(top).saturating_add(bottom);
    check_len("input", input.len(), input_shape.len())?;
    check_len(
        "output",
        output.len(),
        Shape::new(out_h, out_w, input_shape.c).len(),
    )?;
    output.fill(0.0);
    let row = input_shape.w * input_shape.c;
    if row == 0 {
        return Ok(());
    }
    for (y, source) in input.chunks_exact(row).enumerate() {
        let start = ((y + top) * out_w + left) * input_shape.c;
        output[start..start + row].copy_from_slice(source);
    }
    Ok(())
}

/// Copies every pixel's `input_channels` values into channels `offset..offset + input_channels`
/// of an output with `output_channels` per pixel: one input of a channel concatenation.
pub fn copy_channels(
    input: &[f32],
    input_channels: usize,
    output_channels: usize,
    offset: usize,
    output: &mut [f32],
) -> Result<(), Error> {
    if input_channels == 0 || offset.saturating_add(input_channels) > output_channels {
        return Err(Error::Shape("copied channels do not fit the output's"));
    }
    if !input.len().is_multiple_of(input_channels) {
        return Err(Error::Shape("input is not a whole number of pixels"));
    }
    let pixels = input.len() / input_channels;
    check_len(
        "output",
        output.len(),
        pixels.saturating_mul(output_channels),
    )?;
    for (out, pixel) in output
        .chunks_exact_mut(output_channels)
        .zip(input.chunks_exact(input_channels))
    {
        out[offset..offset + input_channels].copy_from_slice(pixel);
    }
    Ok(())
}

/// Camera bytes to the backbone's input: `output[p][c] = pixels[p][c] * scale[c] + offset[c]`,
/// pixels interleaved (HWC) with `scale.len()` channels.
pub fn scale_pixels(
    pixels: &[u8],
    scale: &[f32],
    offset: &[f32],
    output: &mut [f32],
) -> Result<(), Error> {
    let channels = scale.len();
    check_len("offset", offset.len(), channels)?;
    check_len("output", output.len(), pixels.len())?;
    if channels == 0 || !pixels.len().is_multiple_of(channels) {
        return Err(Error::Shape("pixels are not a whole number of pixels"));
    }
    // Runs of SCALE_SPAN values, a whole number of pixels when `channels` divides it (1, 2, 3,
    // 4, 6, 8, ...), scale against factors repeated to the same length: a loop over fixed-length
    // arrays that vectorises, where one loop per pixel runs over only its few channels.
    let (mut output, mut pixels) = (output, pixels);
    if SCALE_SPAN.is_multiple_of(channels) {
        let span_scale: [f32; SCALE_SPAN] = core::array::from_fn(|i| scale[i % channels]);
        let span_offset: [f32; SCALE_SPAN] = core::array::from_fn(|i| offset[i % channels]);
        let whole = pixels.len() - pixels.len() % SCALE_SPAN;
        let (out_spans, out_rest) = output.split_at_mut(whole);
        let (pixel_spans, pixel_rest) = pixels.split_at(whole);
        for (out, span) in out_spans
            .chunks_exact_mut(SCALE_SPAN)
            .zip(pixel_spans.chunks_exact(SCALE_SPAN))
        {
            scale_run(out, span, &span_scale, &span_offset);
        }
        (output, pixels) = (out_rest, pixel_rest);
    }
    for (out, pixel) in output
        .chunks_exact_mut(channels)
        .zip(pixels.chunks_exact(channels))
    {
        scale_run(out, pixel, scale, offset);
    }
    Ok(())
}

/// `out[i] = pixels[i] * scale[i] + offset[i]` over the shortest of the four.
#[inline(always)]
fn scale_run(out: &mut [f32], pixels: &[u8], scale: &[f32], offset: &[f32]) {
    for (((o, &v), &s), &b) in out.iter_mut().zip(pixels).zip(scale).zip(offset) {
        *o = f32::from(v) * s + b;
    }
}

/// Values [`scale_pixels`] converts per step of its fast loop.
const SCALE_SPAN: usize = 48;
