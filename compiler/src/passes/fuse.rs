use crate::ir::ops::{ChannelAffine, Clamp, Conv};
use crate::ir::{Graph, Op, TensorId};

/// If node `producer`'s output is read only by `consumer` and may disappear, returns true.
fn fusable(graph: &Graph, producer: usize, consumer: usize, keep: &[TensorId]) -> bool {
    let t = graph.nodes[producer].output;
    t != graph.output && !keep.contains(&t) && graph.consumers(t) == vec![consumer]
}

/// Finds the first (producer, consumer) pair where `consumer` reads `producer` alone and
/// `matches` accepts both ops.
fn find_pair(
    graph: &Graph,
    keep: &[TensorId],
    matches: impl Fn(&Op, &Op) -> bool,
) -> Option<(usize, usize)> {
    graph.nodes.iter().enumerate().find_map(|(ci, consumer)| {
        let [input] = consumer.inputs.as_slice() else {
            return None;
        };
        let pi = graph.producer(*input)?;
        (matches(&graph.nodes[pi].op, &consumer.op) && fusable(graph, pi, ci, keep))
            .then_some((pi, ci))
    })
}

/// Replaces the pair by the producer node carrying `op` and writing the consumer's output.
fn replace_pair(graph: &mut Graph, producer: usize, consumer: usize, op: Op) {
    let output = graph.nodes[consumer].output;
    let node = &mut graph.nodes[producer];
    node.op = op;
    node.output = output;
    graph.nodes.remove(consumer);
}

/// Repeats `step` until it finds nothing; returns how many rewrites it made.
fn repeat(
    graph: &mut Graph,
    keep: &[TensorId],
    step: impl Fn(&mut Graph, &[TensorId]) -> bool,
) -> usize {
    let mut count = 0;
    while step(graph, keep) {
        count += 1;
    }
    count
}

/// Two consecutive per-channel affines become one.
pub fn merge_affines(graph: &mut Graph, keep: &[TensorId]) -> usize {
    repeat(graph, keep, |graph, keep| {
        let Some((p, c)) = find_pair(graph, keep, |a, b| {
            matches!((a, b), (Op::ChannelAffine(_), Op::ChannelAffine(_)))
        }) else {
            return false;
        };
        let (Op::ChannelAffine(first), Op::ChannelAffine(second)) =
            (&graph.nodes[p].op, &graph.nodes[c].op)
        else {
            unreachable!("find_pair matched two affines")
        };
        let merged = first.then(second);
        // Same reason as `folds_finitely`: an overflowing product must not replace two finite steps.
        if !merged
            .scale
            .iter()
            .chain(&merged.bias)
            .all(|v| v.is_finite())
        {
            return false;
        }
        replace_pair(graph, p, c, Op::ChannelAffine(merged));
        true
    })
}

/// Whether scaling `conv`'s weights and bias by `affine` stays finite. A fold that overflows
/// (a BatchNorm scale near f32::MAX) would turn the convolution's finite sums into inf - inf =
/// NaN where the unfolded graph saturates in a clamp: the onnx fuzzer found one.
fn folds_finitely(conv: &Conv, affine: &ChannelAffine) -> bool {
    let per_out = conv.weights.len() / conv.out_channels;
    (0..conv.out_channels).all(|o| {
        let scale = affine.scale[o];
        conv.weights[o * per_out..(o + 1) * per_out]
            .iter()
            .all(|w| (w * scale).is_finite())
            && (conv.bias[o] * scale + affine.bias[o]).is_finite()
    })
}

/// A per-channel affine after a convolution (BatchNorm, scaling) folds into its weights and bias
/// when the folded values stay finite; otherwise it stays a separate step.
pub fn fold_affine_into_conv(graph: &mut Graph, keep: &[TensorId]) -> usize {
    repeat(graph, keep, |graph, keep| {
        let Some((p, c)) = find_pair(graph, keep, |a, b| match (a, b) {
            (Op::Conv(conv), Op::ChannelAffine(affine)) => {
                conv.activation.is_none() && folds_finitely(conv, affine)
            }
            _ => false,
        }) else {
            return false;
        };
        let (Op::Conv(conv), Op::ChannelAffine(ChannelAffine { scale, bias })) =
            (&graph.nodes[p].op, &graph.nodes[c].op)
        else {
            unreachable!("find_pair matched conv + affine")
        };
        let mut conv = conv.clone();
        let per_out = conv.weights.len() / conv.out_channels;
        for o in 0..conv.out_channels {
            conv.weights[o * per_out..(o + 1) * per_out]
                .iter_mut()
                .for_each(|w| *w *= scale[o]);
            conv.bias[o] = conv.bias[o] * scale[o] + bias[o];
        }
        replace_pair(graph, p, c, Op::Conv(conv));
        true
    })
}

/// Explicit zero padding before a convolution becomes the convolution's own padding.
pub fn fold_pad_into_conv(graph: &mut Graph, keep: &[TensorId]) -> usize {
    repeat(graph, keep, |graph, keep| {
        let Some((p, c)) = find_pair(graph, keep, |a, b| {
            matches!((a, b), (Op::Pad(_), Op::Conv(_)))
        }) else {
            return false;
        };
        let (Op::Pad(pad), Op::Conv(conv)) = (&graph.nodes[p].op, &graph.nodes[c].op) else {
            unreachable!("find_pair matched pad + conv")
        };
        let mut conv = conv.clone();
        for (mine, extra) in conv.window.pads.iter_mut().zip(pad.pads) {
            *mine += extra;
        }
        replace_pair(graph, p, c, Op::Conv(conv));
        true
    })
}

/// A clamp after a convolution, an add or another clamp runs inside it.
pub fn fuse_clamps(graph: &mut Graph, keep: &[TensorId]) -> usize {
    repeat(graph, keep, |graph, keep| {
        let Some((p, c)) = find_pair(graph, keep, |a, b| {
            matches!(
                (a, b),
                (Op::Conv(_) | Op::Add(_) | Op::Clamp(_), Op::Clamp(_))
            )
        }) else {
            return false;
        };
        let Op::Clamp(clamp) = graph.nodes[c].op else {
            unreachable!("find_pair matched a clamp consumer")
        };
        let merge = |existing: Option<Clamp>| Some(existing.map_or(clamp, |e| e.then(clamp)));
        let fused = match &graph.nodes[p].op {
            Op::Conv(conv) => Op::Conv(crate::ir::ops::Conv {
                activation: merge(conv.activation),
                ..conv.clone()
            }),
            Op::Add(add) => Op::Add(crate::ir::ops::Add {
                activation: merge(add.activation),
            }),
            Op::Clamp(first) => Op::Clamp(first.then(clamp)),
            _ => unreachable!("find_pair matched only conv, add or clamp"),
        };
        replace_pair(graph, p, c, fused);
        true
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec;
    use crate::ir::ops::{Conv, Pad, Window};
    use crate::ir::{Graph, InputLayout, Node, Shape, Tensor};

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 16) % 200) as f32
                    / 100.0
                    - 1.0
            })
            .collect()
    }

    fn conv(c_in: usize, c_out: usize, pads: [usize; 4], seed: u32) -> Conv {
        Conv {
            in_channels: c_in,
            out_channels: c_out,
            groups: 1,
            window: Window {
                kernel: [3, 3],
                stride: [1, 1],
                dilation: [1, 1],
                pads,
            },
            weights: values(c_out * c_in * 9, seed),
            bias: values(c_out, seed + 1),
            activation: None,
        }
    }

    /// input -> [ops...] in a chain; returns the graph.
    fn chain(input: Shape, ops: Vec<Op>) -> Graph {
        let mut g = Graph {
            tensors: vec![],
            nodes: vec![],
            input: TensorId(0),
            output: TensorId(0),
            input_layout: InputLayout::Nchw,
            output_layout: InputLayout::Nchw,
        };
        let mut t = g.add_tensor("input", input);
        g.input = t;
        for (i, op) in ops.into_iter().enumerate() {
            let shape = op.output_shape(&[g.shape(t)]).expect("test ops fit");
            let out = g.add_tensor(format!("t{i}"), shape);
            g.nodes.push(Node {
                name: format!("n{i}"),
                op,
                inputs: vec![t],
                output: out,
            });
            t = out;
        }
        g.output = t;
        g
    }

    fn assert_same_function(before: &Graph, after: &Graph) {
        let input = Tensor::from_vec(before.input_shape(), values(before.input_shape().len(), 7));
        let (a, b) = (exec::run(before, &input), exec::run(after, &input));
        assert_eq!(a.shape, b.shape);
        let diff = a
            .data
            .iter()
            .zip(&b.data)
            .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(diff < 1e-5, "rewrite changed the result by {diff}");
    }

    #[test]
    fn batchnorm_like_affine_and_relu6_fold_into_the_conv() {
        let affine = ChannelAffine {
            scale: vec![0.5, -2.0],
            bias: vec![0.25, 1.0],
        };
        let before = chain(
            Shape::new(3, 5, 5),
            vec![
                Op::Conv(conv(3, 2, [1; 4], 1)),
                Op::ChannelAffine(affine),
                Op::Clamp(Clamp::RELU6),
            ],
        );
        let mut after = before.clone();
        crate::passes::optimize(&mut after, &mut []);
        assert_eq!(after.nodes.len(), 1);
        let Op::Conv(c) = &after.nodes[0].op else {
            panic!("expected a conv, got {:?}", after.nodes[0].op)
        };
        assert_eq!(c.activation, Some(Clamp::RELU6));
        assert_same_function(&before, &after);
    }

    #[test]
    fn affine_is_not_folded_into_a_conv_with_a_fused_activation() {
        let mut activated = conv(2, 2, [0; 4], 3);
        activated.activation = Some(Clamp::RELU);
        let mut g = chain(
            Shape::new(2, 4, 4),
            vec![
                Op::Conv(activated),
                Op::ChannelAffine(ChannelAffine::identity(2)),
            ],
        );
        assert_eq!(fold_affine_into_conv(&mut g, &[]), 0);
    }

    #[test]
    fn an_affine_whose_fold_would_overflow_stays_separate() {
        let huge = ChannelAffine {
            scale: vec![1.0, 2.0e38],
            bias: vec![0.0, 0.0],
        };
        let mut weighty = conv(2, 2, [0; 4], 5);
        weighty.weights.iter_mut().for_each(|w| *w = 4.0);
        let mut g = chain(
            Shape::new(2, 4, 4),
            vec![Op::Conv(weighty), Op::ChannelAffine(huge.clone())],
        );
        assert_eq!(fold_affine_into_conv(&mut g, &[]), 0);
        let mut g = chain(
            Shape::new(2, 4, 4),
            vec![Op::ChannelAffine(huge.clone()), Op::ChannelAffine(huge)],
        );
        assert_eq!(merge_affines(&mut g, &[]), 0);
    }

    #[test]
    fn explicit_zero_pad_becomes_conv_padding() {
        let before = chain(
            Shape::new(2, 6, 6),
            vec![
                Op::Pad(Pad { pads: [0, 1, 2, 1] }),
                Op::Conv(conv(2, 3, [1, 0, 0, 1], 5)),
            ],
        );
        let mut after = before.clone();
        assert_eq!(fold_pad_into_conv(&mut after, &[]), 1);
        let Op::Conv(c) = &after.nodes[0].op else {
            panic!("expected a conv")
        };
        assert_eq!(c.window.pads, [1, 1, 2, 2]);
        assert_same_function(&before, &after);
    }

    #[test]
    fn consecutive_affines_and_clamps_merge() {
        let a = ChannelAffine {
            scale: vec![2.0],
            bias: vec![1.0],
        };
        let b = ChannelAffine {
            scale: vec![-1.0],
            bias: vec![0.5],
        };
        let before = chain(
            Shape::new(1, 3, 3),
            vec![
                Op::ChannelAffine(a),
                Op::ChannelAffine(b),
                Op::Clamp(Clamp {
                    min: -1.0,
                    max: 3.0,
                }),
                Op::Clamp(Clamp::RELU),
            ],
        );
        let mut after = before.clone();
        crate::passes::optimize(&mut after, &mut []);
        assert_eq!(after.nodes.len(), 2);
        assert_same_function(&before, &after);
    }

    #[test]
    fn kept_tensors_are_not_fused_away() {
        let g0 = chain(
            Shape::new(3, 5, 5),
            vec![Op::Conv(conv(3, 2, [1; 4], 1)), Op::Clamp(Clamp::RELU)],
        );
        let mut g = g0.clone();
        let mut keep = [g.nodes[0].output];
        crate::passes::optimize(&mut g, &mut keep);
        assert_eq!(g.nodes.len(), 2);
        assert_eq!(keep[0], g.nodes[0].output);
        assert_eq!(g.nodes.len(), g0.nodes.len());
    }
}
