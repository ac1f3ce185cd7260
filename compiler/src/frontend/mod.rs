//! Front end: ONNX (through tract) into the IR. This is the only module that knows tract.

mod onnx;
mod shapes;

pub use onnx::{
    load_backbone, load_backbone_bytes, load_backbone_proto, run_with_tract, Backbone,
    BackboneOptions, TractInput, TractRunner,
};
/// The ONNX protobuf types (tract's), for building graphs in code.
pub use tract_onnx::pb as onnx_pb;

/// Largest input width or height fomo-ad accepts (from `--input-size`, an ONNX file or a model's
/// metadata): far above any microcontroller camera, and small enough that the reference executor's
/// activations stay within memory (a size field in a file must not make it allocate gigabytes).
pub const MAX_INPUT_SIDE: usize = 2048;

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
