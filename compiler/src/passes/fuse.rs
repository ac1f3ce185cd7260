use crate::ir::ops::{ChannelAffine, Clamp};
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
        let merged = Op::ChannelAffine(first.then(second));
        replace_pair(graph, p, c, merged);
        true
    })
}

/// A per-channel affine after a convolution (BatchNorm, scaling) folds into its weights and bias.
pub fn fold_affine_into_conv(graph: &mut Graph, keep: &[TensorId]) -> usize {
    repeat(graph, keep, |graph, keep| {
        let Some((p, c)) = find_pair(
            graph,
            keep,
            |a, b| matches!((a, b), (Op::Conv(conv), Op::ChannelAffine(_)) if conv.activation.is_none()),
        ) else {
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
