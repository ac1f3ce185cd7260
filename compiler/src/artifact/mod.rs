//! The trained-model file: one safetensors file holding the scorer's f32 tensors, with a JSON
//! metadata entry under the key `fomo_ad` (see docs/artifact.md for the format).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::data::{Resize, Scaling};
use crate::error::{Error, Result};
use crate::scorer::{self, Scorer, ScorerKind, TensorMap};

/// Bumped on any incompatible change; older readers refuse newer files.
pub const FORMAT_VERSION: u32 = 1;
/// The safetensors metadata key holding [`ModelMeta`] as JSON.
pub const METADATA_KEY: &str = "fomo_ad";
/// Artifacts larger than this are refused before reading (a corrupt size field must not make us
/// allocate gigabytes).
pub const MAX_ARTIFACT_BYTES: u64 = 1 << 30;

/// Everything about a trained model except the scorer's tensors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelMeta {
    pub format_version: u32,
    /// fomo-ad version that wrote the file.
    pub generator: String,
    pub scorer: ScorerKind,
    /// The scorer's hyper-parameters and normalisation constants ([`Scorer::metadata`]).
    pub scorer_config: serde_json::Value,
    pub input: InputSpec,
    /// Feature grid of the backbone output the scorer reads: `[height, width, channels]`.
    pub feature_grid: [usize; 3],
    /// Cell grid of the scores: `[rows, cols]`.
    pub grid: [usize; 2],
    pub backbone: BackboneSpec,
    /// Suggested threshold: the maximum image score over the training set (as Edge Impulse does).
    pub threshold: f32,
    pub training: TrainingInfo,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub width: usize,
    pub height: usize,
    /// 1 (luma) or 3 (RGB).
    pub channels: usize,
    pub scaling: Scaling,
    pub resize: Resize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackboneSpec {
    /// sha256 of the backbone ONNX file; a model is refused with any other backbone.
    pub sha256: String,
    /// File name the model was trained with (informational).
    pub name: String,
    /// `--cut`, if one was given.
    pub cut: Option<String>,
    /// Nodes whose outputs are concatenated into the features (the deepest first).
    pub feature_nodes: Vec<String>,
    /// `--layers`: how many feature maps at the grid's stride are concatenated.
    pub layers: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingInfo {
    pub images: usize,
    pub seed: u64,
    /// Mean and maximum image score over the training set.
    pub mean_image_score: f32,
    pub max_image_score: f32,
}

/// A loaded model: metadata, the rebuilt scorer, and the file's hash.
pub struct Model {
    pub meta: ModelMeta,
    pub scorer: Box<dyn Scorer>,
    pub path: PathBuf,
    pub sha256: String,
}

impl Model {
    /// Refuses to pair the model with a backbone other than the one it was trained with.
    pub fn check_backbone(&self, backbone_sha256: &str, backbone_path: &Path) -> Result<()> {
        if self.meta.backbone.sha256 != backbone_sha256 {
            return Err(Error::input(
                &self.path,
                format!(
                    "was trained with backbone `{}` (sha256 {}…) but {} has sha256 {}…; pass the model's own backbone with --backbone",
                    self.meta.backbone.name,
                    &self.meta.backbone.sha256.get(..12).unwrap_or(&self.meta.backbone.sha256),
                    backbone_path.display(),
                    &backbone_sha256[..12]
                ),
            ));
        }
        Ok(())
    }
}

/// Writes the artifact atomically (a temporary file beside `path`, then a rename).
pub fn save(path: &Path, meta: &ModelMeta, scorer: &dyn Scorer) -> Result<()> {
    write_atomically(path, &to_bytes(path, meta, scorer)?)
}

/// The artifact's bytes; `path` only names it in messages.
pub fn to_bytes(path: &Path, meta: &ModelMeta, scorer: &dyn Scorer) -> Result<Vec<u8>> {
    let tensors = scorer.tensors();
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(name, shape, data)| {
            (
                name,
                shape,
                data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(name, shape, data)| {
            let view = TensorView::new(Dtype::F32, shape.clone(), data)
                .map_err(|e| Error::input(path, format!("tensor `{name}`: {e}")))?;
            Ok((name.clone(), view))
        })
        .collect::<Result<_>>()?;
    let metadata = HashMap::from([(
        METADATA_KEY.to_string(),
        serde_json::to_string(meta).expect("metadata always serialises"),
    )]);
    safetensors::serialize(views, Some(metadata))
        .map_err(|e| Error::input(path, format!("cannot serialise: {e}")))
}

/// Writes `bytes` to `path` through a temporary file in the same directory, so a failure leaves
/// whatever was at `path` untouched.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = crate::atomic::check_file_target(path)?;
    let mut file = crate::atomic::temp_file_for(path, dir)?;
    file.write_all(bytes).map_err(|e| Error::io(path, e))?;
    file.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

pub fn load(path: &Path) -> Result<Model> {
    let size = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    if size > MAX_ARTIFACT_BYTES {
        return Err(Error::input(
            path,
            format!("is {size} bytes, larger than any model fomo-ad writes"),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let (meta, scorer) = from_bytes(path, &bytes)?;
    Ok(Model {
        meta,
        scorer,
        path: path.to_path_buf(),
        sha256,
    })
}

/// Parses and checks an artifact already in memory; `path` only names it in messages.
pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<(ModelMeta, Box<dyn Scorer>)> {
    let bad = |message: String| Error::input(path, message);
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| bad(format!("not a fomo-ad model (unreadable safetensors: {e})")))?;
    let raw_meta = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(METADATA_KEY))
        .ok_or_else(|| {
            bad(format!(
                "not a fomo-ad model (no `{METADATA_KEY}` metadata)"
            ))
        })?;
    let version = serde_json::from_str::<serde_json::Value>(raw_meta)
        .map_err(|e| bad(format!("metadata `{METADATA_KEY}` is not JSON: {e}")))?
        .get("format_version")
        .and_then(|v| v.as_u64())
        .ok_or_else(|| bad("metadata has no integer `format_version`".into()))?;
    if version != u64::from(FORMAT_VERSION) {
        return Err(bad(format!("format_version {version} is not supported (this fomo-ad reads version {FORMAT_VERSION}; upgrade fomo-ad)")));
    }
    let meta = parse_meta(raw_meta).map_err(bad)?;
    let tensors =
        SafeTensors::deserialize(bytes).map_err(|e| bad(format!("unreadable safetensors: {e}")))?;
    let mut map = TensorMap::new();
    for (name, view) in tensors.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(bad(format!(
                "tensor `{name}` has dtype {:?}; fomo-ad models hold f32 only",
                view.dtype()
            )));
        }
        let values = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        map.insert(name, (view.shape().to_vec(), values));
    }
    let scorer = scorer::from_parts(meta.scorer, &meta.scorer_config, &map).map_err(bad)?;
    check_consistency(&meta, scorer.as_ref()).map_err(bad)?;
    Ok((meta, scorer))
}

/// The top-level keys of [`ModelMeta`], in the order a reader checks them.
const META_KEYS: [&str; 10] = [
    "format_version",
    "generator",
    "scorer",
    "scorer_config",
    "input",
    "feature_grid",
    "grid",
    "backbone",
    "threshold",
    "training",
];

/// Parses the metadata JSON; on failure, names the top-level key at fault (serde's own message
/// only gives a line and column).
fn parse_meta(raw: &str) -> std::result::Result<ModelMeta, String> {
    serde_json::from_str(raw).map_err(|e| {
        locate_meta_error(raw).unwrap_or_else(|| format!("metadata `{METADATA_KEY}`: {e}"))
    })
}

fn locate_meta_error(raw: &str) -> Option<String> {
    use serde::de::DeserializeOwned;
    let map = match serde_json::from_str::<serde_json::Value>(raw).ok()? {
        serde_json::Value::Object(map) => map,
        _ => return Some(format!("metadata `{METADATA_KEY}` is not a JSON object")),
    };
    if let Some(unknown) = map.keys().find(|k| !META_KEYS.contains(&k.as_str())) {
        return Some(format!(
            "metadata key `{}` is unknown (expected {})",
            crate::codegen::sanitize_comment(unknown),
            META_KEYS.join(", ")
        ));
    }
    fn check<T: DeserializeOwned>(
        map: &serde_json::Map<String, serde_json::Value>,
        key: &str,
    ) -> Option<String> {
        match map.get(key) {
            None => Some(format!("metadata key `{key}` is missing")),
            Some(value) => serde_json::from_value::<T>(value.clone())
                .err()
                .map(|e| format!("metadata key `{key}`: {e}")),
        }
    }
    check::<u32>(&map, "format_version")
        .or_else(|| check::<String>(&map, "generator"))
        .or_else(|| check::<ScorerKind>(&map, "scorer"))
        .or_else(|| check::<serde_json::Value>(&map, "scorer_config"))
        .or_else(|| check::<InputSpec>(&map, "input"))
        .or_else(|| check::<[usize; 3]>(&map, "feature_grid"))
        .or_else(|| check::<[usize; 2]>(&map, "grid"))
        .or_else(|| check::<BackboneSpec>(&map, "backbone"))
        .or_else(|| check::<f32>(&map, "threshold"))
        .or_else(|| check::<TrainingInfo>(&map, "training"))
}

/// Metadata that contradicts the tensors or itself, or sizes no model has (which would make the
/// commands that read it allocate without bound).
fn check_consistency(meta: &ModelMeta, scorer: &dyn Scorer) -> std::result::Result<(), String> {
    let max = crate::frontend::MAX_INPUT_SIDE;
    let input = &meta.input;
    for (key, side) in [("input.width", input.width), ("input.height", input.height)] {
        if side == 0 || !side.is_multiple_of(8) || side > max {
            return Err(format!(
                "metadata key `{key}` is {side} (expected a multiple of 8 from 8 to {max})"
            ));
        }
    }
    if input.channels != 1 && input.channels != 3 {
        return Err(format!(
            "metadata key `input.channels` is {} (expected 1 or 3)",
            input.channels
        ));
    }
    let [fh, fw, fc] = meta.feature_grid;
    if fh == 0 || fw == 0 || fh > input.height || fw > input.width {
        return Err(format!(
            "metadata key `feature_grid` {:?} does not fit the {}x{} input",
            meta.feature_grid, input.width, input.height
        ));
    }
    if scorer.channels() != fc {
        return Err(format!(
            "metadata key `feature_grid` says {fc} channels but the scorer reads {}",
            scorer.channels()
        ));
    }
    let pool = meta.scorer_config.get("pool_size").and_then(|v| v.as_u64());
    if let Some(pool) = pool.filter(|&p| p >= 2 * fh.max(fw) as u64) {
        // A wider window sees nothing more, and the time to score grows with its area.
        return Err(format!(
            "metadata key `scorer_config.pool_size` is {pool}, larger than the {fh}x{fw} feature grid can use"
        ));
    }
    let (rows, cols) = scorer.grid(crate::ir::Shape::new(fc, fh, fw));
    if rows == 0 || cols == 0 {
        return Err(format!(
            "the scorer gives no cells on the {fh}x{fw} feature map of metadata key `feature_grid` (its pooling window is larger)"
        ));
    }
    if [rows, cols] != meta.grid {
        return Err(format!("metadata key `grid` {:?} disagrees with the scorer, which gives {rows}x{cols} cells on a {fh}x{fw} feature map", meta.grid));
    }
    if !meta.threshold.is_finite() {
        return Err("metadata key `threshold` is not finite".into());
    }
    if meta.backbone.sha256.len() != 64
        || !meta.backbone.sha256.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err("metadata key `backbone.sha256` is not a sha256 hex digest".into());
    }
    if meta.backbone.layers == 0 || meta.backbone.layers > 3 {
        return Err(format!(
            "metadata key `backbone.layers` is {} (expected 1 to 3)",
            meta.backbone.layers
        ));
    }
    Ok(())
}
