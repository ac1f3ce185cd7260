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
    /// Clamping twice is clamping once to the first range's ends as the second clamps them: the
    /// intersection when the ranges overlap, a constant when they do not (the intersection would
    /// then be empty, and clamping to it wrong; the ONNX fuzzer found `Clip(min=-0.45)` then
    /// `Clip(max=-0.5)` then `Relu` fused into a clamp to [0, -0.5]).
    pub fn then(self, next: Clamp) -> Clamp {
        Clamp {
            min: next.apply(self.min),
            max: next.apply(self.max),
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

#[cfg(test)]
mod tests {
    use super::Clamp;

    /// `a.then(b)` must compute `b(a(x))` for overlapping, nested and disjoint ranges.
    #[test]
    fn merged_clamps_compute_the_composition() {
        let ranges = [
            Clamp::RELU,
            Clamp::RELU6,
            Clamp {
                min: -0.453125,
                max: f32::INFINITY,
            },
            Clamp {
                min: f32::NEG_INFINITY,
                max: -0.5,
            },
            Clamp { min: 2.0, max: 3.0 },
            Clamp {
                min: -1.0,
                max: 1.0,
            },
        ];
        for a in ranges {
            for b in ranges {
                let merged = a.then(b);
                for x in [-10.0f32, -0.5, -0.46, 0.0, 0.5, 2.5, 6.0, 10.0] {
                    assert_eq!(
                        merged.apply(x),
                        b.apply(a.apply(x)),
                        "{a:?} then {b:?} at {x}"
                    );
                }
            }
        }
    }
}
