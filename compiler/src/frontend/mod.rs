//! Front end: ONNX (through tract) into the IR. This is the only module that knows tract.

mod onnx;

pub use onnx::{
    load_backbone, load_backbone_bytes, run_with_tract, Backbone, BackboneOptions, TractInput,
    TractRunner,
};

/// ONNX op types a backbone may contain (on the path to its feature output). Everything else is
/// rejected before tract sees the graph, with the node and op named.
pub const SUPPORTED_ONNX_OPS: &[&str] = &[
    "Conv",
    "BatchNormalization",
    "Relu",
    "Clip",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "AveragePool",
    "MaxPool",
    "Pad",
    "Concat",
    "Transpose",
    "Reshape",
    "Identity",
    "Dropout",
    "Constant",
    "Cast",
    "Squeeze",
    "Unsqueeze",
];
