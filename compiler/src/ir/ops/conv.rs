use super::{expect_inputs, Clamp, Operator, Window};
use crate::ir::{Shape, Tensor};

/// 2-D convolution with bias and an optionally fused clamp. Weights are OIHW with `I = in / groups`.
#[derive(Clone, Debug, PartialEq)]
pub struct Conv {
    pub in_channels: usize,
    pub out_channels: usize,
    pub groups: usize,
    pub window: Window,
    /// `[out_channels][in_channels / groups][kh][kw]`
    pub weights: Vec<f32>,
    pub bias: Vec<f32>,
    pub activation: Option<Clamp>,
}

impl Conv {
    pub fn in_per_group(&self) -> usize {
        self.in_channels / self.groups
    }
    pub fn out_per_group(&self) -> usize {
        self.out_channels / self.groups
    }
    pub fn is_depthwise(&self) -> bool {
        self.groups > 1 && self.groups == self.in_channels && self.groups == self.out_channels
    }
    pub fn is_pointwise(&self) -> bool {
        self.window.kernel == [1, 1]
            && self.window.stride == [1, 1]
            && self.window.pads == [0; 4]
            && self.groups == 1
    }
    pub fn weight_index(&self, o: usize, i: usize, ky: usize, kx: usize) -> usize {
        let [kh, kw] = self.window.kernel;
        ((o * self.in_per_group() + i) * kh + ky) * kw + kx
    }
    /// Which flavour of kernel this convolution needs.
    pub fn flavour(&self) -> &'static str {
        if self.is_pointwise() {
            "pointwise"
        } else if self.is_depthwise() {
            "depthwise"
        } else {
            "general"
        }
    }
}

impl Operator for Conv {
    fn kind(&self) -> &'static str {
        "Conv"
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape, String> {
        expect_inputs(inputs, 1, "Conv")?;
        let input = inputs[0];
        if input.c != self.in_channels {
            return Err(format!(
                "Conv expects {} input channels, got {}",
                self.in_channels, input.c
            ));
        }
        if self.groups == 0
            || !self.in_channels.is_multiple_of(self.groups)
            || !self.out_channels.is_multiple_of(self.groups)
        {
            return Err(format!(
                "{} groups do not divide {} -> {} channels",
                self.groups, self.in_channels, self.out_channels
            ));
        }
        let [kh, kw] = self.window.kernel;
        if self.weights.len() != self.out_channels * self.in_per_group() * kh * kw
            || self.bias.len() != self.out_channels
        {
            return Err("Conv weights or bias do not match its channels and kernel".into());
        }
        let (h, w) = self.window.output_hw(input)?;
        Ok(Shape::new(self.out_channels, h, w))
    }
    fn params(&self) -> usize {
        self.weights.len() + self.bias.len()
    }
    fn macs(&self, _inputs: &[Shape], output: Shape) -> u64 {
        let [kh, kw] = self.window.kernel;
        (output.len() * self.in_per_group() * kh * kw) as u64
    }
    fn describe(&self) -> String {
        let mut s = format!(
            "{} {} -> {}",
            self.window.describe(),
            self.in_channels,
            self.out_channels
        );
        if self.groups > 1 {
            s += &format!(" groups {}", self.groups);
        }
        if let Some(a) = self.activation {
            s += &format!(", {}", a.name());
        }
        s
    }
    fn reference(&self, inputs: &[&Tensor], output: Shape) -> Tensor {
        let input = inputs[0];
        let [kh, kw] = self.window.kernel;
        let plane = output.h * output.w;
        let mut out = Tensor::zeros(output);
        for o in 0..self.out_channels {
            let group = o / self.out_per_group();
            let acc = &mut out.data[o * plane..(o + 1) * plane];
            acc.fill(self.bias[o]);
            for i in 0..self.in_per_group() {
                let channel = group * self.in_per_group() + i;
                for ky in 0..kh {
                    for kx in 0..kw {
                        let weight = self.weights[self.weight_index(o, i, ky, kx)];
                        for oy in 0..output.h {
                            let Some(y) = self.window.source(0, oy, ky, input.shape.h) else {
                                continue;
                            };
                            for ox in 0..output.w {
                                if let Some(x) = self.window.source(1, ox, kx, input.shape.w) {
                                    acc[oy * output.w + ox] += weight * input.at(channel, y, x);
                                }
                            }
                        }
                    }
                }
            }
            if let Some(act) = self.activation {
                acc.iter_mut().for_each(|v| *v = act.apply(*v));
            }
        }
        out
    }
}
