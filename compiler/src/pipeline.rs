//! The two stages put together: the feature graph (backbone plus optional extra taps), batch
//! feature extraction over image files, and image scores. Shared by train, test, score and compile
//! so that all of them compute exactly the same features.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::data::Preprocess;
use crate::error::{Error, Result};
use crate::frontend::Backbone;
use crate::ir::ops::Concat;
use crate::ir::{Graph, Node, Op, Tensor, TensorId};
use crate::scorer::Scorer;
use crate::{exec, passes};

/// The backbone graph whose output is what the scorer reads.
#[derive(Clone, Debug)]
pub struct FeatureGraph {
    pub graph: Graph,
    /// Nodes whose outputs make up the features, deepest first.
    pub feature_nodes: Vec<String>,
}

/// Optimises the backbone and, for `layers` > 1, concatenates the `layers` deepest feature maps
/// at the grid's resolution along channels: the graph output first, then the outputs of the
/// residual `Add` nodes at that resolution, deepest first (for MobileNetV2 cut at
/// `block_6_expand_relu`: the cut, `block_5_add`, `block_4_add`).
pub fn feature_graph(backbone: &Backbone, layers: usize) -> Result<FeatureGraph> {
    if !(1..=3).contains(&layers) {
        return Err(Error::usage(format!("--layers {layers}: expected 1 to 3")));
    }
    let mut graph = backbone.graph.clone();
    passes::optimize(&mut graph, &mut []);
    let grid = graph.output_shape();
    let mut taps = vec![graph.output];
    taps.extend(
        graph
            .nodes
            .iter()
            .rev()
            .filter(|n| matches!(n.op, Op::Add(_)) && n.output != graph.output)
            .filter(|n| {
                let s = graph.shape(n.output);
                (s.h, s.w) == (grid.h, grid.w)
            })
            .map(|n| n.output),
    );
    if taps.len() < layers {
        return Err(Error::input(
            &backbone.path,
            format!("--layers {layers}: the backbone has only {} feature maps at the {}x{} grid (its output and residual adds)", taps.len(), grid.h, grid.w),
        ));
    }
    taps.truncate(layers);
    let feature_nodes = taps.iter().map(|t| node_name(&graph, *t)).collect();
    if layers > 1 {
        let shapes: Vec<_> = taps.iter().map(|t| graph.shape(*t)).collect();
        let shape = Op::Concat(Concat)
            .output_shape(&shapes)
            .map_err(|e| Error::input(&backbone.path, e))?;
        let output = graph.add_tensor("features", shape);
        graph.nodes.push(Node {
            name: "features".into(),
            op: Op::Concat(Concat),
            inputs: taps,
            output,
        });
        graph.output = output;
    }
    graph
        .validate()
        .map_err(|e| Error::input(&backbone.path, format!("internal: feature graph: {e}")))?;
    Ok(FeatureGraph {
        graph,
        feature_nodes,
    })
}

fn node_name(graph: &Graph, t: TensorId) -> String {
    graph.producer(t).map_or_else(
        || graph.tensors[t.0].name.clone(),
        |i| graph.nodes[i].name.clone(),
    )
}

/// The preprocessing that feeds `graph`: its input size and channels, with the given options.
pub fn preprocess_for(
    graph: &Graph,
    resize: crate::data::Resize,
    scaling: crate::data::Scaling,
) -> Preprocess {
    let s = graph.input_shape();
    Preprocess {
        width: s.w,
        height: s.h,
        channels: s.c,
        resize,
        scaling,
    }
}

/// Loads every image and runs the feature graph on it, in parallel, keeping order.
pub fn extract_features(
    graph: &Graph,
    pre: &Preprocess,
    paths: &[PathBuf],
    label: &str,
) -> Result<Vec<Tensor>> {
    let bar = progress_bar(paths.len() as u64, label);
    let features = paths
        .par_iter()
        .map(|path| {
            let image = pre.load(path)?;
            let features = exec::run(graph, &image);
            bar.inc(1);
            Ok(features)
        })
        .collect::<Result<Vec<_>>>();
    bar.finish_and_clear();
    features
}

/// Cell scores of one image file, with the resized pixels (for heatmaps and generated code).
pub fn score_image(
    graph: &Graph,
    pre: &Preprocess,
    scorer: &dyn Scorer,
    path: &Path,
) -> Result<(Vec<u8>, Vec<f32>)> {
    let pixels = pre.load_pixels(path)?;
    let features = exec::run(graph, &pre.pixels_to_tensor(&pixels));
    Ok((pixels, scorer.score(&features)))
}

/// An image's score is its highest cell (Edge Impulse's convention).
pub fn image_score(cells: &[f32]) -> f32 {
    cells.iter().copied().fold(f32::NEG_INFINITY, f32::max)
}

/// A progress bar on stderr (hidden when stderr is not a terminal, e.g. in CI logs).
pub fn progress_bar(len: u64, label: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} {elapsed}")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    bar.set_message(label.to_string());
    bar
}
