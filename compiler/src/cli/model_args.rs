//! Loading a trained model together with the backbone it was trained with.

use std::path::PathBuf;

use crate::artifact::{self, Model};
use crate::data::Preprocess;
use crate::error::{Error, Result};
use crate::frontend::{Backbone, BackboneOptions};
use crate::pipeline::{feature_graph, FeatureGraph};

#[derive(clap::Args, Debug, Clone)]
pub struct ModelArgs {
    /// Trained model (from `fomo-ad train`).
    #[arg(long, value_name = "MODEL.safetensors")]
    pub model: PathBuf,
    /// The backbone the model was trained with (default: the embedded one).
    #[arg(long, value_name = "B.onnx")]
    pub backbone: Option<PathBuf>,
}

/// A model ready to run: its backbone lowered at the model's input size and cut, checked by hash.
pub struct LoadedModel {
    pub model: Model,
    pub backbone: Backbone,
    pub features: FeatureGraph,
    pub preprocess: Preprocess,
}

impl ModelArgs {
    pub fn load(&self) -> Result<LoadedModel> {
        let model = artifact::load(&self.model)?;
        let meta = &model.meta;
        let options = BackboneOptions {
            input_size: Some((meta.input.width, meta.input.height)),
            cut: meta.backbone.cut.clone(),
        };
        let backbone = crate::backbones::load(self.backbone.as_deref(), &options)?;
        model.check_backbone(&backbone.sha256, &backbone.path)?;
        let features = feature_graph(&backbone, meta.backbone.layers)?;
        // The hash ties the model to its backbone file, but the metadata could still have been
        // edited: the scorer must get the feature map it was fitted on.
        let shape = features.graph.output_shape();
        if [shape.h, shape.w, shape.c] != meta.feature_grid {
            return Err(Error::input(
                &model.path,
                format!(
                    "metadata key `feature_grid` is {:?} but the backbone gives {}x{}x{} features at the model's input size",
                    meta.feature_grid, shape.h, shape.w, shape.c
                ),
            ));
        }
        let input = features.graph.input_shape();
        if input.c != meta.input.channels {
            return Err(Error::input(
                &model.path,
                format!(
                    "metadata key `input.channels` is {} but the backbone takes {} channels",
                    meta.input.channels, input.c
                ),
            ));
        }
        let preprocess = Preprocess {
            width: meta.input.width,
            height: meta.input.height,
            channels: meta.input.channels,
            resize: meta.input.resize,
            scaling: meta.input.scaling,
        };
        Ok(LoadedModel {
            model,
            backbone,
            features,
            preprocess,
        })
    }
}
