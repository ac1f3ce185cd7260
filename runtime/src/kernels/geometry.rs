use super::error::Error;

/// Static shape of one activation, stored interleaved (HWC): the `c` values of a pixel are
/// adjacent, pixels go row by row. Batch 1 is implied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub h: usize,
    pub w: usize,
    pub c: usize,
}

impl Shape {
    pub const fn new(h: usize, w: usize, c: usize) -> Shape {
        Shape { h, w, c }
    }
    /// Number of pixels (`h * w`).
    pub const fn pixels(&self) -> usize {
        self.h.saturating_mul(self.w)
    }
    /// Number of values (`h * w * c`); saturates instead of overflowing so absurd shapes fail
    /// the length checks rather than panic.
    pub const fn len(&self) -> usize {
        self.pixels().saturating_mul(self.c)
    }
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `min(max(x, min), max)`. Relu is `0..inf`, Relu6 is `0..6`, [`Clamp::NONE`] changes no finite
/// value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Clamp {
    pub min: f32,
    pub max: f32,
}

impl Clamp {
    pub const NONE: Clamp = Clamp::new(f32::NEG_INFINITY, f32::INFINITY);
    pub const RELU: Clamp = Clamp::new(0.0, f32::INFINITY);
    pub const RELU6: Clamp = Clamp::new(0.0, 6.0);

    pub const fn new(min: f32, max: f32) -> Clamp {
        Clamp { min, max }
    }
    /// Compares rather than calling `f32::max`/`min`, whose NaN rules cost extra instructions
    /// in every vectorised loop (a NaN stays NaN here, as in the generated C).
    #[inline(always)]
    pub fn apply(self, x: f32) -> f32 {
        let x = if x < self.min { self.min } else { x };
        if x > self.max {
            self.max
        } else {
            x
        }
    }
    #[inline]
    pub fn apply_all(self, values: &mut [f32]) {
        for v in values {
            *v = self.apply(*v);
        }
    }
}

/// Geometry of a sliding window over the two spatial axes (index 0 = y, 1 = x).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    /// Zero padding `[top, left, bottom, right]`.
    pub pads: [usize; 4],
}

impl Window {
    /// A `kh x kw` window with the given stride and padding, no dilation.
    pub const fn new(kernel: [usize; 2], stride: [usize; 2], pads: [usize; 4]) -> Window {
        Window {
            kernel,
            stride,
            dilation: [1, 1],
            pads,
        }
    }

    /// Output height and width over an `input` (floor mode, as ONNX and Keras compute them).
    pub fn output_size(&self, input: Shape) -> Result<(usize, usize), Error> {
        Ok((self.output_len(0, input.h)?, self.output_len(1, input.w)?))
    }

    fn output_len(&self, axis: usize, size: usize) -> Result<usize, Error> {
        let (kernel, stride, dilation) =
            (self.kernel[axis], self.stride[axis], self.dilation[axis]);
        if kernel == 0 || stride == 0 || dilation == 0 {
            return Err(Error::Shape(
                "window kernel, stride and dilation must be positive",
            ));
        }
        let padded = size
            .saturating_add(self.pads[axis])
            .saturating_add(self.pads[axis + 2]);
        let span = dilation.saturating_mul(kernel - 1).saturating_add(1);
        if padded < span {
            return Err(Error::Shape("window larger than its padded input"));
        }
        Ok((padded - span) / stride + 1)
    }

    /// Input coordinate that output position `out` reads through tap `tap` along `axis`, or
    /// `None` where it falls in the padding. Only called after [`Window::output_size`] accepted
    /// the geometry, so the products cannot overflow.
    #[inline(always)]
    pub fn source(&self, axis: usize, out: usize, tap: usize, size: usize) -> Option<usize> {
        (out * self.stride[axis] + tap * self.dilation[axis])
            .checked_sub(self.pads[axis])
            .filter(|&pos| pos < size)
    }

    /// Checks that this window maps `input` onto exactly `output`'s height and width.
    pub(super) fn check(&self, input: Shape, output: Shape) -> Result<(), Error> {
        if self.output_size(input)? == (output.h, output.w) {
            Ok(())
        } else {
            Err(Error::Shape(
                "output size does not match the window over the input",
            ))
        }
    }
}
