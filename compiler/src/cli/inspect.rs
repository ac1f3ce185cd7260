//! `fomo-ad inspect`: what a backbone computes, layer by layer.

use serde_json::json;

use super::BackboneArgs;
use crate::error::Result;
use crate::ir::Graph;
use crate::passes;

#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    #[command(flatten)]
    pub backbone: BackboneArgs,
    /// Show a trained model's metadata and sizes instead of a backbone.
    #[arg(long, value_name = "MODEL.safetensors", conflicts_with_all = ["backbone", "input_size", "cut"])]
    pub model: Option<std::path::PathBuf>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: InspectArgs) -> Result<()> {
    if let Some(path) = &args.model {
        return inspect_model(path, args.json);
    }
    let backbone = args.backbone.load()?;
    let mut graph = backbone.graph.clone();
    passes::optimize(&mut graph, &mut []);
    let report = Report::new(&graph);
    if args.json {
        let value = json!({
            "backbone": backbone.path.display().to_string(),
            "sha256": backbone.sha256,
            "feature_node": backbone.feature_node,
            "input": [graph.input_shape().h, graph.input_shape().w, graph.input_shape().c],
            "input_layout": graph.input_layout,
            "grid": [graph.output_shape().h, graph.output_shape().w, graph.output_shape().c],
            "stride": graph.feature_stride().0,
            "macs": report.macs,
            "params": report.params,
            "constant_bytes": report.params * 4,
            "layers": report.layers.iter().map(|l| json!({
                "name": l.name, "op": l.op, "detail": l.detail, "inputs": l.inputs, "output": l.output,
                "params": l.params, "macs": l.macs,
            })).collect::<Vec<_>>(),
        });
        return super::print(
            &(serde_json::to_string_pretty(&value).expect("JSON values always serialise") + "\n"),
        );
    }
    let out = graph.output_shape();
    let mut text = String::new();
    let mut line = |l: String| {
        text.push_str(&l);
        text.push('\n');
    };
    line(format!(
        "backbone   {} (sha256 {})",
        backbone.path.display(),
        &backbone.sha256[..16]
    ));
    line(format!(
        "input      {} ({:?} in the source graph)",
        graph.input_shape(),
        graph.input_layout
    ));
    line(format!(
        "features   node `{}`: grid {}x{}x{} (h x w x c), stride {}",
        backbone.feature_node,
        out.h,
        out.w,
        out.c,
        graph.feature_stride().0
    ));
    line(String::new());
    line(format!(
        "{:<32} {:<14} {:>12} {:>12} {:>9} {:>11}  detail",
        "layer", "op", "input", "output", "params", "MACs"
    ));
    for l in &report.layers {
        line(format!(
            "{:<32} {:<14} {:>12} {:>12} {:>9} {:>11}  {}",
            truncate(&l.name, 32),
            l.op,
            l.inputs.join("+"),
            l.output,
            l.params,
            l.macs,
            l.detail
        ));
    }
    line(String::new());
    line(format!(
        "total      {} layers, {} parameters ({} bytes of f32 constants), {} MACs ({:.2} M)",
        report.layers.len(),
        report.params,
        report.params * 4,
        report.macs,
        report.macs as f64 / 1e6
    ));
    super::print(&text)
}

struct Layer {
    name: String,
    op: String,
    detail: String,
    inputs: Vec<String>,
    output: String,
    params: usize,
    macs: u64,
}

struct Report {
    layers: Vec<Layer>,
    params: usize,
    macs: u64,
}

impl Report {
    fn new(graph: &Graph) -> Report {
        let layers: Vec<Layer> = graph
            .nodes
            .iter()
            .map(|n| {
                let op = match &n.op {
                    crate::ir::Op::Conv(c) => format!("Conv/{}", c.flavour()),
                    other => other.kind().to_string(),
                };
                Layer {
                    name: crate::error::one_line(&n.name),
                    op,
                    detail: n.op.describe(),
                    inputs: graph
                        .input_shapes(n)
                        .iter()
                        .map(|s| s.to_string())
                        .collect(),
                    output: graph.shape(n.output).to_string(),
                    params: n.op.params(),
                    macs: n.op.macs(&graph.input_shapes(n), graph.shape(n.output)),
                }
            })
            .collect();
        Report {
            params: layers.iter().map(|l| l.params).sum(),
            macs: layers.iter().map(|l| l.macs).sum(),
            layers,
        }
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        text.chars()
            .take(max - 1)
            .chain(std::iter::once('…'))
            .collect()
    }
}

fn inspect_model(path: &std::path::Path, as_json: bool) -> Result<()> {
    let model = crate::artifact::load(path)?;
    let tensors = model.scorer.tensors();
    let constant_bytes: usize = tensors.iter().map(|(_, _, data)| data.len() * 4).sum();
    if as_json {
        let value = json!({
            "model": path.display().to_string(),
            "sha256": model.sha256,
            "metadata": model.meta,
            "tensors": tensors.iter().map(|(name, shape, _)| json!({"name": name, "shape": shape})).collect::<Vec<_>>(),
            "constant_bytes": constant_bytes,
        });
        return super::print(
            &(serde_json::to_string_pretty(&value).expect("JSON values always serialise") + "\n"),
        );
    }
    let m = &model.meta;
    let mut text = format!(
        "model       {} (sha256 {})\nscorer      {} {}\ninput       {}x{}x{} ({:?} scaling, {:?} resize)\nfeatures    {}x{}x{} from {:?}\ngrid        {}x{} cells\nthreshold   {} (suggested)\ntraining    {} images, seed {}, mean image score {}, max {}\nbackbone    {} (sha256 {})\n",
        path.display(), &model.sha256[..16], m.scorer, m.scorer_config, m.input.width, m.input.height, m.input.channels,
        m.input.scaling, m.input.resize, m.feature_grid[0], m.feature_grid[1], m.feature_grid[2], m.backbone.feature_nodes,
        m.grid[0], m.grid[1], m.threshold, m.training.images, m.training.seed, m.training.mean_image_score,
        m.training.max_image_score, m.backbone.name, &m.backbone.sha256[..16],
    );
    for (name, shape, _) in &tensors {
        text += &format!("tensor      {name} {shape:?}\n");
    }
    text += &format!("constants   {constant_bytes} bytes of f32\n");
    super::print(&text)
}
