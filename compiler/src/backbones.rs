//! The backbones shipped inside the binary, so every command has a default that needs no file.

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::frontend::{self, Backbone, BackboneOptions};

/// MobileNetV2 width 1.0 cut after `block_6_expand_relu` (see models/PROVENANCE.md).
pub const DEFAULT_NAME: &str = "mobilenetv2_1.0_cut8.onnx";
pub static DEFAULT_ONNX: &[u8] = include_bytes!("../../models/mobilenetv2_1.0_cut8.onnx");

/// Loads `path`, or the embedded default backbone when no path is given.
pub fn load(path: Option<&Path>, options: &BackboneOptions) -> Result<Backbone> {
    match path {
        Some(path) => frontend::load_backbone(path, options),
        None => frontend::load_backbone_bytes(&default_path(), DEFAULT_ONNX, options),
    }
}

/// How the embedded backbone is named in messages and metadata.
pub fn default_path() -> PathBuf {
    PathBuf::from(format!("<embedded>/{DEFAULT_NAME}"))
}
