use super::{expect_inputs, window_output, Operator};
use crate::ir::{Shape, Tensor};

/// Geometry of a sliding window over the spatial axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    /// `[top, left, bottom, right]`
    pub pads: [usize; 4],
}

impl Window {
    pub fn output_hw(&self, input: Shape) -> Result<(usize, usize), String> {
        let [t, l, b, r] = self.pads;
        Ok((
            window_output(
                input.h,
                t,
                b,
                self.kernel[0],
                self.stride[0],
                self.dilation[0],
            )?,
            window_output(
                input.w,
                l,
                r,
                self.kernel[1],
                self.stride[1],
                self.dilation[1],
            )?,
        ))
    }
    /// Input coordinate read by output position `o` and kernel tap `k` along `axis` (0 = y, 1 = x),
    /// or `None` when it falls in the padding.
    #[inline]
    pub fn source(&self, axis: usize, o: usize, k: usize, size: usize) -> Option<usize> {
        let pos =
            (o * self.stride[axis] + k * self.dilation[axis]) as isize - self.pads[axis] as isize;
        (pos >= 0 && (pos as usize) < size).then_some(pos as usize)
    }
    pub fn describe(&self) -> String {
        let [t, l, b, r] = self.pads;
        let mut s = format!(
            "{}x{} stride {}x{}",
            self.kernel[0], self.kernel[1], self.stride[0], self.stride[1]
        );
        if self.pads != [0; 4] {
            s += &format!(" pads t{t} l{l} b{b} r{r}");
        }
        if self.dilation != [1, 1] {
            s += &format!(" dilation {}x{}", self.dilation[0], self.dilation[1]);
        }
        s
    }
}

fn pool_shape(window: &Window, inputs: &[Shape], kind: &str) -> Result<Shape, String> {
    expect_inputs(inputs, 1, kind)?;
    let (h, w) = window.output_hw(inputs[0])?;
    Ok(Shape::new(inputs[0].c, h, w))
}

/// Average over each window. `count_include_pad` divides by the full window even at borders.
#[derive(Clone, Debug, PartialEq)]
pub struct AvgPool {
    pub window: Window,
    pub count_include_pad: bool,
}

impl Operator for AvgPool {
    fn kind(&self) -> &'static str {
        "AvgPool"
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape, String> {
        pool_shape(&self.window, inputs, "AvgPool")
    }
    fn describe(&self) -> String {
        let pads = if self.count_include_pad {
            ", pads counted"
        } else {
            ""
        };
        format!("{}{pads}", self.window.describe())
    }
    fn reference(&self, inputs: &[&Tensor], output: Shape) -> Tensor {
        let full = self.window.kernel[0] * self.window.kernel[1];
        reduce_windows(&self.window, inputs[0], output, |taps| {
            let (sum, count) = taps.fold((0.0f32, 0usize), |(s, n), v| (s + v, n + 1));
            let divisor = if self.count_include_pad {
                full
            } else {
                count.max(1)
            };
            sum / divisor as f32
        })
    }
}

/// Maximum over each window; padding never wins.
#[derive(Clone, Debug, PartialEq)]
pub struct MaxPool {
    pub window: Window,
}

impl Operator for MaxPool {
    fn kind(&self) -> &'static str {
        "MaxPool"
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape, String> {
        pool_shape(&self.window, inputs, "MaxPool")
    }
    fn describe(&self) -> String {
        self.window.describe()
    }
    fn reference(&self, inputs: &[&Tensor], output: Shape) -> Tensor {
        reduce_windows(&self.window, inputs[0], output, |taps| {
            taps.fold(f32::NEG_INFINITY, f32::max)
        })
    }
}

/// Applies `reduce` to the in-bounds values under each window position (padding is skipped).
fn reduce_windows(
    window: &Window,
    input: &Tensor,
    output: Shape,
    reduce: impl Fn(&mut dyn Iterator<Item = f32>) -> f32,
) -> Tensor {
    let [kh, kw] = window.kernel;
    let mut out = Tensor::zeros(output);
    for c in 0..output.c {
        for oy in 0..output.h {
            for ox in 0..output.w {
                let mut taps = (0..kh)
                    .flat_map(|ky| (0..kw).map(move |kx| (ky, kx)))
                    .filter_map(|(ky, kx)| {
                        let y = window.source(0, oy, ky, input.shape.h)?;
                        let x = window.source(1, ox, kx, input.shape.w)?;
                        Some(input.at(c, y, x))
                    });
                out.data[(c * output.h + oy) * output.w + ox] = reduce(&mut taps);
            }
        }
    }
    out
}
