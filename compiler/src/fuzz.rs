//! Entry points of the fuzz targets in `fuzz/`. Each takes arbitrary bytes and must only ever
//! return: whatever the input, no panic, no abort, no allocation driven by a size in the input.
//! Errors are fine (that is what bad input gives); a panic is a bug. The cargo-fuzz targets are
//! one-line wrappers around these functions, and `tests/tests/fuzz_regressions.rs` replays the
//! seed corpus ([`seeds`]) and every saved crashing input through them in a normal `cargo test`.
//!
//! Where a target's input is structured (a model's parts, a graph, a folder tree), the bytes are
//! read as a sequence of choices by [`Choices`], so that every byte string is a valid input.

use std::path::Path;

use crate::artifact::{self, BackboneSpec, InputSpec, ModelMeta, TrainingInfo};
use crate::codegen::program::{Identity, ScorerSpec, Source};
use crate::data::{Preprocess, Resize, Scaling};
use crate::frontend::{onnx_pb as pb, BackboneOptions};
use crate::ir::ops::{Conv, Window};
use crate::ir::{Graph, InputLayout, Node, Op, Shape, Tensor};
use crate::scorer::{self, Scorer};

/// The fuzz targets, by name (also the directory names under `fuzz/seeds/` and
/// `fuzz/regressions/`).
pub const TARGETS: &[&str] = &[
    "artifact",
    "artifact_parts",
    "onnx",
    "onnx_graph",
    "image",
    "dataset",
];

/// Runs target `name` on `data`: whether the input was accepted (got past the loader), for
/// measuring how deep a corpus reaches. Panics on an unknown name.
pub fn run(name: &str, data: &[u8]) -> bool {
    match name {
        "artifact" => artifact(data),
        "artifact_parts" => artifact_parts(data),
        "onnx" => onnx(data),
        "onnx_graph" => onnx_graph(data),
        "image" => image(data),
        "dataset" => dataset(data),
        other => panic!("unknown fuzz target `{other}`"),
    }
}

/// Reads bytes as choices; past the end every choice is 0, so any input is complete.
pub struct Choices<'a> {
    data: &'a [u8],
}

impl<'a> Choices<'a> {
    pub fn new(data: &'a [u8]) -> Choices<'a> {
        Choices { data }
    }
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }
    /// A number in `0..n` (`n` > 0): one byte, or two when `n` > 256.
    pub fn below(&mut self, n: usize) -> usize {
        if n <= 256 {
            self.byte() as usize % n
        } else {
            ((self.byte() as usize) << 8 | self.byte() as usize) % n
        }
    }
    pub fn pick<T: Copy>(&mut self, options: &[T]) -> T {
        options[self.below(options.len())]
    }
    pub fn flag(&mut self) -> bool {
        self.byte() & 1 == 1
    }
    /// Up to `max` bytes.
    pub fn bytes(&mut self, max: usize) -> &'a [u8] {
        let n = self.below(max + 1).min(self.data.len());
        let (taken, rest) = self.data.split_at(n);
        self.data = rest;
        taken
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    /// A small float, sometimes a special value (zero, negative, huge, NaN, infinity).
    pub fn float(&mut self) -> f32 {
        match self.byte() {
            0 => f32::NAN,
            1 => f32::INFINITY,
            2 => f32::NEG_INFINITY,
            3 => f32::MAX,
            4 => 1e-30,
            5 => 0.0,
            6 => f32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()]),
            b => (b as f32 - 128.0) / 32.0,
        }
    }
}

fn fuzz_path(name: &str) -> std::path::PathBuf {
    Path::new("<fuzz>").join(name)
}

// ---------------------------------------------------------------------------------------------
// Artifacts

/// Raw bytes as a model file.
pub fn artifact(data: &[u8]) -> bool {
    match artifact::from_bytes(&fuzz_path("model.safetensors"), data) {
        Ok((meta, scorer)) => {
            use_model(&meta, scorer.as_ref());
            true
        }
        Err(_) => false,
    }
}

/// A model file assembled from parts, so that the metadata JSON and the tensors can be mutated
/// independently: `[json length: u16 le][json][tensors...]`, each tensor being a name, a dtype,
/// a shape and values read by [`Choices`].
pub fn artifact_parts(data: &[u8]) -> bool {
    assemble_artifact(data).is_some_and(|bytes| artifact(&bytes))
}

const TENSOR_NAMES: &[&str] = &[
    scorer::PATCHCORE_MEMORY_BANK,
    scorer::GMM_MEANS,
    scorer::GMM_PRECISIONS_CHOLESKY,
    scorer::GMM_LOG_WEIGHTS,
    scorer::GMM_PROJECTION,
    "other",
];

/// The model file [`artifact_parts`] builds from `data`.
pub fn assemble_artifact(data: &[u8]) -> Option<Vec<u8>> {
    use safetensors::tensor::{Dtype, TensorView};
    if data.len() < 2 {
        return None;
    }
    let json_len = u16::from_le_bytes([data[0], data[1]]) as usize;
    let json_end = (2 + json_len).min(data.len());
    let json = String::from_utf8_lossy(&data[2..json_end]).into_owned();
    let mut choices = Choices::new(&data[json_end..]);
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    while !choices.is_empty() && tensors.len() < 6 {
        let name = choices.pick(TENSOR_NAMES).to_string();
        let dtype = choices.pick(&[
            Dtype::F32,
            Dtype::F32,
            Dtype::F32,
            Dtype::F64,
            Dtype::I32,
            Dtype::U8,
            Dtype::F16,
        ]);
        let rank = choices.below(4);
        let shape: Vec<usize> = (0..rank).map(|_| choices.below(17)).collect();
        let len: usize = shape.iter().product::<usize>() * dtype.bitsize() / 8;
        let mut values = Vec::with_capacity(len);
        while values.len() < len {
            if dtype == Dtype::F32 {
                values.extend_from_slice(&choices.float().to_le_bytes());
            } else {
                values.push(choices.byte());
            }
        }
        values.truncate(len);
        if tensors.iter().all(|t| t.0 != name) {
            tensors.push((name, dtype, shape, values));
        }
    }
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .filter_map(|(name, dtype, shape, values)| {
            TensorView::new(*dtype, shape.clone(), values)
                .ok()
                .map(|v| (name.clone(), v))
        })
        .collect();
    let metadata = std::collections::HashMap::from([(artifact::METADATA_KEY.to_string(), json)]);
    safetensors::serialize(views, Some(metadata)).ok()
}

/// What the commands do with a model they loaded: score a feature map of its grid, and lower and
/// emit it (on a stand-in backbone of the right shape) as `compile` does.
fn use_model(meta: &ModelMeta, scorer: &dyn Scorer) {
    let [h, w, c] = meta.feature_grid;
    if h * w * c > 1 << 16 || c > 512 {
        return; // valid, but too slow to run on every fuzz input
    }
    let shape = Shape::new(c, h, w);
    let features = Tensor::from_vec(
        shape,
        (0..shape.len()).map(|i| (i % 7) as f32 * 0.25).collect(),
    );
    let cells = scorer.score(&features);
    assert_eq!(
        cells.len(),
        meta.grid[0] * meta.grid[1],
        "a loaded model scores a different number of cells than its grid"
    );
    let graph = stand_in_backbone(shape);
    let Ok(spec) = ScorerSpec::from_scorer(scorer) else {
        return;
    };
    let source = Source {
        graph: &graph,
        scorer: spec,
        input_scale: vec![1.0 / 255.0; c],
        input_offset: vec![0.0; c],
        threshold: meta.threshold,
        model: Identity {
            name: "fuzz.safetensors".into(),
            sha256: "0".repeat(64),
        },
        backbone: Identity {
            name: "fuzz.onnx".into(),
            sha256: "0".repeat(64),
        },
        options: vec![],
    };
    if let Ok(program) = crate::codegen::lower(&source) {
        let _ = crate::codegen::c::emit(&program, crate::codegen::c::DEFAULT_NAME);
    }
}

/// A one-layer backbone (a 1x1 convolution) whose input and output have `shape`.
fn stand_in_backbone(shape: Shape) -> Graph {
    let mut graph = Graph {
        tensors: vec![],
        nodes: vec![],
        input: crate::ir::TensorId(0),
        output: crate::ir::TensorId(0),
        input_layout: InputLayout::Nchw,
        output_layout: InputLayout::Nchw,
    };
    let input = graph.add_tensor("input", shape);
    let output = graph.add_tensor("features", shape);
    let c = shape.c;
    graph.nodes.push(Node {
        name: "features".into(),
        op: Op::Conv(Conv {
            in_channels: c,
            out_channels: c,
            groups: 1,
            window: Window {
                kernel: [1, 1],
                stride: [1, 1],
                dilation: [1, 1],
                pads: [0; 4],
            },
            weights: (0..c * c)
                .map(|i| if i % (c + 1) == 0 { 1.0 } else { 0.0 })
                .collect(),
            bias: vec![0.0; c],
            activation: None,
        }),
        inputs: vec![input],
        output,
    });
    graph.input = input;
    graph.output = output;
    graph
}

// ---------------------------------------------------------------------------------------------
// ONNX

/// Raw bytes as a backbone file.
pub fn onnx(data: &[u8]) -> bool {
    let path = fuzz_path("backbone.onnx");
    crate::frontend::load_backbone_bytes(&path, data, &BackboneOptions::default())
        .map(|backbone| use_backbone(backbone.graph))
        .is_ok()
}

/// A backbone graph built from choices: up to 8 nodes of the ops fomo-ad supports (and a few it
/// does not), with random attributes, shapes and constants, lowered from the protobuf structure.
pub fn onnx_graph(data: &[u8]) -> bool {
    let proto = build_graph(&mut Choices::new(data));
    let path = fuzz_path("graph.onnx");
    let options = BackboneOptions::default();
    crate::frontend::load_backbone_proto(&path, &proto, String::new(), &options)
        .map(|backbone| use_backbone(backbone.graph))
        .is_ok()
}

/// What the commands do with a lowered backbone: optimise it, run the reference executor on it
/// (checking that the optimised graph computes what the original did) and lower it to a program.
fn use_backbone(graph: Graph) {
    graph
        .validate()
        .expect("the front end only returns valid graphs");
    if graph.total_macs() > 4_000_000 || graph.input_shape().len() > 1 << 16 {
        return; // valid, but too slow to run on every fuzz input
    }
    let mut optimized = graph.clone();
    crate::passes::optimize(&mut optimized, &mut []);
    optimized.validate().expect("the passes keep graphs valid");
    let shape = graph.input_shape();
    let input = Tensor::from_vec(
        shape,
        (0..shape.len())
            .map(|i| ((i * 37) % 101) as f32 / 101.0)
            .collect(),
    );
    // Every intermediate, not only the output: folding reassociates products (a BatchNorm scale
    // moves into the weights), which is exact in real arithmetic but not near f32::MAX, and a
    // clamp after a huge intermediate hides the magnitude from the output (the onnx fuzzer's
    // BatchNorm scale of 2.3e38 overflowed the folded sums to inf - inf).
    // One run gives both: every node's output, then the graph's output last.
    let mut kept: Vec<_> = graph.nodes.iter().map(|node| node.output).collect();
    kept.push(graph.output);
    let mut intermediates = crate::exec::run_keeping(&graph, &input, &kept);
    let reference = intermediates
        .pop()
        .expect("run_keeping returns one tensor per kept id");
    let fast = crate::exec::run(&optimized, &input);
    assert_eq!(
        reference.shape, fast.shape,
        "optimising changed the output shape"
    );
    let well_conditioned = intermediates
        .iter()
        .flat_map(|t| &t.data)
        .all(|v| v.is_finite() && v.abs() < 1e6);
    if well_conditioned {
        let scale = reference.data.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        for (i, (a, b)) in reference.data.iter().zip(&fast.data).enumerate() {
            assert!(
                (a - b).abs() <= 1e-3 * scale,
                "optimised graph differs at {i}: {a} vs {b} (scale {scale})"
            );
        }
    }
    let out = optimized.output_shape();
    let graph_for_program = optimized;
    let source = Source {
        graph: &graph_for_program,
        scorer: ScorerSpec::PatchCore {
            pool: 1,
            neighbors: 1,
            memory_bank: vec![0.5; out.c],
            dim: out.c,
        },
        input_scale: vec![1.0 / 255.0; shape.c],
        input_offset: vec![0.0; shape.c],
        threshold: 1.0,
        model: Identity {
            name: "fuzz.safetensors".into(),
            sha256: "0".repeat(64),
        },
        backbone: Identity {
            name: "fuzz.onnx".into(),
            sha256: "0".repeat(64),
        },
        options: vec![],
    };
    if let Ok(program) = crate::codegen::lower(&source) {
        let _ = crate::codegen::c::emit(&program, crate::codegen::c::DEFAULT_NAME);
    }
}

const FLOAT: i32 = 1;

fn dims_value(dims: &[i64]) -> pb::TypeProto {
    use pb::tensor_shape_proto::{dimension::Value, Dimension};
    pb::TypeProto {
        value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
            elem_type: FLOAT,
            shape: Some(pb::TensorShapeProto {
                dim: dims
                    .iter()
                    .map(|&d| Dimension {
                        value: Some(if d < 0 {
                            Value::DimParam(format!("d{}", -d))
                        } else {
                            Value::DimValue(d)
                        }),
                        ..Default::default()
                    })
                    .collect(),
            }),
        })),
        ..Default::default()
    }
}

fn attr_int(name: &str, i: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i,
        ..Default::default()
    }
}

fn attr_ints(name: &str, ints: Vec<i64>) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints,
        ..Default::default()
    }
}

fn attr_float(name: &str, f: f32) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Float as i32,
        f,
        ..Default::default()
    }
}

fn attr_string(name: &str, s: &str) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::String as i32,
        s: s.as_bytes().to_vec(),
        ..Default::default()
    }
}

/// Builds a graph while tracking (as the generator believes) each activation's channel count.
struct GraphBuilder<'c, 'a> {
    choices: &'c mut Choices<'a>,
    graph: pb::GraphProto,
    /// Activations so far: (name, channels).
    activations: Vec<(String, usize)>,
}

impl GraphBuilder<'_, '_> {
    fn constant(&mut self, name: &str, dims: Vec<i64>) -> String {
        let len: i64 = dims.iter().product();
        let values = (0..len.max(0)).map(|_| {
            // Mostly tame values so that deep graphs stay finite.
            if self.choices.byte() < 250 {
                (self.choices.byte() as f32 - 128.0) / 256.0
            } else {
                self.choices.float()
            }
        });
        let tensor = pb::TensorProto {
            dims,
            data_type: FLOAT,
            float_data: values.collect(),
            name: name.into(),
            ..Default::default()
        };
        self.graph.initializer.push(tensor);
        name.to_string()
    }

    fn node(
        &mut self,
        op: &str,
        inputs: Vec<String>,
        attributes: Vec<pb::AttributeProto>,
        channels: usize,
    ) {
        let name = format!("n{}_{op}", self.graph.node.len());
        self.graph.node.push(pb::NodeProto {
            input: inputs,
            output: vec![name.clone()],
            name: name.clone(),
            op_type: op.into(),
            attribute: attributes,
            ..Default::default()
        });
        self.activations.push((name, channels));
    }

    fn window_attributes(&mut self, kernel: [i64; 2]) -> Vec<pb::AttributeProto> {
        let mut attributes = vec![attr_ints("kernel_shape", kernel.to_vec())];
        let stride = [
            1 + self.choices.below(3) as i64,
            1 + self.choices.below(3) as i64,
        ];
        attributes.push(attr_ints("strides", stride.to_vec()));
        match self.choices.below(4) {
            0 => attributes.push(attr_string("auto_pad", "SAME_UPPER")),
            1 => attributes.push(attr_string("auto_pad", "VALID")),
            _ => {
                let pads = (0..4).map(|_| self.choices.below(4) as i64).collect();
                attributes.push(attr_ints("pads", pads));
            }
        }
        attributes
    }
}

/// The ONNX model [`onnx_graph`] builds from `choices`.
pub fn build_graph(choices: &mut Choices) -> pb::ModelProto {
    let channels = 1 + choices.below(4);
    let side = |c: &mut Choices| 8 * (1 + c.below(4)) as i64;
    let (h, w) = (side(choices), side(choices));
    let nhwc = choices.below(4) == 3;
    let input_dims = match (nhwc, choices.below(8)) {
        (_, 7) => vec![-1, channels as i64, -2, -3], // symbolic batch and spatial sizes
        (true, _) => vec![1, h, w, channels as i64],
        (false, _) => vec![1, channels as i64, h, w],
    };
    let mut b = GraphBuilder {
        choices,
        graph: pb::GraphProto {
            name: "fuzz".into(),
            ..Default::default()
        },
        activations: vec![],
    };
    b.graph.input.push(pb::ValueInfoProto {
        name: "input".into(),
        r#type: Some(dims_value(&input_dims)),
        ..Default::default()
    });
    if nhwc {
        b.graph.node.push(pb::NodeProto {
            input: vec!["input".into()],
            output: vec!["input_nchw".into()],
            name: "to_nchw".into(),
            op_type: "Transpose".into(),
            attribute: vec![attr_ints("perm", vec![0, 3, 1, 2])],
            ..Default::default()
        });
        b.activations.push(("input_nchw".into(), channels));
    } else {
        b.activations.push(("input".into(), channels));
    }
    let nodes = 1 + b.choices.below(8);
    for i in 0..nodes {
        let (x, c) = b
            .activations
            .last()
            .cloned()
            .expect("the input is an activation");
        match b.choices.below(14) {
            0..=3 => {
                let groups = if b.choices.flag() { c } else { 1 };
                let out = if groups == c && b.choices.flag() {
                    c
                } else {
                    1 + b.choices.below(8)
                };
                let out = if groups > 1 {
                    groups * (1 + b.choices.below(2))
                } else {
                    out
                };
                let k = [1 + b.choices.below(5) as i64, 1 + b.choices.below(5) as i64];
                let mut attributes = b.window_attributes(k);
                attributes.push(attr_int("group", groups as i64));
                if b.choices.below(4) == 3 {
                    attributes.push(attr_ints(
                        "dilations",
                        vec![2, 1 + b.choices.below(2) as i64],
                    ));
                }
                let weight_dims = vec![out as i64, (c / groups) as i64, k[0], k[1]];
                let wname = b.constant(&format!("w{i}"), weight_dims);
                let mut inputs = vec![x, wname];
                if b.choices.flag() {
                    inputs.push(b.constant(&format!("b{i}"), vec![out as i64]));
                }
                b.node("Conv", inputs, attributes, out);
            }
            4 => b.node("Relu", vec![x], vec![], c),
            5 => {
                let lo = b.constant(&format!("lo{i}"), vec![]);
                let hi = b.constant(&format!("hi{i}"), vec![]);
                b.node("Clip", vec![x, lo, hi], vec![], c);
            }
            6 => {
                let op = b.choices.pick(&["Mul", "Add", "Sub", "Div", "Max"]);
                let c = c as i64;
                let dims = match b.choices.below(5) {
                    0 => vec![],
                    1 => vec![c],
                    2 => vec![1, c, 1, 1],
                    3 => vec![c, 1, 1],
                    _ => vec![1, 1, 1, 2],
                };
                let k = b.constant(&format!("k{i}"), dims);
                let inputs = if b.choices.flag() {
                    vec![x, k]
                } else {
                    vec![k, x]
                };
                b.node(op, inputs, vec![], c as usize);
            }
            7 => {
                let inputs = vec![
                    x,
                    b.constant(&format!("scale{i}"), vec![c as i64]),
                    b.constant(&format!("bias{i}"), vec![c as i64]),
                    b.constant(&format!("mean{i}"), vec![c as i64]),
                    b.constant(&format!("var{i}"), vec![c as i64]),
                ];
                b.node(
                    "BatchNormalization",
                    inputs,
                    vec![attr_float("epsilon", 1e-3)],
                    c,
                );
            }
            8 | 9 => {
                let op = if b.choices.flag() {
                    "AveragePool"
                } else {
                    "MaxPool"
                };
                let k = [1 + b.choices.below(4) as i64, 1 + b.choices.below(4) as i64];
                let mut attributes = b.window_attributes(k);
                if op == "AveragePool" {
                    attributes.push(attr_int("count_include_pad", b.choices.below(2) as i64));
                }
                if b.choices.below(8) == 7 {
                    attributes.push(attr_int("ceil_mode", 1));
                }
                b.node(op, vec![x], attributes, c);
            }
            10 => {
                let pads: Vec<i64> = (0..8)
                    .map(|j| {
                        if j % 4 >= 2 {
                            b.choices.below(3) as i64
                        } else {
                            0
                        }
                    })
                    .collect();
                let pads = b.constant_i64(&format!("pads{i}"), pads);
                let mut inputs = vec![x, pads];
                let mut attributes = vec![];
                if b.choices.below(4) == 3 {
                    inputs.push(b.constant(&format!("padv{i}"), vec![]));
                }
                if b.choices.below(6) == 5 {
                    attributes.push(attr_string("mode", "reflect"));
                }
                b.node("Pad", inputs, attributes, c);
            }
            11 | 12 => {
                // Combine with an earlier activation: residual Add or channel Concat.
                let j = b.choices.below(b.activations.len());
                let (y, cy) = b.activations[j].clone();
                if b.choices.flag() {
                    b.node("Add", vec![x, y], vec![], c.max(cy));
                } else {
                    let axis = if b.choices.below(6) == 5 { 2 } else { 1 };
                    b.node("Concat", vec![x, y], vec![attr_int("axis", axis)], c + cy);
                }
            }
            _ => {
                let op = b
                    .choices
                    .pick(&["LRN", "Sigmoid", "Transpose", "Identity", "Softmax"]);
                let attributes = if op == "Transpose" {
                    vec![attr_ints("perm", vec![0, 1, 3, 2])]
                } else {
                    vec![]
                };
                b.node(op, vec![x], attributes, c);
            }
        }
    }
    let (output, _) = b
        .activations
        .last()
        .cloned()
        .expect("at least one activation");
    b.graph.output.push(pb::ValueInfoProto {
        name: output,
        ..Default::default()
    });
    if b.choices.below(16) == 15 {
        // A second graph input, never used.
        b.graph.input.push(pb::ValueInfoProto {
            name: "extra".into(),
            r#type: Some(dims_value(&[1, 3, 8, 8])),
            ..Default::default()
        });
    }
    pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        graph: Some(b.graph),
        ..Default::default()
    }
}

impl GraphBuilder<'_, '_> {
    fn constant_i64(&mut self, name: &str, values: Vec<i64>) -> String {
        self.graph.initializer.push(pb::TensorProto {
            dims: vec![values.len() as i64],
            data_type: 7, // INT64
            int64_data: values,
            name: name.into(),
            ..Default::default()
        });
        name.to_string()
    }
}

// ---------------------------------------------------------------------------------------------
// Images and data sets

/// One byte of preprocessing options, then the bytes of an image file.
pub fn image(data: &[u8]) -> bool {
    let Some((&options, file)) = data.split_first() else {
        return false;
    };
    let pre = preprocess(options);
    let Ok(pixels) = pre.load_pixels_from_bytes(&fuzz_path("image"), file) else {
        return false;
    };
    let tensor = pre.pixels_to_tensor(&pixels);
    assert_eq!(
        tensor.shape,
        Shape::new(pre.channels, pre.height, pre.width)
    );
    true
}

fn preprocess(options: u8) -> Preprocess {
    Preprocess {
        width: 8 * (1 + (options & 3) as usize),
        height: 8 * (1 + ((options >> 2) & 3) as usize),
        channels: if options & 16 == 0 { 3 } else { 1 },
        resize: if options & 32 == 0 {
            Resize::Squash
        } else {
            Resize::Crop
        },
        scaling: Scaling::Unit,
    }
}

const DATASET_DIRS: &[&str] = &[
    "train",
    "train/good",
    "train/good",
    "train/cats",
    "test",
    "test/good",
    "test/good",
    "test/scratch",
    "test/scratch",
    "test/anomaly",
    "test/no anomaly",
    "ground_truth/scratch",
    "ground_truth/scratch",
    "",
];
const DATASET_FILES: &[&str] = &[
    "a.png",
    "b.png",
    "a.png",
    "a_mask.png",
    "b_mask.png",
    "c.jpg",
    "d.bmp",
    ".hidden",
    "notes.txt",
    "e.pgm",
];

/// A data-set folder tree built from choices (folders, file names and contents: valid images of
/// chosen sizes and colour types, truncated or random files, broken links, folders named like
/// images), then opened, loaded and its masks read, as `train` and `test` do.
pub fn dataset(data: &[u8]) -> bool {
    let Ok(root) = tempfile::tempdir() else {
        return false;
    };
    let mut choices = Choices::new(data);
    let options = choices.byte();
    let (rows, cols) = (1 + choices.below(4), 1 + choices.below(4));
    for _ in 0..12 {
        if choices.is_empty() {
            break;
        }
        let dir = root.path().join(choices.pick(DATASET_DIRS));
        let path = dir.join(choices.pick(DATASET_FILES));
        if std::fs::create_dir_all(&dir).is_err() || path.exists() {
            continue;
        }
        let _ = match choices.below(10) {
            0..=5 => std::fs::write(&path, encoded_image(&mut choices)),
            6 => {
                let bytes = encoded_image(&mut choices);
                let cut = choices.below(bytes.len().max(1));
                std::fs::write(&path, &bytes[..cut])
            }
            7 => std::fs::write(&path, choices.bytes(64)),
            8 => std::fs::create_dir(&path),
            _ => broken_link(&path),
        };
    }
    let Ok(dataset) = crate::data::open_dataset(root.path()) else {
        return false;
    };
    let pre = preprocess(options);
    let _ = crate::data::load_all(&pre, &dataset.train);
    let _ = crate::data::load_all(&pre, &dataset.test);
    for sample in &dataset.test {
        if let Some(mask) = &sample.mask {
            if let Ok(cells) = crate::data::mask_cells(mask, &pre, rows, cols) {
                assert_eq!(cells.len(), rows * cols);
            }
        }
    }
    true
}

#[cfg(unix)]
fn broken_link(path: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink("/nonexistent/fomo-ad-fuzz", path)
}

#[cfg(not(unix))]
fn broken_link(path: &Path) -> std::io::Result<()> {
    std::fs::write(path, b"")
}

/// A small image (1 to 16 px a side; gray, gray+alpha, RGB or RGBA) encoded as PNG, BMP or PNM.
fn encoded_image(choices: &mut Choices) -> Vec<u8> {
    let (w, h) = (1 + choices.below(16) as u32, 1 + choices.below(16) as u32);
    let seed = choices.byte();
    let format = choices.pick(&[
        image::ImageFormat::Png,
        image::ImageFormat::Png,
        image::ImageFormat::Bmp,
        image::ImageFormat::Pnm,
    ]);
    let pixel = move |x: u32, y: u32, k: u32| (x * 31 + y * 17 + k * 7 + seed as u32) as u8;
    let image: image::DynamicImage = match choices.below(4) {
        0 => image::GrayImage::from_fn(w, h, |x, y| image::Luma([pixel(x, y, 0)])).into(),
        1 if format == image::ImageFormat::Png => {
            image::GrayAlphaImage::from_fn(w, h, |x, y| image::LumaA([pixel(x, y, 0), 255])).into()
        }
        2 if format == image::ImageFormat::Png => image::RgbaImage::from_fn(w, h, |x, y| {
            image::Rgba([pixel(x, y, 0), pixel(x, y, 1), pixel(x, y, 2), 200])
        })
        .into(),
        _ => image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([pixel(x, y, 0), pixel(x, y, 1), pixel(x, y, 2)])
        })
        .into(),
    };
    let mut bytes = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut bytes, format)
        .expect("small images encode in memory");
    bytes.into_inner()
}

// ---------------------------------------------------------------------------------------------
// Seeds

/// The seed corpus of every target: valid inputs the fuzzer starts mutating from. Written to
/// `fuzz/seeds/<target>/` (kept in sync by a test); the `onnx` target also starts from the ONNX
/// test fixtures.
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for (name, bytes) in seed_artifacts() {
        let json = artifact_json(&bytes);
        seeds.push(("artifact", name.clone(), bytes.clone()));
        let mut parts = (json.len() as u16).to_le_bytes().to_vec();
        parts.extend_from_slice(json.as_bytes());
        parts.extend(tensor_choices(&bytes));
        seeds.push(("artifact_parts", name, parts));
    }
    for (i, graph) in [
        [0u8; 0].as_slice(),
        // 3 channels, 16x16 NCHW, one 3x3 convolution with pads 1.
        &[2, 1, 1, 1, 1, 0, 0, 0, 3, 2, 2, 0, 0, 2, 1, 1, 1, 1, 1],
        // 2 channels, 24x8, NHWC, three nodes.
        &[1, 2, 0, 3, 1, 2, 8, 1, 1, 2, 1, 12, 0, 0, 4],
    ]
    .iter()
    .enumerate()
    {
        seeds.push(("onnx_graph", format!("graph{i}"), graph.to_vec()));
    }
    let formats = [
        (image::ImageFormat::Png, "png"),
        (image::ImageFormat::Jpeg, "jpg"),
        (image::ImageFormat::Bmp, "bmp"),
        (image::ImageFormat::Pnm, "ppm"),
    ];
    for (format, ext) in formats {
        for (colour, image) in [
            (
                "rgb",
                image::DynamicImage::from(image::RgbImage::from_fn(12, 9, |x, y| {
                    image::Rgb([x as u8 * 20, y as u8 * 25, 90])
                })),
            ),
            (
                "gray",
                image::DynamicImage::from(image::GrayImage::from_fn(7, 10, |x, y| {
                    image::Luma([(x * y) as u8 * 3])
                })),
            ),
        ] {
            let mut bytes = std::io::Cursor::new(vec![0x25]);
            bytes.set_position(1);
            if image.write_to(&mut bytes, format).is_ok() {
                seeds.push(("image", format!("{colour}.{ext}"), bytes.into_inner()));
            }
        }
    }
    // train/good/a.png, test/good/a.png, test/scratch/a.png (8x8 RGB PNG) and the mask of the
    // last (8x8 gray PNG); a 16x8 gray input, 2x2 cells.
    let mut mvtec = vec![0x11, 1, 1];
    for (dir, file, colour) in [(1u8, 0u8, 3u8), (5, 0, 3), (7, 0, 3), (11, 3, 0)] {
        mvtec.extend_from_slice(&[dir, file, 0, 7, 7, 0, 0, colour]);
    }
    seeds.push(("dataset", "mvtec".into(), mvtec));
    seeds
}

/// A PatchCore and two GMMs fitted on small random feature maps, as model files.
fn seed_artifacts() -> Vec<(String, Vec<u8>)> {
    let shape = Shape::new(6, 8, 8);
    let features: Vec<Tensor> = (0..3)
        .map(|k| {
            Tensor::from_vec(
                shape,
                (0..shape.len())
                    .map(|i| (((i * 7 + k * 13) % 17) as f32 / 17.0).sin())
                    .collect(),
            )
        })
        .collect();
    let none = |_: u64, _: u64| {};
    let mut scorers: Vec<(String, Box<dyn Scorer>)> = vec![];
    if let Ok(pc) = scorer::fit_patchcore(
        &features,
        &scorer::PatchCoreOptions {
            sampling_ratio: 0.03,
            ..Default::default()
        },
        &none,
    ) {
        scorers.push(("patchcore".into(), Box::new(pc)));
    }
    for (name, covariance, projection_dim) in [
        ("gmm_full", scorer::Covariance::Full, None),
        ("gmm_diag_projected", scorer::Covariance::Diag, Some(3)),
    ] {
        let options = scorer::GmmOptions {
            components: 2,
            covariance,
            projection_dim,
            ..Default::default()
        };
        if let Ok(gmm) = scorer::fit_gmm(&features, &options, &none) {
            scorers.push((name.into(), Box::new(gmm)));
        }
    }
    scorers
        .into_iter()
        .map(|(name, s)| {
            let (rows, cols) = s.grid(shape);
            let meta = ModelMeta {
                format_version: artifact::FORMAT_VERSION,
                generator: "fomo-ad fuzz seed".into(),
                scorer: s.kind(),
                scorer_config: s.metadata(),
                input: InputSpec {
                    width: 64,
                    height: 64,
                    channels: 3,
                    scaling: Scaling::Unit,
                    resize: Resize::Squash,
                },
                feature_grid: [shape.h, shape.w, shape.c],
                grid: [rows, cols],
                backbone: BackboneSpec {
                    sha256: "ab".repeat(32),
                    name: "backbone.onnx".into(),
                    cut: None,
                    feature_nodes: vec!["features".into()],
                    layers: 1,
                },
                threshold: 1.5,
                training: TrainingInfo {
                    images: 3,
                    seed: 0,
                    mean_image_score: 1.0,
                    max_image_score: 1.5,
                },
            };
            let bytes = artifact::to_bytes(&fuzz_path("seed"), &meta, s.as_ref())
                .expect("a fitted scorer serialises");
            (name, bytes)
        })
        .collect()
}

fn artifact_json(bytes: &[u8]) -> String {
    safetensors::SafeTensors::read_metadata(bytes)
        .ok()
        .and_then(|(_, header)| {
            header
                .metadata()
                .as_ref()?
                .get(artifact::METADATA_KEY)
                .cloned()
        })
        .unwrap_or_default()
}

/// The choices [`assemble_artifact`] reads back as the tensors of `bytes`.
fn tensor_choices(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let Ok(tensors) = safetensors::SafeTensors::deserialize(bytes) else {
        return out;
    };
    let mut named = tensors.tensors();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, view) in named {
        let Some(index) = TENSOR_NAMES.iter().position(|n| *n == name) else {
            continue;
        };
        // Name, dtype F32 (index 0), rank, dimensions, then every value as an exact f32.
        let shape = view.shape();
        if shape.len() > 3 || shape.iter().any(|&d| d > 16) {
            continue;
        }
        out.extend_from_slice(&[index as u8, 0, shape.len() as u8]);
        out.extend(shape.iter().map(|&d| d as u8));
        for chunk in view.data().chunks_exact(4) {
            out.push(6);
            out.extend_from_slice(chunk);
        }
    }
    out
}
