use super::{expect_inputs, Operator};
use crate::ir::{Shape, Tensor};

/// Zero padding of the spatial axes, `[top, left, bottom, right]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Pad {
    pub pads: [usize; 4],
}

impl Operator for Pad {
    fn kind(&self) -> &'static str {
        "Pad"
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape, String> {
        expect_inputs(inputs, 1, "Pad")?;
        let [t, l, b, r] = self.pads;
        Ok(Shape::new(
            inputs[0].c,
            inputs[0].h + t + b,
            inputs[0].w + l + r,
        ))
    }
    fn describe(&self) -> String {
        let [t, l, b, r] = self.pads;
        format!("zeros: top {t}, left {l}, bottom {b}, right {r}")
    }
    fn reference(&self, inputs: &[&Tensor], output: Shape) -> Tensor {
        let input = inputs[0];
        let mut out = Tensor::zeros(output);
        let [t, l, _, _] = self.pads;
        for c in 0..input.shape.c {
            for y in 0..input.shape.h {
                for x in 0..input.shape.w {
                    out.data[(c * output.h + y + t) * output.w + x + l] = input.at(c, y, x);
                }
            }
        }
        out
    }
}
