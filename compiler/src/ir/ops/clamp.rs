use super::{expect_inputs, Operator};
use crate::ir::{Shape, Tensor};

/// `min(max(x, min), max)`: Relu is `Clamp { min: 0, max: inf }`, Relu6 is `Clamp { min: 0, max: 6 }`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Clamp {
    pub min: f32,
    pub max: f32,
}

impl Clamp {
    pub const RELU: Clamp = Clamp {
        min: 0.0,
        max: f32::INFINITY,
    };
    pub const RELU6: Clamp = Clamp { min: 0.0, max: 6.0 };

    #[inline]
    pub fn apply(&self, x: f32) -> f32 {
        x.max(self.min).min(self.max)
    }
    /// Clamping twice is clamping once to the intersection.
    pub fn then(self, next: Clamp) -> Clamp {
        Clamp {
            min: self.min.max(next.min),
            max: self.max.min(next.max),
        }
    }
    pub fn name(&self) -> String {
        if *self == Clamp::RELU {
            "relu".into()
        } else if *self == Clamp::RELU6 {
            "relu6".into()
        } else {
            format!("clamp({}, {})", self.min, self.max)
        }
    }
}

impl Operator for Clamp {
    fn kind(&self) -> &'static str {
        "Clamp"
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape, String> {
        expect_inputs(inputs, 1, "Clamp")?;
        Ok(inputs[0])
    }
    fn describe(&self) -> String {
        self.name()
    }
    fn reference(&self, inputs: &[&Tensor], output: Shape) -> Tensor {
        Tensor::from_vec(
            output,
            inputs[0].data.iter().map(|&x| self.apply(x)).collect(),
        )
    }
}
