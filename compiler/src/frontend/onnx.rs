use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::array::{Pad as TractPad, PadMode, TypedConcat};
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::change_axes::AxisOp;
use tract_onnx::tract_core::ops::cnn::{
    Conv as TractConv, KernelFormat, MaxPool as TractMaxPool, PoolSpec, SumPool,
};
use tract_onnx::tract_core::ops::nn::DataFormat;
use tract_onnx::tract_core::ops::source::TypedSource;
use tract_onnx::tract_hir::infer::Factoid;

use super::SUPPORTED_ONNX_OPS;
use crate::error::{Error, Result};
use crate::ir::ops::{Add, AvgPool, ChannelAffine, Clamp, Concat, Conv, MaxPool, Pad, Window};
use crate::ir::{Graph, InputLayout, Node, Op, Shape, TensorId};

/// How to read a backbone file.
#[derive(Clone, Debug, Default)]
pub struct BackboneOptions {
    /// Input width and height; default: the graph's own static size, else 96x96.
    pub input_size: Option<(usize, usize)>,
    /// Node (or tensor) whose output becomes the feature map; default: the graph output.
    pub cut: Option<String>,
}

/// A backbone lowered into the IR, with what identifies it.
#[derive(Clone, Debug)]
pub struct Backbone {
    pub graph: Graph,
    pub path: PathBuf,
    /// sha256 of the ONNX file's bytes.
    pub sha256: String,
    /// The node whose output is the feature map.
    pub feature_node: String,
}

/// Default input side when the graph does not fix one.
const DEFAULT_SIDE: usize = 96;

pub fn load_backbone(path: &Path, options: &BackboneOptions) -> Result<Backbone> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    load_backbone_bytes(path, &bytes, options)
}

/// A backbone read by tract, with static shapes, before lowering.
struct Prepared {
    typed: TypedModel,
    catalogue: NodeCatalogue,
    layout: InputLayout,
    output_tensor: String,
}

/// Parses the protobuf.
fn parse(path: &Path, bytes: &[u8]) -> Result<ModelProto> {
    tract_onnx::onnx()
        .proto_model_for_read(&mut &bytes[..])
        .map_err(|e| {
            Error::input(
                path,
                format!("not a readable ONNX model ({})", root_cause(&e)),
            )
        })
}

/// Checks ops, fixes the input shape, applies the cut and types the graph.
fn prepare(path: &Path, proto: &ModelProto, options: &BackboneOptions) -> Result<Prepared> {
    let onnx = tract_onnx::onnx();
    let graph_proto = proto
        .graph
        .as_ref()
        .ok_or_else(|| Error::input(path, "the ONNX model has no graph"))?;
    if graph_proto.node.is_empty() {
        return Err(Error::input(
            path,
            "not a readable ONNX model (its graph has no nodes)",
        ));
    }
    let catalogue = NodeCatalogue::new(proto);
    let output_tensor = match &options.cut {
        Some(cut) => catalogue.resolve_cut(cut).ok_or_else(|| {
            Error::input(path, format!("--cut `{}`: no node or tensor of that name (try `fomo-ad inspect --backbone` to list them)", crate::error::one_line(cut)))
        })?,
        None => match graph_proto.output.as_slice() {
            [only] => only.name.clone(),
            outputs => return Err(Error::input(path, format!("the graph has {} outputs; name the feature node with --cut", outputs.len()))),
        },
    };
    catalogue.check_supported(path, &output_tensor)?;

    let mut model = onnx.model_for_proto_model(proto).map_err(|e| {
        Error::input(
            path,
            format!("cannot translate the ONNX graph ({})", root_cause(&e)),
        )
    })?;
    let inputs = model
        .input_outlets()
        .map_err(|e| Error::input(path, root_cause(&e)))?
        .to_vec();
    if inputs.len() != 1 {
        return Err(Error::input(
            path,
            format!(
                "the graph has {} inputs; a backbone takes exactly one image",
                inputs.len()
            ),
        ));
    }
    let input_name = model.node(inputs[0].node).name.clone();
    let (layout, channels, declared_hw) = input_geometry(
        path,
        &input_name,
        model
            .input_fact(0)
            .map_err(|e| Error::input(path, root_cause(&e)))?,
    )?;
    let (width, height) = options
        .input_size
        .or(declared_hw.map(|(h, w)| (w, h)))
        .unwrap_or((DEFAULT_SIDE, DEFAULT_SIDE));
    if width == 0 || height == 0 || width % 8 != 0 || height % 8 != 0 {
        return Err(Error::input(
            path,
            format!("input size {width}x{height} is not a multiple of 8"),
        ));
    }
    if width > super::MAX_INPUT_SIDE || height > super::MAX_INPUT_SIDE {
        return Err(Error::input(
            path,
            format!(
                "input size {width}x{height} is larger than {max}x{max}, the largest fomo-ad accepts (pass --input-size)",
                max = super::MAX_INPUT_SIDE
            ),
        ));
    }
    let shape: [usize; 4] = match layout {
        InputLayout::Nchw => [1, channels, height, width],
        InputLayout::Nhwc => [1, height, width, channels],
    };
    // Before tract's shape solver, which does not fail on contradicting shapes but grows without
    // bound on them.
    super::shapes::check(path, graph_proto, &input_name, &shape)?;
    model
        .set_input_fact(0, f32::fact(shape).into())
        .map_err(|e| {
            Error::input(
                path,
                format!(
                    "cannot fix input `{input_name}` to {shape:?} ({})",
                    root_cause(&e)
                ),
            )
        })?;
    let output_outlet = model
        .find_outlet_label(&output_tensor)
        .or_else(|| {
            model
                .node_by_name(&output_tensor)
                .ok()
                .map(|n| OutletId::new(n.id, 0))
        })
        .ok_or_else(|| {
            Error::input(
                path,
                format!("tensor `{output_tensor}` is not in the translated graph"),
            )
        })?;
    model
        .select_output_outlets(&[output_outlet])
        .map_err(|e| Error::input(path, root_cause(&e)))?;
    let mut typed = model.into_typed().map_err(|e| {
        Error::input(
            path,
            format!(
                "cannot make the shapes static at {width}x{height} ({})",
                root_cause(&e)
            ),
        )
    })?;
    typed
        .prop_consts()
        .map_err(|e| Error::input(path, format!("cannot fold constants ({})", root_cause(&e))))?;

    Ok(Prepared {
        typed,
        catalogue,
        layout,
        output_tensor,
    })
}

/// Loads from bytes already in memory; `path` is used for messages only.
pub fn load_backbone_bytes(
    path: &Path,
    bytes: &[u8],
    options: &BackboneOptions,
) -> Result<Backbone> {
    load_with_model(path, bytes, options).map(|(backbone, _)| backbone)
}

/// Lowers the backbone and also hands back tract's typed model it was lowered from.
fn load_with_model(
    path: &Path,
    bytes: &[u8],
    options: &BackboneOptions,
) -> Result<(Backbone, TypedModel)> {
    let sha256 = hex::encode(Sha256::digest(bytes));
    let proto = crate::error::catch_panic(path, "tract", || parse(path, bytes))?;
    lower_proto(path, &proto, sha256, options)
}

/// Lowers a backbone given as an ONNX protobuf structure rather than bytes (the structured fuzz
/// target builds graphs this way); `sha256` is recorded as given.
#[doc(hidden)]
pub fn load_backbone_proto(
    path: &Path,
    proto: &ModelProto,
    sha256: String,
    options: &BackboneOptions,
) -> Result<Backbone> {
    lower_proto(path, proto, sha256, options).map(|(backbone, _)| backbone)
}

fn lower_proto(
    path: &Path,
    proto: &ModelProto,
    sha256: String,
    options: &BackboneOptions,
) -> Result<(Backbone, TypedModel)> {
    let (graph, typed, feature_node) = crate::error::catch_panic(path, "tract", || {
        let Prepared {
            typed,
            catalogue,
            layout,
            output_tensor,
        } = prepare(path, proto, options)?;
        let graph = Lowering::new(path, &typed, &catalogue, layout)?.run()?;
        Ok((graph, typed, catalogue.producer_name(&output_tensor)))
    })?;
    graph.validate().map_err(|e| {
        Error::input(
            path,
            format!("internal: lowered graph is inconsistent: {e}"),
        )
    })?;
    let backbone = Backbone {
        graph,
        path: path.to_path_buf(),
        sha256,
        feature_node,
    };
    Ok((backbone, typed))
}

/// Runs the same backbone with tract itself (optimised, as a user of tract would): the
/// independent check of the front end and the reference executor. `input` is CHW.
pub fn run_with_tract(
    path: &Path,
    bytes: &[u8],
    options: &BackboneOptions,
    input: &crate::ir::Tensor,
) -> Result<crate::ir::Tensor> {
    let mut runner = TractRunner::new(path, bytes, options)?;
    let input = runner.prepare(input)?;
    runner.run(&input)?;
    runner.output()
}

/// tract's optimised plan of a backbone and a session of it, to run frame after frame as an
/// application embedding tract would (the tract row of `fomo-ad bench`). Single-threaded: this
/// build of tract-linalg has no `multithread-mm` feature.
pub struct TractRunner {
    path: PathBuf,
    state: TypedSimpleState,
    input_layout: InputLayout,
    output_layout: InputLayout,
    output_shape: Shape,
    outputs: TVec<TValue>,
}

/// A frame converted to tract's input (done before timing).
pub struct TractInput(TValue);

impl TractRunner {
    pub fn new(path: &Path, bytes: &[u8], options: &BackboneOptions) -> Result<TractRunner> {
        let fail = |e: TractError| Error::input(path, format!("tract: {}", root_cause(&e)));
        let (backbone, typed) = load_with_model(path, bytes, options)?;
        let plan = crate::error::catch_panic(path, "tract", || {
            typed
                .into_optimized()
                .and_then(|m| m.into_runnable())
                .map_err(fail)
        })?;
        Ok(TractRunner {
            path: path.to_path_buf(),
            state: plan.spawn().map_err(fail)?,
            input_layout: backbone.graph.input_layout,
            output_layout: backbone.graph.output_layout,
            output_shape: backbone.graph.output_shape(),
            outputs: tvec!(),
        })
    }

    /// A CHW input in the layout the ONNX graph declares.
    pub fn prepare(&self, input: &crate::ir::Tensor) -> Result<TractInput> {
        let Shape { c, h, w } = input.shape;
        let tensor = match self.input_layout {
            InputLayout::Nchw => Tensor::from_shape(&[1, c, h, w], &input.data),
            InputLayout::Nhwc => Tensor::from_shape(&[1, h, w, c], &input.to_hwc()),
        }
        .map_err(|e| self.fail(e))?;
        Ok(TractInput(tensor.into()))
    }

    /// One inference; the output stays in the runner until the next (see [`TractRunner::output`]).
    pub fn run(&mut self, input: &TractInput) -> Result<()> {
        self.outputs = tvec!();
        self.outputs = self
            .state
            .run(tvec!(input.0.clone()))
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// The feature map of the last [`TractRunner::run`], as a CHW tensor.
    pub fn output(&self) -> Result<crate::ir::Tensor> {
        let first = self
            .outputs
            .first()
            .ok_or_else(|| Error::input(&self.path, "tract: no output (not run yet)"))?;
        let output = first.cast_to::<f32>().map_err(|e| self.fail(e))?;
        let values: Vec<f32> = output
            .to_plain_array_view::<f32>()
            .map_err(|e| self.fail(e))?
            .iter()
            .copied()
            .collect();
        let shape = self.output_shape;
        Ok(match self.output_layout {
            InputLayout::Nchw => crate::ir::Tensor::from_vec(shape, values),
            InputLayout::Nhwc => crate::ir::Tensor::from_hwc(shape, &values),
        })
    }

    fn fail(&self, e: TractError) -> Error {
        Error::input(&self.path, format!("tract: {}", root_cause(&e)))
    }
}

/// tract errors are chains; the innermost cause is the one a user can act on.
fn root_cause(e: &TractError) -> String {
    let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
    crate::error::one_line(&chain.join(": "))
}

/// Layout, channel count and (if static) the spatial size (h, w) the graph declares.
type InputGeometry = (InputLayout, usize, Option<(usize, usize)>);

/// Reads the declared input shape.
fn input_geometry(path: &Path, name: &str, fact: &InferenceFact) -> Result<InputGeometry> {
    let dims: Vec<Option<usize>> = fact
        .shape
        .dims()
        .map(|d| {
            d.concretize()
                .and_then(|d| d.to_i64().ok())
                .and_then(|d| usize::try_from(d).ok())
        })
        .collect();
    if fact.shape.is_open() || dims.len() != 4 {
        return Err(Error::input(path, format!("cannot make the shape of input `{name}` static: it must have rank 4 (N, C, H, W or N, H, W, C)")));
    }
    let is_channels = |d: Option<usize>| matches!(d, Some(1..=4));
    let (layout, channels, hw) = if is_channels(dims[1]) {
        (InputLayout::Nchw, dims[1], (dims[2], dims[3]))
    } else if is_channels(dims[3]) {
        (InputLayout::Nhwc, dims[3], (dims[1], dims[2]))
    } else {
        return Err(Error::input(path, format!("cannot make the shape of input `{name}` static: its channel count is symbolic or not 1 to 4 ({dims:?})")));
    };
    let channels = channels.expect("is_channels only accepts known sizes");
    let hw = match hw {
        (Some(h), Some(w)) => Some((h, w)),
        _ => None,
    };
    Ok((layout, channels, hw))
}

/// The ONNX nodes by name and by the tensors they produce, from the protobuf.
struct NodeCatalogue {
    /// (node name, op type, inputs, outputs) in file order; unnamed nodes get `#index`.
    nodes: Vec<(String, String, Vec<String>, Vec<String>)>,
    producer: HashMap<String, usize>,
}

impl NodeCatalogue {
    fn new(proto: &ModelProto) -> NodeCatalogue {
        let graph = proto.graph.as_ref();
        let nodes: Vec<_> = graph
            .map(|g| g.node.as_slice())
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let name = if n.name.is_empty() {
                    format!("#{i}")
                } else {
                    n.name.clone()
                };
                (name, n.op_type.clone(), n.input.clone(), n.output.clone())
            })
            .collect();
        let producer = nodes
            .iter()
            .enumerate()
            .flat_map(|(i, n)| n.3.iter().map(move |o| (o.clone(), i)))
            .collect();
        NodeCatalogue { nodes, producer }
    }

    /// A cut names a node (its first output) or a tensor.
    fn resolve_cut(&self, cut: &str) -> Option<String> {
        if let Some(node) = self.nodes.iter().find(|n| n.0 == cut) {
            return node.3.first().cloned();
        }
        self.producer.contains_key(cut).then(|| cut.to_string())
    }

    fn producer_name(&self, tensor: &str) -> String {
        self.producer
            .get(tensor)
            .map_or_else(|| tensor.to_string(), |&i| self.nodes[i].0.clone())
    }

    /// Rejects unsupported ops among the nodes the output depends on (nodes past a cut may be anything).
    fn check_supported(&self, path: &Path, output: &str) -> Result<()> {
        let mut needed = HashSet::new();
        let mut stack = vec![output.to_string()];
        while let Some(tensor) = stack.pop() {
            if let Some(&i) = self.producer.get(&tensor) {
                if needed.insert(i) {
                    stack.extend(self.nodes[i].2.iter().filter(|s| !s.is_empty()).cloned());
                }
            }
        }
        let mut needed: Vec<usize> = needed.into_iter().collect();
        needed.sort_unstable();
        for i in needed {
            let (name, op, _, _) = &self.nodes[i];
            if !SUPPORTED_ONNX_OPS.contains(&op.as_str()) {
                return Err(Error::unsupported(path, name, op, ""));
            }
        }
        Ok(())
    }

    /// The ONNX node a tract node came from: tract names the nodes it adds `<onnx name>.<suffix>`.
    fn onnx_name(&self, tract_name: &str) -> String {
        self.nodes
            .iter()
            .map(|n| &n.0)
            .filter(|n| {
                tract_name == n.as_str()
                    || tract_name
                        .strip_prefix(n.as_str())
                        .is_some_and(|rest| rest.starts_with('.'))
            })
            .max_by_key(|n| n.len())
            .cloned()
            .unwrap_or_else(|| tract_name.to_string())
    }
    fn onnx_op(&self, onnx_name: &str) -> Option<&str> {
        self.nodes
            .iter()
            .find(|n| n.0 == onnx_name)
            .map(|n| n.1.as_str())
    }
}

/// Logical axes of a rank-4 activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Axis {
    N,
    C,
    H,
    W,
}

const NCHW: [Axis; 4] = [Axis::N, Axis::C, Axis::H, Axis::W];
const NHWC: [Axis; 4] = [Axis::N, Axis::H, Axis::W, Axis::C];

/// What a tract outlet holds while lowering.
#[derive(Clone)]
enum Value {
    Const(Arc<Tensor>),
    /// An IR tensor and the physical order of its axes in tract's graph.
    Activation(TensorId, [Axis; 4]),
}

struct Lowering<'a> {
    path: &'a Path,
    model: &'a TypedModel,
    catalogue: &'a NodeCatalogue,
    input_layout: InputLayout,
    graph: Graph,
    values: HashMap<OutletId, Value>,
}

impl<'a> Lowering<'a> {
    fn new(
        path: &'a Path,
        model: &'a TypedModel,
        catalogue: &'a NodeCatalogue,
        input_layout: InputLayout,
    ) -> Result<Lowering<'a>> {
        let graph = Graph {
            tensors: vec![],
            nodes: vec![],
            input: TensorId(0),
            output: TensorId(0),
            input_layout,
            output_layout: input_layout,
        };
        Ok(Lowering {
            path,
            model,
            catalogue,
            input_layout,
            graph,
            values: HashMap::new(),
        })
    }

    fn run(mut self) -> Result<Graph> {
        let order = self
            .model
            .eval_order()
            .map_err(|e| Error::input(self.path, root_cause(&e)))?;
        for id in order {
            self.lower_node(&self.model.nodes[id])?;
        }
        let outlet = self
            .model
            .output_outlets()
            .map_err(|e| Error::input(self.path, root_cause(&e)))?[0];
        match self.values.get(&outlet) {
            Some(Value::Activation(t, axes)) if *axes == NCHW || *axes == NHWC => {
                self.graph.output = *t;
                self.graph.output_layout = if *axes == NCHW {
                    InputLayout::Nchw
                } else {
                    InputLayout::Nhwc
                };
                Ok(self.graph)
            }
            Some(Value::Activation(..)) => Err(Error::input(
                self.path,
                "the feature output is neither NCHW nor NHWC",
            )),
            _ => Err(Error::input(
                self.path,
                "the feature output does not depend on the input image",
            )),
        }
    }

    fn unsupported(&self, node: &TypedNode, detail: impl Into<String>) -> Error {
        let onnx_name = self.catalogue.onnx_name(&node.name);
        let op = self
            .catalogue
            .onnx_op(&onnx_name)
            .map(str::to_string)
            .unwrap_or_else(|| node.op.name().to_string());
        Error::unsupported(self.path, &onnx_name, &op, detail)
    }

    fn activation(&self, node: &TypedNode, outlet: OutletId) -> Result<(TensorId, [Axis; 4])> {
        match self.values.get(&outlet) {
            Some(Value::Activation(t, axes)) => Ok((*t, *axes)),
            _ => Err(self.unsupported(node, "expected an activation input, found a constant")),
        }
    }

    fn constant(&self, outlet: OutletId) -> Option<Arc<Tensor>> {
        match self.values.get(&outlet) {
            Some(Value::Const(t)) => Some(t.clone()),
            _ => None,
        }
    }

    /// Adds an IR node and records its output for `node`'s first outlet, checking the IR's
    /// shape against the one tract inferred.
    fn emit(
        &mut self,
        node: &TypedNode,
        op: Op,
        inputs: Vec<TensorId>,
        axes: [Axis; 4],
    ) -> Result<()> {
        let input_shapes: Vec<Shape> = inputs.iter().map(|t| self.graph.shape(*t)).collect();
        let shape = op
            .output_shape(&input_shapes)
            .map_err(|e| self.unsupported(node, e))?;
        let tract_shape = physical_shape(shape, axes);
        let fact_shape = node.outputs[0].fact.shape.as_concrete().map(|s| s.to_vec());
        if fact_shape.as_deref() != Some(&tract_shape[..]) {
            return Err(self.unsupported(
                node,
                format!("computes {tract_shape:?} where the graph says {fact_shape:?}"),
            ));
        }
        let name = self.catalogue.onnx_name(&node.name);
        let output = self.graph.add_tensor(name.clone(), shape);
        self.graph.nodes.push(Node {
            name,
            op,
            inputs,
            output,
        });
        self.values
            .insert(OutletId::new(node.id, 0), Value::Activation(output, axes));
        Ok(())
    }

    fn lower_node(&mut self, node: &TypedNode) -> Result<()> {
        let outlet = OutletId::new(node.id, 0);
        if let Some(k) = &node.outputs.first().and_then(|o| o.fact.konst.clone()) {
            self.values.insert(outlet, Value::Const(k.clone()));
            return Ok(());
        }
        if node.op_is::<TypedSource>() {
            let [_, a, b, c] = node.outputs[0]
                .fact
                .shape
                .as_concrete()
                .and_then(|s| <[usize; 4]>::try_from(s).ok())
                .ok_or_else(|| self.unsupported(node, "input is not a static rank-4 tensor"))?;
            let (axes, shape) = match self.input_layout {
                InputLayout::Nchw => (NCHW, Shape::new(a, b, c)),
                InputLayout::Nhwc => (NHWC, Shape::new(c, a, b)),
            };
            let id = self.graph.add_tensor(node.name.clone(), shape);
            self.graph.input = id;
            self.values.insert(outlet, Value::Activation(id, axes));
            return Ok(());
        }
        if let Some(conv) = node.op_as::<TractConv>() {
            return self.lower_conv(node, conv);
        }
        if let Some(bin) = node.op_as::<TypedBinOp>() {
            return self.lower_binary(node, bin.0.name());
        }
        if let Some(axis_op) = node.op_as::<AxisOp>() {
            let (t, axes) = self.activation(node, node.inputs[0])?;
            let AxisOp::Move(from, to) = axis_op else {
                return Err(self.unsupported(node, format!("reshape {axis_op:?} of an activation")));
            };
            let mut moved = axes.to_vec();
            let axis = moved.remove(*from);
            moved.insert(*to, axis);
            let moved: [Axis; 4] = moved
                .try_into()
                .map_err(|_| self.unsupported(node, "transpose of a tensor that is not rank 4"))?;
            self.values.insert(outlet, Value::Activation(t, moved));
            return Ok(());
        }
        if let Some(pad) = node.op_as::<TractPad>() {
            return self.lower_pad(node, pad);
        }
        if let Some(concat) = node.op_as::<TypedConcat>() {
            let mut inputs = vec![];
            let mut layout = None;
            for i in &node.inputs {
                let (t, axes) = self.activation(node, *i)?;
                if layout.is_some_and(|l| l != axes) {
                    return Err(self.unsupported(node, "inputs in different layouts"));
                }
                layout = Some(axes);
                inputs.push(t);
            }
            let axes = layout.ok_or_else(|| self.unsupported(node, "no inputs"))?;
            if axes.get(concat.axis) != Some(&Axis::C) {
                return Err(
                    self.unsupported(node, "concatenation along an axis other than channels")
                );
            }
            return self.emit(node, Op::Concat(Concat), inputs, axes);
        }
        if let Some(pool) = node.op_as::<SumPool>() {
            if !pool.normalize {
                return Err(self.unsupported(node, "sum pooling without normalisation"));
            }
            let (t, axes) = self.activation(node, node.inputs[0])?;
            let window = self.window(node, &pool.pool_spec, axes)?;
            return self.emit(
                node,
                Op::AvgPool(AvgPool {
                    window,
                    count_include_pad: pool.count_include_pad,
                }),
                vec![t],
                axes,
            );
        }
        if let Some(pool) = node.op_as::<TractMaxPool>() {
            if pool.with_index_outputs.is_some() {
                return Err(self.unsupported(node, "max pooling with index outputs"));
            }
            let (t, axes) = self.activation(node, node.inputs[0])?;
            let window = self.window(node, &pool.pool_spec, axes)?;
            return self.emit(node, Op::MaxPool(MaxPool { window }), vec![t], axes);
        }
        let op_name = node.op.name();
        if matches!(op_name.as_ref(), "Identity" | "Cast")
            && node.inputs.len() == 1
            && node.outputs[0].fact.datum_type == f32::datum_type()
        {
            let value = self
                .values
                .get(&node.inputs[0])
                .cloned()
                .ok_or_else(|| self.unsupported(node, "input never produced"))?;
            self.values.insert(outlet, value);
            return Ok(());
        }
        Err(self.unsupported(node, format!("tract lowered it to `{op_name}`")))
    }

    /// The spatial window of a conv or pool, checking its data format against the activation.
    fn window(&self, node: &TypedNode, spec: &PoolSpec, axes: [Axis; 4]) -> Result<Window> {
        let expected = match spec.data_format {
            DataFormat::NCHW => NCHW,
            DataFormat::NHWC => NHWC,
            other => return Err(self.unsupported(node, format!("data format {other:?}"))),
        };
        if axes != expected {
            return Err(
                self.unsupported(node, "data format does not match the layout of its input")
            );
        }
        let input_fact = self
            .model
            .outlet_fact(node.inputs[0])
            .map_err(|e| Error::input(self.path, root_cause(&e)))?;
        let dims = input_fact
            .shape
            .as_concrete()
            .ok_or_else(|| self.unsupported(node, "input shape is not static"))?;
        let hw = match spec.data_format {
            DataFormat::NCHW => [dims[2], dims[3]],
            _ => [dims[1], dims[2]],
        };
        if spec.kernel_shape.len() != 2 {
            return Err(self.unsupported(node, "only 2-D windows are supported"));
        }
        let padding = spec.computed_padding(&hw);
        let dilation = spec.dilations();
        let stride = spec.strides();
        Ok(Window {
            kernel: [spec.kernel_shape[0], spec.kernel_shape[1]],
            stride: [stride[0], stride[1]],
            dilation: [dilation[0], dilation[1]],
            pads: [
                padding[0].pad_before,
                padding[1].pad_before,
                padding[0].pad_after,
                padding[1].pad_after,
            ],
        })
    }

    fn lower_conv(&mut self, node: &TypedNode, conv: &TractConv) -> Result<()> {
        if conv.q_params.is_some() {
            return Err(self.unsupported(node, "quantized convolution"));
        }
        let (input, axes) = self.activation(node, node.inputs[0])?;
        let window = self.window(node, &conv.pool_spec, axes)?;
        let kernel = node
            .inputs
            .get(1)
            .and_then(|i| self.constant(*i))
            .ok_or_else(|| self.unsupported(node, "weights are not constant"))?;
        let kernel = kernel
            .cast_to::<f32>()
            .map_err(|e| self.unsupported(node, root_cause(&e)))?
            .into_owned();
        let permutation: [usize; 4] = match conv.kernel_fmt {
            KernelFormat::OIHW => [0, 1, 2, 3],
            KernelFormat::HWIO => [3, 2, 0, 1],
            KernelFormat::OHWI => [0, 3, 1, 2],
        };
        let view = kernel
            .to_plain_array_view::<f32>()
            .map_err(|e| self.unsupported(node, root_cause(&e)))?;
        if view.ndim() != 4 {
            return Err(self.unsupported(node, "only 2-D convolutions are supported"));
        }
        let weights: Vec<f32> = view
            .permuted_axes(permutation.to_vec())
            .iter()
            .copied()
            .collect();
        let (in_channels, out_channels) = (
            conv.pool_spec.input_channels,
            conv.pool_spec.output_channels,
        );
        let bias = match node.inputs.get(2).map(|i| self.constant(*i)) {
            None => vec![0.0; out_channels],
            Some(None) => return Err(self.unsupported(node, "bias is not constant")),
            Some(Some(b)) => {
                let values = f32_values(&b).map_err(|e| self.unsupported(node, root_cause(&e)))?;
                match values.len() {
                    1 => vec![values[0]; out_channels],
                    n if n == out_channels => values.to_vec(),
                    n => {
                        return Err(self.unsupported(
                            node,
                            format!("bias of {n} values for {out_channels} channels"),
                        ))
                    }
                }
            }
        };
        if weights.iter().chain(&bias).any(|v| !v.is_finite()) {
            return Err(self.unsupported(node, "weights or bias hold NaN or infinity"));
        }
        let op = Conv {
            in_channels,
            out_channels,
            groups: conv.group,
            window,
            weights,
            bias,
            activation: None,
        };
        self.emit(node, Op::Conv(op), vec![input], axes)
    }

    fn lower_pad(&mut self, node: &TypedNode, pad: &TractPad) -> Result<()> {
        let (input, axes) = self.activation(node, node.inputs[0])?;
        let zero = match &pad.mode {
            PadMode::Constant(v) => v.cast_to_scalar::<f32>().map(|v| v == 0.0).unwrap_or(false),
            _ => false,
        };
        if !zero {
            return Err(self.unsupported(node, "only constant zero padding is supported"));
        }
        let mut spatial = [(0, 0); 2];
        for (axis, &(before, after)) in axes.iter().zip(&pad.pads) {
            match axis {
                Axis::H => spatial[0] = (before, after),
                Axis::W => spatial[1] = (before, after),
                _ if before + after > 0 => {
                    return Err(self.unsupported(node, "padding of the batch or channel axis"))
                }
                _ => {}
            }
        }
        let pads = [spatial[0].0, spatial[1].0, spatial[0].1, spatial[1].1];
        self.emit(node, Op::Pad(Pad { pads }), vec![input], axes)
    }

    /// Binary ops: activation + activation (residual add), or activation with a constant that is
    /// a scalar or a per-channel vector (scaling, BatchNorm, clamps).
    fn lower_binary(&mut self, node: &TypedNode, op: &str) -> Result<()> {
        let a = self.values.get(&node.inputs[0]).cloned();
        let b = self.values.get(&node.inputs[1]).cloned();
        let (activation, constant, constant_first) = match (a, b) {
            (Some(Value::Activation(x, ax)), Some(Value::Activation(y, ay))) => {
                if op != "Add" {
                    return Err(self.unsupported(node, format!("{op} of two activations")));
                }
                if ax != ay {
                    return Err(self.unsupported(node, "Add of activations in different layouts"));
                }
                return self.emit(node, Op::Add(Add::default()), vec![x, y], ax);
            }
            (Some(Value::Activation(x, ax)), Some(Value::Const(k))) => ((x, ax), k, false),
            (Some(Value::Const(k)), Some(Value::Activation(x, ax))) => ((x, ax), k, true),
            _ => return Err(self.unsupported(node, "operands never produced")),
        };
        let ((input, axes), channels) = (activation, self.graph.shape(activation.0).c);
        let values = self.per_channel(node, &constant, axes, channels)?;
        let scaling = !matches!(op, "Max" | "Min");
        if scaling
            && values
                .iter()
                .any(|v| !v.is_finite() || (op == "Div" && *v == 0.0))
        {
            return Err(self.unsupported(
                node,
                format!("{op} by a constant that is infinite or a zero divisor"),
            ));
        }
        let affine =
            |scale: Vec<f32>, bias: Vec<f32>| Op::ChannelAffine(ChannelAffine { scale, bias });
        let op = match (op, constant_first) {
            ("Mul", _) => affine(values, vec![0.0; channels]),
            ("Add", _) => affine(vec![1.0; channels], values),
            ("Sub", false) => affine(vec![1.0; channels], values.iter().map(|v| -v).collect()),
            ("Sub", true) => affine(vec![-1.0; channels], values),
            ("Div", false) => affine(
                values.iter().map(|v| 1.0 / v).collect(),
                vec![0.0; channels],
            ),
            ("Max" | "Min", _) => {
                let v = values[0];
                if values.iter().any(|x| *x != v) {
                    return Err(self.unsupported(node, format!("{op} with a per-channel constant")));
                }
                let clamp = if op == "Max" {
                    Clamp {
                        min: v,
                        max: f32::INFINITY,
                    }
                } else {
                    Clamp {
                        min: f32::NEG_INFINITY,
                        max: v,
                    }
                };
                Op::Clamp(clamp)
            }
            (other, _) => {
                return Err(self.unsupported(node, format!("{other} with a constant operand")))
            }
        };
        self.emit(node, op, vec![input], axes)
    }

    /// A constant broadcast against an activation, as one value per channel.
    fn per_channel(
        &self,
        node: &TypedNode,
        constant: &Tensor,
        axes: [Axis; 4],
        channels: usize,
    ) -> Result<Vec<f32>> {
        let values = f32_values(constant).map_err(|e| self.unsupported(node, root_cause(&e)))?;
        // Clamps use infinite bounds (Relu is Max(x, 0) with no upper one), but NaN is never valid.
        if values.iter().any(|v| v.is_nan()) {
            return Err(self.unsupported(node, "constant operand holds NaN"));
        }
        let shape = constant.shape();
        if shape.len() > 4 {
            return Err(self.unsupported(node, "constant of rank above 4"));
        }
        // Numpy broadcasting aligns shapes on the right.
        let mut aligned = [1usize; 4];
        aligned[4 - shape.len()..].copy_from_slice(shape);
        for (axis, &size) in axes.iter().zip(&aligned) {
            let fits = size == 1 || (*axis == Axis::C && size == channels);
            if !fits {
                return Err(self.unsupported(
                    node,
                    format!("constant of shape {shape:?} is not per-channel"),
                ));
            }
        }
        Ok(match values.len() {
            1 => vec![values[0]; channels],
            _ => values.to_vec(),
        })
    }
}

/// A constant's values as f32, in row-major order.
fn f32_values(t: &Tensor) -> TractResult<Vec<f32>> {
    let t = t.cast_to::<f32>()?.into_owned();
    let values = t.to_plain_array_view::<f32>()?.iter().copied().collect();
    Ok(values)
}

/// Shape of a CHW tensor as laid out in tract's graph.
fn physical_shape(shape: Shape, axes: [Axis; 4]) -> Vec<usize> {
    axes.iter()
        .map(|a| match a {
            Axis::N => 1,
            Axis::C => shape.c,
            Axis::H => shape.h,
            Axis::W => shape.w,
        })
        .collect()
}
