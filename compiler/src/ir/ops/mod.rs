//! The operators of the IR. One operator = one type implementing [`Operator`]; the [`Op`] enum
//! below is the single place that registers them all.

mod add;
mod affine;
mod clamp;
mod concat;
mod conv;
mod pad;
mod pool;

pub use add::Add;
pub use affine::ChannelAffine;
pub use clamp::Clamp;
pub use concat::Concat;
pub use conv::Conv;
pub use pad::Pad;
pub use pool::{AvgPool, MaxPool, Window};

use super::{Shape, Tensor};

/// What every IR operator knows about itself.
pub trait Operator {
    /// Short op name shown by `inspect` and in generated comments.
    fn kind(&self) -> &'static str;
    /// Static output shape for the given input shapes, or why the inputs do not fit.
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape, String>;
    /// Number of f32 constants the op carries.
    fn params(&self) -> usize {
        0
    }
    /// Multiply-accumulates of one execution (convolutions only, as published MAC counts do).
    fn macs(&self, _inputs: &[Shape], _output: Shape) -> u64 {
        0
    }
    /// Attributes in one short human-readable line.
    fn describe(&self) -> String;
    /// Plain reference execution: the oracle every generated kernel is checked against.
    fn reference(&self, inputs: &[&Tensor], output: Shape) -> Tensor;
}

/// Every operator the IR has.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    Conv(Conv),
    Clamp(Clamp),
    ChannelAffine(ChannelAffine),
    Add(Add),
    AvgPool(AvgPool),
    MaxPool(MaxPool),
    Pad(Pad),
    Concat(Concat),
}

impl Op {
    pub fn operator(&self) -> &dyn Operator {
        match self {
            Op::Conv(op) => op,
            Op::Clamp(op) => op,
            Op::ChannelAffine(op) => op,
            Op::Add(op) => op,
            Op::AvgPool(op) => op,
            Op::MaxPool(op) => op,
            Op::Pad(op) => op,
            Op::Concat(op) => op,
        }
    }
    pub fn kind(&self) -> &'static str {
        self.operator().kind()
    }
    pub fn output_shape(&self, inputs: &[Shape]) -> Result<Shape, String> {
        self.operator().output_shape(inputs)
    }
    pub fn params(&self) -> usize {
        self.operator().params()
    }
    pub fn macs(&self, inputs: &[Shape], output: Shape) -> u64 {
        self.operator().macs(inputs, output)
    }
    pub fn describe(&self) -> String {
        self.operator().describe()
    }
    pub fn reference(&self, inputs: &[&Tensor], output: Shape) -> Tensor {
        self.operator().reference(inputs, output)
    }
}

pub(crate) fn expect_inputs(inputs: &[Shape], n: usize, kind: &str) -> Result<(), String> {
    if inputs.len() == n {
        Ok(())
    } else {
        Err(format!("{kind} takes {n} input(s), got {}", inputs.len()))
    }
}

/// Output length of a sliding window along one axis (floor mode, as ONNX and Keras compute it).
pub(crate) fn window_output(
    input: usize,
    pad_before: usize,
    pad_after: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
) -> Result<usize, String> {
    let padded = input + pad_before + pad_after;
    let span = dilation * (kernel - 1) + 1;
    if kernel == 0 || stride == 0 || padded < span {
        return Err(format!("window {kernel} (stride {stride}) does not fit an axis of {input} padded by {pad_before}+{pad_after}"));
    }
    Ok((padded - span) / stride + 1)
}
