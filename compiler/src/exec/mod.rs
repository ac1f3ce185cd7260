//! The reference executor: a plain interpreter of the IR. It is the oracle for training, testing
//! and every check of generated code, so it shares no kernel code with the generated paths.

use crate::ir::{Graph, Tensor, TensorId};

/// Runs the graph on one CHW input and returns its output.
pub fn run(graph: &Graph, input: &Tensor) -> Tensor {
    let mut outputs = run_keeping(graph, input, &[graph.output]);
    outputs
        .pop()
        .expect("run_keeping returns one tensor per requested id")
}

/// Runs the graph and returns the requested tensors (in the order asked), freeing every other
/// intermediate as soon as its last reader has run.
pub fn run_keeping(graph: &Graph, input: &Tensor, keep: &[TensorId]) -> Vec<Tensor> {
    assert_eq!(
        input.shape,
        graph.input_shape(),
        "input shape differs from the graph's"
    );
    let mut last_use = vec![0usize; graph.tensors.len()];
    for (i, node) in graph.nodes.iter().enumerate() {
        for t in &node.inputs {
            last_use[t.0] = i;
        }
    }
    let mut values: Vec<Option<Tensor>> = vec![None; graph.tensors.len()];
    values[graph.input.0] = Some(input.clone());
    for (i, node) in graph.nodes.iter().enumerate() {
        let output = {
            let inputs: Vec<&Tensor> = node
                .inputs
                .iter()
                .map(|t| {
                    values[t.0]
                        .as_ref()
                        .expect("validated graphs produce before they read")
                })
                .collect();
            node.op.reference(&inputs, graph.shape(node.output))
        };
        values[node.output.0] = Some(output);
        for t in &node.inputs {
            if last_use[t.0] == i && !keep.contains(t) {
                values[t.0] = None;
            }
        }
    }
    keep.iter()
        .map(|t| values[t.0].clone().expect("every kept tensor is produced"))
        .collect()
}
