//! A conservative static shape pass over the ONNX protobuf, run before tract. With the input
//! fixed, every tensor of a valid backbone has a concrete shape; a graph whose shapes contradict
//! each other (an Add of `[1,2,8,16]` and `[1,2,16,8]`) is broken, and tract's shape solver,
//! instead of failing, builds ever-growing symbolic expressions on it (gigabytes for eight nodes:
//! the onnx_graph fuzzer found it). Such graphs are refused here, naming the node.
//!
//! Only what is certainly wrong is refused: an op this pass does not model, or a value it cannot
//! read, leaves that output unknown and everything depending on it unchecked.

use std::collections::HashMap;
use std::path::Path;

use tract_onnx::pb::{AttributeProto, GraphProto, NodeProto, TensorProto};

use crate::error::{Error, Result};

type Dims = Vec<usize>;

/// Checks every node whose input shapes can be worked out from the input's `shape`.
pub(super) fn check(path: &Path, graph: &GraphProto, input: &str, shape: &[usize]) -> Result<()> {
    infer(path, graph, input, shape).map(|_| ())
}

/// The shapes of every tensor this pass could work out, by name.
fn infer(
    path: &Path,
    graph: &GraphProto,
    input: &str,
    shape: &[usize],
) -> Result<HashMap<String, Dims>> {
    let initializers: HashMap<&str, &TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    let mut known: HashMap<String, Dims> = graph
        .initializer
        .iter()
        .filter_map(|t| Some((t.name.clone(), dims(&t.dims)?)))
        .collect();
    known.insert(input.to_string(), shape.to_vec());
    // ONNX lists nodes in topological order; a node whose inputs are not known yet is skipped.
    for (index, node) in graph.node.iter().enumerate() {
        let inputs: Option<Vec<&Dims>> = node
            .input
            .iter()
            .filter(|name| !name.is_empty())
            .map(|name| known.get(name.as_str()))
            .collect();
        let Some(inputs) = inputs else { continue };
        let fail = |detail: String| {
            let name = if node.name.is_empty() {
                format!("#{index}")
            } else {
                node.name.clone()
            };
            Error::input(
                path,
                format!(
                    "node `{}` ({}): {detail}; the graph's shapes are inconsistent",
                    crate::error::one_line(&name),
                    crate::error::one_line(&node.op_type)
                ),
            )
        };
        let output = output_shape(node, &inputs, &initializers).map_err(fail)?;
        if let (Some(output), Some(name)) = (output, node.output.first()) {
            known.insert(name.clone(), output);
        }
    }
    Ok(known)
}

fn dims(raw: &[i64]) -> Option<Dims> {
    raw.iter().map(|&d| usize::try_from(d).ok()).collect()
}

fn attribute<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attribute(node, name).map(|a| a.ints.clone())
}

fn int(node: &NodeProto, name: &str, default: i64) -> i64 {
    attribute(node, name).map_or(default, |a| a.i)
}

/// The values of an INT64 initializer (`int64_data` or little-endian `raw_data`).
fn int64_values(tensor: &TensorProto) -> Option<Vec<i64>> {
    const INT64: i32 = 7;
    if tensor.data_type != INT64 {
        return None;
    }
    if !tensor.int64_data.is_empty() {
        return Some(tensor.int64_data.clone());
    }
    if !tensor.raw_data.len().is_multiple_of(8) {
        return None;
    }
    Some(
        tensor
            .raw_data
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("chunks of 8")))
            .collect(),
    )
}

/// The output shape of `node`, `Ok(None)` when this pass does not know it, or why the inputs
/// contradict each other.
fn output_shape(
    node: &NodeProto,
    inputs: &[&Dims],
    initializers: &HashMap<&str, &TensorProto>,
) -> std::result::Result<Option<Dims>, String> {
    let first = inputs.first().map(|d| (*d).clone());
    let constant_ints = |slot: usize| {
        node.input
            .get(slot)
            .and_then(|name| initializers.get(name.as_str()))
            .and_then(|t| int64_values(t))
    };
    Ok(match node.op_type.as_str() {
        "Identity" | "Dropout" | "Cast" | "Relu" | "Clip" | "BatchNormalization" => first,
        "Add" | "Sub" | "Mul" | "Div" | "Max" | "Min" => Some(broadcast(inputs)?),
        "Conv" => {
            let (Some(x), Some(w)) = (inputs.first(), inputs.get(1)) else {
                return Ok(None);
            };
            if x.len() != 4 || w.len() != 4 {
                return Ok(None);
            }
            let group = usize::try_from(int(node, "group", 1)).unwrap_or(0);
            if group == 0 || x[1] != w[1] * group {
                return Err(format!(
                    "its input has {} channels but its weights {:?} with group {group} expect {}",
                    x[1],
                    w,
                    w[1] * group
                ));
            }
            let kernel = [w[2], w[3]];
            window(node, x, w[0], kernel, false)?
        }
        "AveragePool" | "MaxPool" => {
            let Some(x) = inputs.first() else {
                return Ok(None);
            };
            let kernel = ints(node, "kernel_shape").unwrap_or_default();
            let (Some(kernel), 4) = (dims(&kernel), x.len()) else {
                return Ok(None);
            };
            let [kh, kw] = kernel.as_slice() else {
                return Ok(None);
            };
            let ceil = int(node, "ceil_mode", 0) == 1;
            window(node, x, x[1], [*kh, *kw], ceil)?
        }
        "Pad" => {
            let Some(x) = first else { return Ok(None) };
            let pads = constant_ints(1).or_else(|| ints(node, "pads"));
            match pads {
                Some(pads) if pads.len() == 2 * x.len() => {
                    let padded: Option<Dims> = x
                        .iter()
                        .enumerate()
                        .map(|(i, &d)| usize::try_from(d as i64 + pads[i] + pads[i + x.len()]).ok())
                        .collect();
                    padded
                }
                _ => None,
            }
        }
        "Concat" => {
            let rank = inputs.first().map_or(0, |d| d.len());
            let axis = int(node, "axis", 0);
            let axis = if axis < 0 { axis + rank as i64 } else { axis };
            let Ok(axis) = usize::try_from(axis) else {
                return Ok(None);
            };
            if axis >= rank || inputs.iter().any(|d| d.len() != rank) {
                return Ok(None);
            }
            let mut out = inputs[0].clone();
            for other in &inputs[1..] {
                for (i, (&a, &b)) in inputs[0].iter().zip(other.iter()).enumerate() {
                    if i != axis && a != b {
                        return Err(format!(
                            "inputs {:?} and {:?} differ outside the concatenation axis {axis}",
                            inputs[0], other
                        ));
                    }
                }
                out[axis] += other[axis];
            }
            Some(out)
        }
        "Transpose" => {
            let Some(x) = first else { return Ok(None) };
            let perm = ints(node, "perm").unwrap_or_else(|| (0..x.len() as i64).rev().collect());
            let perm: Option<Vec<usize>> = perm.iter().map(|&p| usize::try_from(p).ok()).collect();
            match perm {
                Some(perm) if perm.len() == x.len() && perm.iter().all(|&p| p < x.len()) => {
                    Some(perm.iter().map(|&p| x[p]).collect())
                }
                _ => None,
            }
        }
        _ => None,
    })
}

/// Numpy broadcasting of all `inputs`.
fn broadcast(inputs: &[&Dims]) -> std::result::Result<Dims, String> {
    let rank = inputs.iter().map(|d| d.len()).max().unwrap_or(0);
    let mut out = vec![1usize; rank];
    for shape in inputs {
        let offset = rank - shape.len();
        for (i, &d) in shape.iter().enumerate() {
            let slot = &mut out[offset + i];
            if *slot == 1 {
                *slot = d;
            } else if d != 1 && d != *slot {
                let shapes: Vec<String> = inputs.iter().map(|s| format!("{s:?}")).collect();
                return Err(format!(
                    "input shapes {} do not broadcast",
                    shapes.join(" and ")
                ));
            }
        }
    }
    Ok(out)
}

/// The NCHW output shape of a convolution or pooling window over `x` (rank 4), or why the
/// window does not fit.
fn window(
    node: &NodeProto,
    x: &Dims,
    channels: usize,
    kernel: [usize; 2],
    ceil: bool,
) -> std::result::Result<Option<Dims>, String> {
    let two = |name: &str, default: usize| -> Option<[usize; 2]> {
        match ints(node, name) {
            None => Some([default, default]),
            Some(v) => match dims(&v)?.as_slice() {
                [a, b] => Some([*a, *b]),
                _ => None,
            },
        }
    };
    let (Some(strides), Some(dilations)) = (two("strides", 1), two("dilations", 1)) else {
        return Ok(None);
    };
    if strides.contains(&0) || dilations.contains(&0) || kernel.contains(&0) {
        return Ok(None);
    }
    let auto_pad = attribute(node, "auto_pad").map_or(String::new(), |a| {
        String::from_utf8_lossy(&a.s).into_owned()
    });
    let mut out = vec![x[0], channels, 0, 0];
    for axis in 0..2 {
        let input = x[2 + axis];
        let stride = strides[axis];
        let span = (kernel[axis] - 1) * dilations[axis] + 1;
        out[2 + axis] = match auto_pad.as_str() {
            "SAME_UPPER" | "SAME_LOWER" => input.div_ceil(stride),
            "" | "NOTSET" | "VALID" => {
                let pads = if auto_pad == "VALID" {
                    Some(vec![0; 4])
                } else {
                    ints(node, "pads").map_or(Some(vec![0; 4]), |p| dims(&p))
                };
                let Some(pads) = pads.filter(|p| p.len() == 4) else {
                    return Ok(None);
                };
                let padded = input + pads[axis] + pads[axis + 2];
                if span > padded {
                    return Err(format!(
                        "its {}x{} window does not fit its padded {} input of {padded}",
                        kernel[0],
                        kernel[1],
                        if axis == 0 { "height" } else { "width" }
                    ));
                }
                let steps = padded - span;
                (if ceil {
                    steps.div_ceil(stride)
                } else {
                    steps / stride
                }) + 1
            }
            _ => return Ok(None),
        };
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::prelude::Framework;

    fn graph(fixture: &str) -> GraphProto {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures")
            .join(fixture);
        tract_onnx::onnx()
            .proto_model_for_path(path)
            .expect("fixtures are ONNX")
            .graph
            .expect("fixtures have a graph")
    }

    #[test]
    fn shapes_reach_the_outputs_of_the_fixtures() {
        // Mul/Add per channel, Pad from an initializer, strided, depthwise and padded convs,
        // pools, Concat, residual Add (pytorch_style); NHWC input with Transpose (keras_style).
        for (fixture, input, output, expected) in [
            (
                "pytorch_style.onnx",
                [1, 3, 32, 32],
                "output",
                vec![1, 24, 16, 16],
            ),
            (
                "keras_style.onnx",
                [1, 32, 32, 3],
                "block_2_add",
                vec![1, 16, 8, 8],
            ),
            (
                "keras_style_nhwc_out.onnx",
                [1, 32, 32, 3],
                "output_nhwc",
                vec![1, 8, 8, 16],
            ),
        ] {
            let g = graph(fixture);
            let known = infer(Path::new(fixture), &g, "input", &input).unwrap();
            assert_eq!(known.get(output), Some(&expected), "{fixture}");
        }
    }

    #[test]
    fn contradicting_shapes_are_refused_naming_the_node() {
        let mut g = graph("pytorch_style.onnx");
        let refuse = |g: &GraphProto, input: &[usize], words: &[&str]| {
            let err = infer(Path::new("x.onnx"), g, "input", input)
                .unwrap_err()
                .to_string();
            for word in ["x.onnx", "inconsistent"].iter().chain(words) {
                assert!(err.contains(word), "{word}: {err}");
            }
        };
        // Five channels into per-channel constants of three.
        refuse(
            &g,
            &[1, 5, 32, 32],
            &["`normalize_mul`", "do not broadcast"],
        );
        // The residual Add fed the stem's input instead of its output: 32x32 against 16x16.
        let add = g
            .node
            .iter_mut()
            .find(|n| n.name == "residual_add")
            .unwrap();
        add.input[0] = "normalize_add".into();
        refuse(&g, &[1, 3, 32, 32], &["`residual_add`", "[1, 3, 32, 32]"]);
        // A 1x1 conv fed the 3-channel input instead of its 8-channel producer.
        let mut g = graph("pytorch_style.onnx");
        let pw = g.node.iter_mut().find(|n| n.name == "pw_conv").unwrap();
        pw.input[0] = "normalize_add".into();
        refuse(&g, &[1, 3, 32, 32], &["`pw_conv`", "channels"]);
    }
}
