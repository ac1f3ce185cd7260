//! The project's own small typed IR: a straight list of nodes over CHW tensors with static shapes
//! (batch 1 implied). It knows nothing of tract or ONNX; the front end is the only place that does.

pub mod ops;

use std::fmt;

pub use ops::{Op, Operator};

/// Static shape of an activation: channels, height, width (batch 1 is implied everywhere).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Shape {
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl Shape {
    pub const fn new(c: usize, h: usize, w: usize) -> Shape {
        Shape { c, h, w }
    }
    pub const fn len(&self) -> usize {
        self.c * self.h * self.w
    }
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}x{}", self.h, self.w, self.c)
    }
}

/// A dense CHW f32 tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Shape,
    pub data: Vec<f32>,
}

impl Tensor {
    pub fn zeros(shape: Shape) -> Tensor {
        Tensor {
            shape,
            data: vec![0.0; shape.len()],
        }
    }
    pub fn from_vec(shape: Shape, data: Vec<f32>) -> Tensor {
        assert_eq!(
            shape.len(),
            data.len(),
            "tensor data does not match its shape"
        );
        Tensor { shape, data }
    }
    #[inline]
    pub fn at(&self, c: usize, y: usize, x: usize) -> f32 {
        self.data[(c * self.shape.h + y) * self.shape.w + x]
    }
    /// The same values as an interleaved HWC buffer (the layout cameras and our generated code use).
    pub fn to_hwc(&self) -> Vec<f32> {
        let Shape { c, h, w } = self.shape;
        let mut out = vec![0.0; self.data.len()];
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    out[(y * w + x) * c + ch] = self.at(ch, y, x);
                }
            }
        }
        out
    }
    pub fn from_hwc(shape: Shape, hwc: &[f32]) -> Tensor {
        let Shape { c, h, w } = shape;
        assert_eq!(
            hwc.len(),
            shape.len(),
            "HWC buffer does not match its shape"
        );
        let mut data = vec![0.0; hwc.len()];
        for y in 0..h {
            for x in 0..w {
                for ch in 0..c {
                    data[(ch * h + y) * w + x] = hwc[(y * w + x) * c + ch];
                }
            }
        }
        Tensor { shape, data }
    }
}

/// Index of a tensor (an activation) in [`Graph::tensors`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(pub usize);

#[derive(Clone, Debug)]
pub struct TensorInfo {
    /// Name from the source graph, kept for messages and comments only.
    pub name: String,
    pub shape: Shape,
}

#[derive(Clone, Debug)]
pub struct Node {
    /// Name from the source graph (untrusted text: sanitise before emitting it anywhere).
    pub name: String,
    pub op: Op,
    pub inputs: Vec<TensorId>,
    pub output: TensorId,
}

/// Layout the source graph's input expects; the IR itself is always CHW.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum InputLayout {
    Nchw,
    Nhwc,
}

#[derive(Clone, Debug)]
pub struct Graph {
    pub tensors: Vec<TensorInfo>,
    /// Nodes in a valid execution order.
    pub nodes: Vec<Node>,
    pub input: TensorId,
    pub output: TensorId,
    pub input_layout: InputLayout,
    /// Layout of the feature output in the source graph (informational, like `input_layout`).
    pub output_layout: InputLayout,
}

impl Graph {
    pub fn shape(&self, t: TensorId) -> Shape {
        self.tensors[t.0].shape
    }
    pub fn input_shape(&self) -> Shape {
        self.shape(self.input)
    }
    pub fn output_shape(&self) -> Shape {
        self.shape(self.output)
    }
    pub fn add_tensor(&mut self, name: impl Into<String>, shape: Shape) -> TensorId {
        self.tensors.push(TensorInfo {
            name: name.into(),
            shape,
        });
        TensorId(self.tensors.len() - 1)
    }
    pub fn input_shapes(&self, node: &Node) -> Vec<Shape> {
        node.inputs.iter().map(|t| self.shape(*t)).collect()
    }
    /// Nodes that read tensor `t`.
    pub fn consumers(&self, t: TensorId) -> Vec<usize> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.inputs.contains(&t))
            .map(|(i, _)| i)
            .collect()
    }
    pub fn producer(&self, t: TensorId) -> Option<usize> {
        self.nodes.iter().position(|n| n.output == t)
    }
    pub fn total_macs(&self) -> u64 {
        self.nodes
            .iter()
            .map(|n| n.op.macs(&self.input_shapes(n), self.shape(n.output)))
            .sum()
    }
    pub fn total_params(&self) -> usize {
        self.nodes.iter().map(|n| n.op.params()).sum()
    }
    /// Bytes of f32 constants the graph carries (weights, biases, per-channel factors).
    pub fn constant_bytes(&self) -> usize {
        self.total_params() * std::mem::size_of::<f32>()
    }
    /// Spatial stride of the output relative to the input (the feature grid's cell size).
    pub fn feature_stride(&self) -> (f64, f64) {
        let i = self.input_shape();
        let o = self.output_shape();
        (i.h as f64 / o.h as f64, i.w as f64 / o.w as f64)
    }

    /// Drops tensors nothing produces or reads any more and renumbers the rest in execution
    /// order (input first). Returns the old-to-new id map.
    pub fn compact(&mut self) -> Vec<Option<TensorId>> {
        let mut map = vec![None; self.tensors.len()];
        let mut tensors = Vec::new();
        let order = std::iter::once(self.input).chain(self.nodes.iter().map(|n| n.output));
        for t in order {
            if map[t.0].is_none() {
                map[t.0] = Some(TensorId(tensors.len()));
                tensors.push(self.tensors[t.0].clone());
            }
        }
        let remap =
            |t: TensorId| map[t.0].expect("every read tensor is the input or produced by a node");
        for node in &mut self.nodes {
            node.inputs = node.inputs.iter().map(|t| remap(*t)).collect();
            node.output = remap(node.output);
        }
        self.input = remap(self.input);
        self.output = remap(self.output);
        self.tensors = tensors;
        map
    }

    /// Checks the invariants every pass relies on: shapes agree with what each op computes,
    /// every tensor is produced once before it is read, and the output is produced.
    pub fn validate(&self) -> Result<(), String> {
        let mut ready = vec![false; self.tensors.len()];
        ready[self.input.0] = true;
        for node in &self.nodes {
            for t in &node.inputs {
                if !ready.get(t.0).copied().unwrap_or(false) {
                    return Err(format!(
                        "node `{}` reads tensor {} before it is produced",
                        node.name, t.0
                    ));
                }
            }
            let expected = node
                .op
                .output_shape(&self.input_shapes(node))
                .map_err(|e| format!("node `{}`: {e}", node.name))?;
            if expected != self.shape(node.output) {
                return Err(format!(
                    "node `{}` ({}) produces {} but its tensor says {}",
                    node.name,
                    node.op.kind(),
                    expected,
                    self.shape(node.output)
                ));
            }
            if ready[node.output.0] {
                return Err(format!(
                    "tensor {} is produced twice (node `{}`)",
                    node.output.0, node.name
                ));
            }
            ready[node.output.0] = true;
        }
        if !ready[self.output.0] {
            return Err("the graph output is never produced".into());
        }
        Ok(())
    }
}
