use super::{expect_inputs, Operator};
use crate::ir::{Shape, Tensor};

/// `y[c] = x[c] * scale[c] + bias[c]`: what BatchNormalization and Mul / Add / Sub / Div by
/// constants become before they are folded into a neighbouring convolution.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelAffine {
    pub scale: Vec<f32>,
    pub bias: Vec<f32>,
}

impl ChannelAffine {
    pub fn identity(channels: usize) -> ChannelAffine {
        ChannelAffine {
            scale: vec![1.0; channels],
            bias: vec![0.0; channels],
        }
    }
    /// `self` followed by `next`.
    pub fn then(&self, next: &ChannelAffine) -> ChannelAffine {
        ChannelAffine {
            scale: self
                .scale
                .iter()
                .zip(&next.scale)
                .map(|(a, b)| a * b)
                .collect(),
            bias: self
                .bias
                .iter()
                .zip(&next.scale)
                .zip(&next.bias)
                .map(|((b0, s1), b1)| b0 * s1 + b1)
                .collect(),
        }
    }
}

impl Operator for ChannelAffine {
    fn kind(&self) -> &'static str {
        "ChannelAffine"
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape, String> {
        expect_inputs(inputs, 1, "ChannelAffine")?;
        if self.scale.len() != inputs[0].c || self.bias.len() != inputs[0].c {
            return Err(format!(
                "{} per-channel factors for {} channels",
                self.scale.len(),
                inputs[0].c
            ));
        }
        Ok(inputs[0])
    }
    fn params(&self) -> usize {
        self.scale.len() + self.bias.len()
    }
    fn describe(&self) -> String {
        format!("x * scale[c] + bias[c] over {} channels", self.scale.len())
    }
    fn reference(&self, inputs: &[&Tensor], output: Shape) -> Tensor {
        let plane = output.h * output.w;
        let data = inputs[0]
            .data
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                let c = i / plane;
                x * self.scale[c] + self.bias[c]
            })
            .collect();
        Tensor::from_vec(output, data)
    }
}
