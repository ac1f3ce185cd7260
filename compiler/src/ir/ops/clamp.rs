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
    /// Clamping twice is clamping once to the first range's ends clamped by the second: not the
    /// intersection, which is empty when the ranges are disjoint (Clip(-0.5, -0.45) then Relu is
    /// 0 everywhere; the onnx_graph fuzzer found the intersection giving -0.45).
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
    use super::*;

    #[test]
    fn clamping_twice_equals_the_merged_clamp_even_for_disjoint_ranges() {
        let ranges = [
            Clamp::RELU,
            Clamp::RELU6,
            Clamp {
                min: -0.5,
                max: -0.45,
            },
            Clamp { min: 2.0, max: 9.0 },
            Clamp {
                min: f32::NEG_INFINITY,
                max: -1.0,
            },
            Clamp { min: 1.0, max: 0.5 }, // min above max: everything becomes max
        ];
        for first in ranges {
            for second in ranges {
                let merged = first.then(second);
                for x in [-10.0, -0.48, -0.1, 0.0, 0.7, 3.0, 7.0, 100.0, f32::INFINITY] {
                    assert_eq!(
                        merged.apply(x),
                        second.apply(first.apply(x)),
                        "{first:?} then {second:?} at {x}"
                    );
                }
            }
        }
    }
}
