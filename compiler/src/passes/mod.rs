//! Graph-to-graph rewrites that keep the computed function: fold constants into convolutions,
//! fuse activations, absorb zero padding. Each pass is a named function with its own test.

mod fuse;
pub mod memory;

pub use fuse::{fold_affine_into_conv, fold_pad_into_conv, fuse_clamps, merge_affines};

use crate::ir::{Graph, TensorId};

/// A named pass: returns how many rewrites it made.
pub type Pass = fn(&mut Graph, &[TensorId]) -> usize;

/// Every pass, in the order they run; run to a fixed point.
pub const PASSES: &[(&str, Pass)] = &[
    ("merge-affines", merge_affines),
    ("fold-affine-into-conv", fold_affine_into_conv),
    ("fold-pad-into-conv", fold_pad_into_conv),
    ("fuse-clamps", fuse_clamps),
];

/// Runs every pass until none applies. `keep` lists tensors (besides the output) that must
/// survive, such as extra feature taps.
/// Tensor ids change (the graph is compacted): `keep` is updated in place.
pub fn optimize(graph: &mut Graph, keep: &mut [TensorId]) {
    loop {
        let rewrites: usize = PASSES.iter().map(|(_, pass)| pass(graph, keep)).sum();
        if rewrites == 0 {
            break;
        }
    }
    let renumbered = graph.compact();
    for t in keep.iter_mut() {
        *t = renumbered[t.0].expect("kept tensors survive every pass");
    }
    debug_assert!(
        graph.validate().is_ok(),
        "passes broke the graph: {:?}",
        graph.validate()
    );
}
