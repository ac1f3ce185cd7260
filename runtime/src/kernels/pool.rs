//! Average and max pooling over HWC activations (channels kept).

use super::error::{check_len, Error};
use super::geometry::{Shape, Window};

/// A pooling window with every shape fixed (`input.c == output.c`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2d {
    pub input: Shape,
    pub output: Shape,
    pub window: Window,
    /// Average pooling only: divide by the whole window even where it covers padding.
    pub count_include_pad: bool,
}

impl Pool2d {
    fn validate(&self, input: &[f32], output: &[f32]) -> Result<(), Error> {
        if self.input.c != self.output.c || self.input.c == 0 {
            return Err(Error::Shape(
                "pooling keeps its (positive) number of channels",
            ));
        }
        self.window.check(self.input, self.output)?;
        check_len("input", input.len(), self.input.len())?;
        check_len("output", output.len(), self.output.len())
    }

    /// Calls `visit(out_pixel, in_pixel)` for every input pixel inside each output pixel's
    /// window, and returns through `finish(out_pixel, count)` how many there were.
    #[inline(always)]
    fn for_each_window(
        &self,
        input: &[f32],
        output: &mut [f32],
        mut visit: impl FnMut(&mut [f32], &[f32]),
        mut finish: impl FnMut(&mut [f32], usize),
    ) {
        let c = self.input.c;
        let [kh, kw] = self.window.kernel;
        for (oy, out_row) in output.chunks_exact_mut(self.output.w * c).enumerate() {
            for (ox, out) in out_row.chunks_exact_mut(c).enumerate() {
                let mut count = 0;
                for ky in 0..kh {
                    let Some(y) = self.window.source(0, oy, ky, self.input.h) else {
                        continue;
                    };
                    for kx in 0..kw {
                        let Some(x) = self.window.source(1, ox, kx, self.input.w) else {
                            continue;
                        };
                        visit(out, &input[(y * self.input.w + x) * c..][..c]);
                        count += 1;
                    }
                }
                finish(out, count);
            }
        }
    }
}

/// Mean over each window; padding is excluded from the divisor unless `count_include_pad`.
pub fn avg_pool(p: &Pool2d, input: &[f32], output: &mut [f32]) -> Result<(), Error> {
    p.validate(input, output)?;
    output.fill(0.0);
    let window = p.window.kernel[0] * p.window.kernel[1];
    p.for_each_window(
        input,
        output,
        |out, pixel| {
            for (o, &v) in out.iter_mut().zip(pixel) {
                *o += v;
            }
        },
        |out, count| {
            let divisor = if p.count_include_pad {
                window
            } else {
                count.max(1)
            } as f32;
            for o in out {
                *o /= divisor;
            }
        },
    );
    Ok(())
}

/// Maximum over each window; padding never wins (a window entirely in padding gives -inf).
pub fn max_pool(p: &Pool2d, input: &[f32], output: &mut [f32]) -> Result<(), Error> {
    p.validate(input, output)?;
    output.fill(f32::NEG_INFINITY);
    p.for_each_window(
        input,
        output,
        |out, pixel| {
            for (o, &v) in out.iter_mut().zip(pixel) {
                *o = o.max(v);
            }
        },
        |_, _| {},
    );
    Ok(())
}
