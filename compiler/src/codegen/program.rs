//! `Program`: everything numeric decided before an emitter runs. Both emitters (C and Rust)
//! consume the same `Program` and only print it, so they cannot disagree on a layout, an offset or
//! a folded constant.
//!
//! # Conventions every emitter and kernel follows
//! - **Arena**: one `f32` buffer of [`ArenaPlan::floats`] values. Every activation and scratch
//!   buffer is an [`Operand`]: an offset in floats into the arena plus a shape.
//! - **Layout**: every activation is interleaved **HWC** (channels fastest): element `(y, x, c)`
//!   of an operand of shape `{c, h, w}` is at `offset + (y * w + x) * c_count + c`. The input
//!   pixels, the feature map and the scorer's cells all use it, so a cell's feature vector is
//!   contiguous.
//! - **Constants** live in [`Program::constants`] and are referenced by [`ConstId`]; each kernel's
//!   doc below states the layout of the constants it reads (re-laid out from the IR's OIHW here).
//! - **Clamp bounds** ([`Bounds`]) are always finite: an unbounded side (ReLU's max) becomes
//!   `f32::MAX`, so no emitter ever prints an infinity.
//! - **In place**: a step whose output offset equals an input offset was planned in place; only
//!   elementwise kernels (`Add`, `Clamp`, `ChannelAffine`) are ever planned that way, so their
//!   implementations must not assume the output and inputs are distinct (no `restrict`/`noalias`).
//! - Every text field that can reach a comment ([`Step::label`], [`Constant::comment`],
//!   [`Identity::name`], option values) is already sanitised with [`super::sanitize_comment`].

use crate::error::{Error, Result};
use crate::ir::ops::{Clamp, Conv, Window};
use crate::ir::{Graph, Op, Shape, TensorId};
use crate::passes::memory::{self, Buffer};

/// Byte alignment of every arena offset and of the arena itself (and of the constant arrays).
pub const ARENA_ALIGNMENT: usize = 16;

/// Everything an emitter prints. Fields are in the order the generated code uses them.
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    /// What the `@generated` header of every file records.
    pub provenance: Provenance,
    /// Pixel conversion `u8 -> f32` into the arena: the first thing `run` does.
    pub input: InputStage,
    /// The optimised backbone, one kernel call per step, in execution order.
    pub steps: Vec<Step>,
    /// The backbone's output (the feature map, HWC) as the scorer reads it.
    pub features: Operand,
    /// The scorer, which turns the feature map into one score per grid cell.
    pub scorer: ScorerStage,
    /// The grid of cell scores (the result's `cells`, row-major).
    pub grid: Grid,
    /// `anomalous = max_score >= threshold`.
    pub threshold: f32,
    /// Every constant array, in the order they are emitted (input scaling, steps, scorer).
    pub constants: Vec<Constant>,
    pub arena: ArenaPlan,
}

/// Identity of one input file, as the header records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// File name (sanitised), for humans.
    pub name: String,
    /// Lower-case hex sha256 of the file's bytes.
    pub sha256: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provenance {
    /// `crate::VERSION`.
    pub tool_version: String,
    /// The trained model artifact.
    pub model: Identity,
    /// The backbone ONNX file.
    pub backbone: Identity,
    /// Options that shaped the output, `(key, value)`, sanitised; emitters append their own
    /// (language, name) before printing.
    pub options: Vec<(String, String)>,
}

/// `input[(y * w + x) * c + ch] = (float)pixels[same index] * scale[ch] + offset[ch]`, evaluated
/// as a plain multiply then add in f32.
#[derive(Clone, Debug, PartialEq)]
pub struct InputStage {
    /// `shape.w` x `shape.h` pixels of `shape.c` interleaved channels (1 = grayscale, 3 = RGB).
    pub shape: Shape,
    /// `[channels]` each: the artifact's pixel scaling.
    pub scale: ConstId,
    pub offset: ConstId,
    /// Where the converted (or, for `run_f32`, copied) input goes.
    pub output: Operand,
}

/// A region of the arena holding one HWC tensor (or a scratch vector, then `{c: len, h: 1, w: 1}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Operand {
    /// Offset in floats from the start of the arena (a multiple of `ARENA_ALIGNMENT / 4`).
    pub offset: usize,
    pub shape: Shape,
}

impl Operand {
    pub fn len(&self) -> usize {
        self.shape.len()
    }
    pub fn is_empty(&self) -> bool {
        self.shape.is_empty()
    }
}

/// Index into [`Program::constants`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConstId(pub usize);

/// One constant array. Emitters prefix `name` (e.g. `PREFIX_l03_weights` in C).
#[derive(Clone, Debug, PartialEq)]
pub struct Constant {
    /// Lower-case snake-case identifier, unique in the program, without any prefix.
    pub name: String,
    /// Row-major values; all finite (checked when the program is built).
    pub values: Vec<f32>,
    /// Logical dimensions, outermost first (their product is `values.len()`).
    pub dims: Vec<usize>,
    /// What the dimensions are, e.g. `"[in][out]"`, for the comment above the array.
    pub layout: String,
    /// One sanitised line: what the constant is and where it comes from.
    pub comment: String,
}

/// Inclusive clamp bounds, finite (`f32::MAX` stands for an unbounded side).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bounds {
    pub min: f32,
    pub max: f32,
}

impl Bounds {
    pub fn from_clamp(clamp: Clamp) -> Bounds {
        let finite = |v: f32| v.clamp(-f32::MAX, f32::MAX);
        Bounds {
            min: finite(clamp.min),
            max: finite(clamp.max),
        }
    }
    /// `min(max(v, min), max)`, the order the IR's `Clamp::apply` uses.
    pub fn apply(&self, v: f32) -> f32 {
        v.max(self.min).min(self.max)
    }
}

/// One kernel call of the backbone.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// The source node's name, sanitised: for comments only.
    pub label: String,
    pub kernel: Kernel,
    /// Operands read, in the kernel's argument order.
    pub inputs: Vec<Operand>,
    pub output: Operand,
    /// Multiply-accumulates of this step (as `inspect` counts them).
    pub macs: u64,
}

/// The kernels a backbone step can call, with their exact semantics. Every kernel reads and writes
/// HWC operands; shapes come from the step's operands.
#[derive(Clone, Debug, PartialEq)]
pub enum Kernel {
    /// 1x1 convolution, stride 1, no padding, one group: a matrix product over pixels,
    /// `out[p][o] = act(bias[o] + sum_i in[p][i] * W[i][o] (+ out[p][o] when residual))`.
    /// `weights`: `[ceil(out / B)][in][B]` with `B` = [`POINTWISE_BLOCK`]: `W[i][o]` is at
    /// `weights[o / B][i][o % B]`, the last block zero-padded, so kernels compute whole blocks
    /// of `B` outputs. `bias`: `[ceil(out / B) * B]`, zero-padded likewise.
    /// With `residual`, the output operand holds the skip connection on entry (a following
    /// `Add` fused in: the planner gave the sum the skip tensor's buffer).
    ConvPointwise {
        weights: ConstId,
        bias: ConstId,
        activation: Option<Bounds>,
        residual: bool,
    },
    /// Depthwise convolution (groups = in = out channels), any window:
    /// `out[oy][ox][c] = act(bias[c] + sum_{ky,kx} in[iy][ix][c] * weights[ky][kx][c])` with
    /// `iy = oy * stride[0] + ky * dilation[0] - pads[0]` (likewise x with index 1 and `pads[1]`);
    /// taps outside the input read zero. `weights`: `[kh][kw][channels]`.
    ConvDepthwise {
        window: Window,
        weights: ConstId,
        bias: ConstId,
        activation: Option<Bounds>,
    },
    /// Any other convolution: groups `g`, `ipg = in / g`, `opg = out / g`,
    /// `out[oy][ox][gi*opg + o] = act(bias[..] + sum_{ky,kx,i} in[iy][ix][gi*ipg + i] *
    /// weights[gi][ky][kx][i][o])`, padding as for depthwise.
    /// `weights`: `[groups][kh][kw][in / groups][out / groups]`.
    ConvGeneral {
        window: Window,
        groups: usize,
        weights: ConstId,
        bias: ConstId,
        activation: Option<Bounds>,
    },
    /// `out = act(a + b)` elementwise over two operands of the same shape.
    Add { activation: Option<Bounds> },
    /// `out = min(max(in, min), max)` elementwise.
    Clamp(Bounds),
    /// `out[p][c] = in[p][c] * scale[c] + bias[c]`. `scale`, `bias`: `[channels]`.
    ChannelAffine { scale: ConstId, bias: ConstId },
    /// Average over each window (padding as for convolutions); the divisor is `kh * kw` when
    /// `count_include_pad`, else the number of taps inside the input (at least 1). Sums in
    /// (ky, kx) order, then one division.
    AvgPool {
        window: Window,
        count_include_pad: bool,
    },
    /// Maximum over the taps inside the input.
    MaxPool { window: Window },
    /// Zero padding `[top, left, bottom, right]`.
    Pad { pads: [usize; 4] },
    /// Channel concatenation: each output pixel is the inputs' pixels one after the other.
    Concat,
}

impl Kernel {
    /// Short name of the kernel (emitters use it to name and select kernel functions).
    pub fn name(&self) -> &'static str {
        match self {
            Kernel::ConvPointwise { .. } => "conv_pointwise",
            Kernel::ConvDepthwise { .. } => "conv_depthwise",
            Kernel::ConvGeneral { .. } => "conv_general",
            Kernel::Add { .. } => "add",
            Kernel::Clamp(_) => "clamp",
            Kernel::ChannelAffine { .. } => "channel_affine",
            Kernel::AvgPool { .. } => "avg_pool",
            Kernel::MaxPool { .. } => "max_pool",
            Kernel::Pad { .. } => "pad",
            Kernel::Concat => "concat",
        }
    }
    /// Whether the kernel may be planned in place of its input(s).
    pub fn elementwise(&self) -> bool {
        matches!(
            self,
            Kernel::Add { .. } | Kernel::Clamp(_) | Kernel::ChannelAffine { .. }
        )
    }
}

/// The grid of cell scores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grid {
    pub rows: usize,
    pub cols: usize,
}

impl Grid {
    pub fn cells(&self) -> usize {
        self.rows * self.cols
    }
}

/// The scorer, as the generated code runs it after the backbone.
#[derive(Clone, Debug, PartialEq)]
pub enum ScorerStage {
    PatchCore(PatchCoreStage),
    Gmm(GmmStage),
}

impl ScorerStage {
    pub fn name(&self) -> &'static str {
        match self {
            ScorerStage::PatchCore(_) => "patchcore",
            ScorerStage::Gmm(_) => "gmm",
        }
    }
}

/// Output channels a 1x1 convolution kernel computes at once: 16 floats are one AVX-512
/// register or four NEON ones, and every MobileNetV2 width's channel count but 24 divides it.
pub const POINTWISE_BLOCK: usize = 16;

/// PatchCore: for each cell (row-major over the grid):
/// 1. `pooled` = `pool x pool` average of `features`, stride 1, zero padding `pool / 2`, divisor
///    always `pool * pool` (sums in (ky, kx) order then one division). With `pool == 1` there is
///    no pooling step and `pooled == features` (the same operand).
/// 2. The cell score is the mean L2 distance from the cell's pooled vector `v` to its `neighbors`
///    nearest memory-bank rows, found by an exact search that skips the rows it can prove are
///    too far. With `c = v - mean`, `q = basis v - basis_mean` (`= basis c`; the bank's top
///    `rank` principal axes, orthonormal rows) and `r = sqrt(max(0, ||c||^2 - ||q||^2))`, every
///    row `m` has the lower
///    bound `bound[m] = ||q - bank_projected[., m]||^2 + gap(r, bank_residuals[m])^2` on its
///    squared distance (Pythagoras over the principal subspace and its complement; `gap` widens
///    `r` by the rounding allowance `1e-5 ||c||^2` on `r^2`). `bound` goes to `scratch`.
/// 3. Seeds: `neighbors` times, the row with the smallest bound has its squared distance
///    `sum_i (v[i] - bank[m][i])^2` computed exactly and is excluded from the scan. Scan: every
///    other row whose bound is at most `(sqrt(d_k) + slack)^2`, `d_k` the k-th smallest exact
///    squared distance so far and `slack = 1e-4 (||c|| + bank_radius)` (float rounding of the
///    bound), has its exact distance computed; the `neighbors` smallest are kept.
///
/// The search returns the same distances as a scan of the whole bank; only the work differs.
#[derive(Clone, Debug, PartialEq)]
pub struct PatchCoreStage {
    /// Odd pooling window; 1 = none.
    pub pool: usize,
    pub pooled: Operand,
    pub neighbors: usize,
    pub memory_len: usize,
    /// Channels per cell (= feature channels).
    pub dim: usize,
    /// `[memory_len][dim]`.
    pub bank: ConstId,
    /// Principal axes kept for the bound (at most [`PATCHCORE_RANK`], at most `dim`).
    pub rank: usize,
    /// `[dim]`: the bank's mean row, computed in f64 then rounded.
    pub mean: ConstId,
    /// `[rank][dim]`: orthonormal principal axes of the bank, largest variance first.
    pub basis: ConstId,
    /// `[rank]`: `basis mean`, so that `q = basis v - basis_mean` needs no centred copy of `v`.
    pub basis_mean: ConstId,
    /// `[rank][memory_len]`: `basis (bank[m] - mean)`, transposed so the bound vectorises over
    /// rows.
    pub bank_projected: ConstId,
    /// `[memory_len]`: `||(bank[m] - mean)||` outside the principal subspace.
    pub bank_residuals: ConstId,
    /// `[1]`: `max_m ||bank[m] - mean|| + ||mean||`, the scale of the rounding slack (a constant
    /// array like the bank it is derived from, so that retraining changes only weight files).
    pub bank_radius: ConstId,
    /// `PATCHCORE_GROUP * memory_len + neighbors` floats: the bounds of a group of cells, then
    /// the best squared distances.
    pub scratch: Operand,
}

/// Principal axes the PatchCore search bounds with: enough to prune almost every row on
/// MobileNetV2 features (16 axes leave ~1 % of a 2,880-row bank to check exactly), few enough
/// that the bound costs a fraction of the full distances it saves.
pub const PATCHCORE_RANK: usize = 16;
/// Cells whose bounds the kernels compute in one pass over `bank_projected` (C's
/// `PATCHCORE_GROUP`, the runtime's `patchcore::GROUP`): each projected value is loaded once per
/// group instead of once per cell.
pub const PATCHCORE_GROUP: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Covariance {
    Full,
    Diag,
}

/// How a cell's log-likelihood becomes its score.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GmmNormalisation {
    /// `|loglik - mean| / std`; `mean` and `std` are one-element constants.
    Standardized { mean: ConstId, std: ConstId },
    /// `-loglik`.
    NegativeLogLikelihood,
}

/// Gaussian mixture: for each grid cell (row-major):
/// 1. `pooled` = `pool_kernel x pool_kernel` average of `features`, stride `pool_stride`, VALID
///    (no padding), sums in (ky, kx) order then one division by `pool_kernel^2`. The grid is
///    `pooled`'s height x width.
/// 2. With a projection: `x[j] = sum_c projection[j][c] * pooled_cell[c]` into `projected`
///    (`[grid][dim]` HWC); without one, `x` is the pooled cell itself.
/// 3. Per component `k`: `diff = x - means[k]` (into `scratch`, `dim` floats), `q` = squared norm
///    of `diff * U_k` where `U_k` is sklearn's upper-triangular precision Cholesky factor:
///    full: `y[j] = sum_{i <= j} diff[i] * precision[k][j][i]` (packed, see `precision`),
///    `q = sum_j y[j]^2`; diag: `q = sum_j (diff[j] * precision[k][j])^2`.
///    `t_k = log_constants[k] - 0.5 q`.
/// 4. `loglik = m + log(sum_k exp(t_k - m))`, `m = max_k t_k`; the cell score by `normalisation`.
#[derive(Clone, Debug, PartialEq)]
pub struct GmmStage {
    pub pool_kernel: usize,
    pub pool_stride: usize,
    pub pooled: Operand,
    /// `[dim][channels]` and the projected cells, when the model projects.
    pub projection: Option<(ConstId, Operand)>,
    pub covariance: Covariance,
    pub components: usize,
    /// Dimension the mixture lives in.
    pub dim: usize,
    /// `[components][dim]`.
    pub means: ConstId,
    /// Full: `[components][dim * (dim + 1) / 2]`, for each component the rows `j = 0..dim` of
    /// `U_k^T` packed: row `j` holds `U_k[0][j] ..= U_k[j][j]` (j + 1 values) and starts at
    /// `j * (j + 1) / 2`. Diag: `[components][dim]`.
    pub precision: ConstId,
    /// `[components]`: `log w_k - 0.5 dim ln(2 pi) + sum_j ln U_k[j][j]`, computed in f64.
    pub log_constants: ConstId,
    pub normalisation: GmmNormalisation,
    /// `dim` floats for one component's `diff`.
    pub scratch: Operand,
}

/// The arena as planned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArenaPlan {
    /// Arena length in floats (`bytes / 4`).
    pub floats: usize,
    pub bytes: usize,
    /// The schedule's lower bound (largest set of simultaneously live buffers), in bytes.
    pub lower_bound_bytes: usize,
    /// Byte alignment of the arena and every offset.
    pub alignment: usize,
}

// ---------------------------------------------------------------------------------------------
// Lowering: optimised graph + scorer -> Program.

/// The scorer as the lowering needs it (filled from the artifact's scorer, or directly in tests).
#[derive(Clone, Debug, PartialEq)]
pub enum ScorerSpec {
    PatchCore {
        /// Odd pooling window (1 = none).
        pool: usize,
        neighbors: usize,
        /// `[memory_len][dim]`.
        memory_bank: Vec<f32>,
        dim: usize,
    },
    Gmm {
        pool_kernel: usize,
        pool_stride: usize,
        /// `[dim][channels]`.
        projection: Option<Vec<f32>>,
        covariance: Covariance,
        components: usize,
        dim: usize,
        /// `[components][dim]`.
        means: Vec<f32>,
        /// sklearn's `precisions_cholesky_`: full `[components][dim][dim]` upper-triangular,
        /// diag `[components][dim]`.
        precisions_cholesky: Vec<f32>,
        /// `[components]`.
        log_weights: Vec<f32>,
        /// `Some((mean, std))`: standardised scores; `None`: negative log-likelihood.
        standardize: Option<(f64, f64)>,
    },
}

/// The parts of a scorer's `scorer_config` (see docs/artifact.md) the lowering reads.
#[derive(serde::Deserialize)]
struct PatchCoreConfig {
    pool_size: usize,
    neighbors: usize,
    dim: usize,
}

#[derive(serde::Deserialize)]
struct GmmConfig {
    pool_kernel: usize,
    pool_stride: usize,
    projection: bool,
    covariance: crate::scorer::Covariance,
    components: usize,
    dim: usize,
    score: crate::scorer::GmmScore,
}

impl ScorerSpec {
    /// Reads a fitted scorer through its artifact form (`metadata` + named `tensors`), the
    /// documented, stable view of every scorer.
    pub fn from_scorer(scorer: &dyn crate::scorer::Scorer) -> Result<ScorerSpec> {
        use crate::scorer::{self as sc, ScorerKind};
        let bad =
            |e: String| Error::usage(format!("cannot compile the {} scorer: {e}", scorer.kind()));
        let mut tensors: std::collections::HashMap<String, Vec<f32>> = scorer
            .tensors()
            .into_iter()
            .map(|(name, _, data)| (name, data))
            .collect();
        let mut take = |name: &str| {
            tensors
                .remove(name)
                .ok_or_else(|| bad(format!("tensor `{name}` is missing")))
        };
        Ok(match scorer.kind() {
            ScorerKind::PatchCore => {
                let config: PatchCoreConfig =
                    serde_json::from_value(scorer.metadata()).map_err(|e| bad(e.to_string()))?;
                ScorerSpec::PatchCore {
                    pool: config.pool_size,
                    neighbors: config.neighbors,
                    memory_bank: take(sc::PATCHCORE_MEMORY_BANK)?,
                    dim: config.dim,
                }
            }
            ScorerKind::Gmm => {
                let config: GmmConfig =
                    serde_json::from_value(scorer.metadata()).map_err(|e| bad(e.to_string()))?;
                ScorerSpec::Gmm {
                    pool_kernel: config.pool_kernel,
                    pool_stride: config.pool_stride,
                    projection: if config.projection {
                        Some(take(sc::GMM_PROJECTION)?)
                    } else {
                        None
                    },
                    covariance: match config.covariance {
                        sc::Covariance::Full => Covariance::Full,
                        sc::Covariance::Diag => Covariance::Diag,
                    },
                    components: config.components,
                    dim: config.dim,
                    means: take(sc::GMM_MEANS)?,
                    precisions_cholesky: take(sc::GMM_PRECISIONS_CHOLESKY)?,
                    log_weights: take(sc::GMM_LOG_WEIGHTS)?,
                    standardize: match config.score {
                        sc::GmmScore::Standardized { mean, std } => Some((mean, std)),
                        sc::GmmScore::Nll => None,
                    },
                }
            }
        })
    }
}

/// Everything [`lower`] needs.
#[derive(Clone, Debug)]
pub struct Source<'a> {
    /// The backbone after `passes::optimize`.
    pub graph: &'a Graph,
    pub scorer: ScorerSpec,
    /// Pixel scaling per input channel: `x * scale + offset`.
    pub input_scale: Vec<f32>,
    pub input_offset: Vec<f32>,
    pub threshold: f32,
    pub model: Identity,
    pub backbone: Identity,
    pub options: Vec<(String, String)>,
}

/// A buffer being planned: what it is for and its lifetime in steps.
struct Pending {
    floats: usize,
    first: usize,
    last: usize,
    in_place_of: Option<usize>,
}

/// Collects buffers and constants while steps are lowered, then plans the arena.
struct Builder {
    buffers: Vec<Pending>,
    constants: Vec<Constant>,
}

impl Builder {
    fn buffer(&mut self, floats: usize, first: usize) -> usize {
        self.buffers.push(Pending {
            floats,
            first,
            last: first,
            in_place_of: None,
        });
        self.buffers.len() - 1
    }
    fn read(&mut self, buffer: usize, step: usize) {
        let b = &mut self.buffers[buffer];
        b.last = b.last.max(step);
    }
    fn constant(
        &mut self,
        name: String,
        values: Vec<f32>,
        dims: Vec<usize>,
        layout: &str,
        comment: String,
    ) -> Result<ConstId> {
        debug_assert_eq!(dims.iter().product::<usize>(), values.len());
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::usage(format!(
                "constant `{name}` holds a non-finite value ({}) at index {i}; it cannot be compiled",
                values[i]
            )));
        }
        self.constants.push(Constant {
            name,
            values,
            dims,
            layout: layout.to_string(),
            comment: super::sanitize_comment(&comment),
        });
        Ok(ConstId(self.constants.len() - 1))
    }
}

/// A step whose operands still name buffers (offsets come after planning).
struct DraftStep {
    label: String,
    kernel: Kernel,
    inputs: Vec<(usize, Shape)>,
    output: (usize, Shape),
    macs: u64,
}

/// Lowers an optimised backbone and a scorer into a [`Program`]. Errors name what cannot be
/// compiled (a shape mismatch between backbone and scorer, a non-finite constant).
pub fn lower(source: &Source) -> Result<Program> {
    let graph = source.graph;
    graph
        .validate()
        .map_err(|e| Error::usage(format!("backbone graph is inconsistent: {e}")))?;
    let input_shape = graph.input_shape();
    if source.input_scale.len() != input_shape.c || source.input_offset.len() != input_shape.c {
        return Err(Error::usage(format!(
            "pixel scaling has {} scale and {} offset values for {} input channels",
            source.input_scale.len(),
            source.input_offset.len(),
            input_shape.c
        )));
    }
    if !source.threshold.is_finite() {
        return Err(Error::usage(format!(
            "threshold {} is not a finite number",
            source.threshold
        )));
    }
    let mut b = Builder {
        buffers: Vec::new(),
        constants: Vec::new(),
    };
    let c = input_shape.c;
    let input_scale = b.constant(
        "input_scale".into(),
        source.input_scale.clone(),
        vec![c],
        "[channels]",
        "pixel scaling: input = pixel x scale + offset".into(),
    )?;
    let input_offset = b.constant(
        "input_offset".into(),
        source.input_offset.clone(),
        vec![c],
        "[channels]",
        "pixel scaling: input = pixel x scale + offset".into(),
    )?;
    // Step 0 writes the input; node i runs at step i + 1; the scorer's steps follow.
    let mut tensor_buffer: Vec<Option<usize>> = vec![None; graph.tensors.len()];
    tensor_buffer[graph.input.0] = Some(b.buffer(input_shape.len(), 0));
    let mut last_use = vec![0; graph.tensors.len()];
    for (i, node) in graph.nodes.iter().enumerate() {
        for t in &node.inputs {
            last_use[t.0] = i + 1;
        }
    }
    let residuals = residual_fusions(graph, &last_use);
    let mut drafts = Vec::with_capacity(graph.nodes.len());
    for (i, node) in graph.nodes.iter().enumerate() {
        let step = i + 1;
        if residuals.iter().any(|r| r.add == i) {
            continue; // computed by the convolution before it
        }
        let residual = residuals.iter().find(|r| r.conv == i);
        let label = super::sanitize_comment(&node.name);
        let inputs: Vec<(usize, Shape)> = node
            .inputs
            .iter()
            .map(|t| {
                let buffer = tensor_buffer[t.0].expect("validated graphs produce before reading");
                b.read(buffer, step);
                (buffer, graph.shape(*t))
            })
            .collect();
        let out_shape = graph.shape(node.output);
        let mut kernel = lower_kernel(&mut b, &node.op, step, &label, &graph.input_shapes(node))?;
        if let Some(fusion) = residual {
            // The sum lands in the skip tensor's buffer, which dies at the add.
            let skip =
                tensor_buffer[fusion.skip.0].expect("validated graphs produce before reading");
            b.read(skip, step);
            if let Kernel::ConvPointwise {
                activation,
                residual,
                ..
            } = &mut kernel
            {
                *activation = fusion.activation;
                *residual = true;
            }
            let add = &graph.nodes[fusion.add];
            tensor_buffer[add.output.0] = Some(skip);
            drafts.push(DraftStep {
                label: format!("{label} + {}", super::sanitize_comment(&add.name)),
                kernel,
                macs: node.op.macs(&graph.input_shapes(node), out_shape),
                inputs,
                output: (skip, out_shape),
            });
            continue;
        }
        let output = b.buffer(out_shape.len(), step);
        if kernel.elementwise() {
            // Write over the first input that dies here (the feature map never does: the scorer
            // reads it). The planner checks the lifetimes again.
            b.buffers[output].in_place_of = node
                .inputs
                .iter()
                .zip(&inputs)
                .find(|(t, _)| **t != graph.output && last_use[t.0] == step)
                .map(|(_, (buf, _))| *buf);
        }
        tensor_buffer[node.output.0] = Some(output);
        drafts.push(DraftStep {
            label,
            kernel,
            macs: node.op.macs(&graph.input_shapes(node), out_shape),
            inputs,
            output: (output, out_shape),
        });
    }
    let feature_shape = graph.output_shape();
    let feature_buffer = tensor_buffer[graph.output.0].expect("the output is produced");
    let first_scorer_step = graph.nodes.len() + 1;
    let (scorer_draft, grid) = lower_scorer(
        &mut b,
        &source.scorer,
        feature_buffer,
        feature_shape,
        first_scorer_step,
    )?;

    let requests: Vec<Buffer> = b
        .buffers
        .iter()
        .map(|p| {
            let request = Buffer::new(p.floats * 4, p.first, p.last);
            match p.in_place_of {
                Some(j) => request.in_place_of(j),
                None => request,
            }
        })
        .collect();
    let plan = memory::plan(&requests, ARENA_ALIGNMENT);
    let offset = |buffer: usize| plan.offsets[buffer] / 4;
    let operand = |(buffer, shape): (usize, Shape)| Operand {
        offset: offset(buffer),
        shape,
    };
    let steps = drafts
        .into_iter()
        .map(|d| Step {
            label: d.label,
            kernel: d.kernel,
            inputs: d.inputs.into_iter().map(operand).collect(),
            output: operand(d.output),
            macs: d.macs,
        })
        .collect();
    let scorer = scorer_draft.finish(&operand);
    let input_buffer = tensor_buffer[graph.input.0].expect("the input has a buffer");
    let sanitize_identity = |id: &Identity| Identity {
        name: super::sanitize_comment(&id.name),
        sha256: super::sanitize_comment(&id.sha256),
    };
    Ok(Program {
        provenance: Provenance {
            tool_version: crate::VERSION.to_string(),
            model: sanitize_identity(&source.model),
            backbone: sanitize_identity(&source.backbone),
            options: source
                .options
                .iter()
                .map(|(k, v)| (super::sanitize_comment(k), super::sanitize_comment(v)))
                .collect(),
        },
        input: InputStage {
            shape: input_shape,
            scale: input_scale,
            offset: input_offset,
            output: operand((input_buffer, input_shape)),
        },
        steps,
        features: operand((feature_buffer, feature_shape)),
        scorer,
        grid,
        threshold: source.threshold,
        constants: b.constants,
        arena: ArenaPlan {
            floats: plan.arena_size / 4,
            bytes: plan.arena_size,
            lower_bound_bytes: plan.lower_bound,
            alignment: ARENA_ALIGNMENT,
        },
    })
}

/// A 1x1 convolution whose only reader is the `Add` right after it, which adds a skip tensor
/// that dies there: the convolution accumulates into the skip tensor's buffer instead.
struct ResidualFusion {
    conv: usize,
    add: usize,
    skip: TensorId,
    activation: Option<Bounds>,
}

fn residual_fusions(graph: &Graph, last_use: &[usize]) -> Vec<ResidualFusion> {
    let readers = |t: TensorId| graph.nodes.iter().filter(|n| n.inputs.contains(&t)).count();
    let mut fusions = Vec::new();
    for (i, pair) in graph.nodes.windows(2).enumerate() {
        let (conv_node, add_node) = (&pair[0], &pair[1]);
        let (Op::Conv(conv), Op::Add(add)) = (&conv_node.op, &add_node.op) else {
            continue;
        };
        let out = conv_node.output;
        let skip = match add_node.inputs.as_slice() {
            [a, b] if *a == out && *b != out => *b,
            [a, b] if *b == out && *a != out => *a,
            _ => continue,
        };
        let fusable = conv.is_pointwise()
            && conv.activation.is_none()
            && out != graph.output
            && readers(out) == 1
            && skip != graph.input
            && skip != graph.output
            && last_use[skip.0] == i + 2
            && graph.shape(skip) == graph.shape(out);
        if fusable {
            fusions.push(ResidualFusion {
                conv: i,
                add: i + 1,
                skip,
                activation: activation(add.activation),
            });
        }
    }
    fusions
}

fn activation(clamp: Option<Clamp>) -> Option<Bounds> {
    clamp.map(Bounds::from_clamp)
}

/// Turns one IR op into a kernel, re-laying out its constants for it.
fn lower_kernel(
    b: &mut Builder,
    op: &Op,
    step: usize,
    label: &str,
    inputs: &[Shape],
) -> Result<Kernel> {
    let prefix = format!("l{step:02}");
    Ok(match op {
        Op::Conv(conv) => lower_conv(b, conv, &prefix, label)?,
        Op::Add(add) => Kernel::Add {
            activation: activation(add.activation),
        },
        Op::Clamp(clamp) => Kernel::Clamp(Bounds::from_clamp(*clamp)),
        Op::ChannelAffine(affine) => {
            let c = inputs[0].c;
            Kernel::ChannelAffine {
                scale: b.constant(
                    format!("{prefix}_scale"),
                    affine.scale.clone(),
                    vec![c],
                    "[channels]",
                    format!("{label}: per-channel scale"),
                )?,
                bias: b.constant(
                    format!("{prefix}_bias"),
                    affine.bias.clone(),
                    vec![c],
                    "[channels]",
                    format!("{label}: per-channel bias"),
                )?,
            }
        }
        Op::AvgPool(pool) => Kernel::AvgPool {
            window: pool.window,
            count_include_pad: pool.count_include_pad,
        },
        Op::MaxPool(pool) => Kernel::MaxPool {
            window: pool.window,
        },
        Op::Pad(pad) => Kernel::Pad { pads: pad.pads },
        Op::Concat(_) => Kernel::Concat,
    })
}

fn lower_conv(b: &mut Builder, conv: &Conv, prefix: &str, label: &str) -> Result<Kernel> {
    let [kh, kw] = conv.window.kernel;
    let (cin, cout) = (conv.in_channels, conv.out_channels);
    let bias_constant = |b: &mut Builder, values: Vec<f32>| {
        let len = values.len();
        b.constant(
            format!("{prefix}_bias"),
            values,
            vec![len],
            "[out]",
            format!("{label}: bias (BatchNorm folded)"),
        )
    };
    let act = activation(conv.activation);
    if conv.is_pointwise() {
        const B: usize = POINTWISE_BLOCK;
        let blocks = cout.div_ceil(B);
        let mut w = vec![0.0; blocks * cin * B];
        for o in 0..cout {
            for i in 0..cin {
                w[((o / B) * cin + i) * B + o % B] = conv.weights[conv.weight_index(o, i, 0, 0)];
            }
        }
        let mut padded_bias = conv.bias.clone();
        padded_bias.resize(blocks * B, 0.0);
        let bias = bias_constant(b, padded_bias)?;
        let weights = b.constant(
            format!("{prefix}_weights"),
            w,
            vec![blocks, cin, B],
            "[out/16][in][16]",
            format!("{label}: 1x1 convolution weights (BatchNorm folded), 16 outputs per block"),
        )?;
        Ok(Kernel::ConvPointwise {
            weights,
            bias,
            activation: act,
            residual: false,
        })
    } else if conv.is_depthwise() {
        let bias = bias_constant(b, conv.bias.clone())?;
        let mut w = vec![0.0; kh * kw * cout];
        for c in 0..cout {
            for ky in 0..kh {
                for kx in 0..kw {
                    w[(ky * kw + kx) * cout + c] = conv.weights[conv.weight_index(c, 0, ky, kx)];
                }
            }
        }
        let weights = b.constant(
            format!("{prefix}_weights"),
            w,
            vec![kh, kw, cout],
            "[kh][kw][channels]",
            format!("{label}: depthwise weights (BatchNorm folded)"),
        )?;
        Ok(Kernel::ConvDepthwise {
            window: conv.window,
            weights,
            bias,
            activation: act,
        })
    } else {
        let bias = bias_constant(b, conv.bias.clone())?;
        let g = conv.groups;
        let (ipg, opg) = (conv.in_per_group(), conv.out_per_group());
        let mut w = vec![0.0; conv.weights.len()];
        for gi in 0..g {
            for o in 0..opg {
                for i in 0..ipg {
                    for ky in 0..kh {
                        for kx in 0..kw {
                            w[(((gi * kh + ky) * kw + kx) * ipg + i) * opg + o] =
                                conv.weights[conv.weight_index(gi * opg + o, i, ky, kx)];
                        }
                    }
                }
            }
        }
        let weights = b.constant(
            format!("{prefix}_weights"),
            w,
            vec![g, kh, kw, ipg, opg],
            "[groups][kh][kw][in/groups][out/groups]",
            format!("{label}: convolution weights (BatchNorm folded)"),
        )?;
        Ok(Kernel::ConvGeneral {
            window: conv.window,
            groups: g,
            weights,
            bias,
            activation: act,
        })
    }
}

/// The scorer with buffer ids in place of operands (offsets come after planning).
enum ScorerDraft {
    PatchCore {
        stage: PatchCoreStage,
        pooled: (usize, Shape),
        scratch: (usize, Shape),
    },
    Gmm {
        stage: GmmStage,
        pooled: (usize, Shape),
        projected: Option<(usize, Shape)>,
        scratch: (usize, Shape),
    },
}

impl ScorerDraft {
    fn finish(self, operand: &dyn Fn((usize, Shape)) -> Operand) -> ScorerStage {
        match self {
            ScorerDraft::PatchCore {
                mut stage,
                pooled,
                scratch,
            } => {
                stage.pooled = operand(pooled);
                stage.scratch = operand(scratch);
                ScorerStage::PatchCore(stage)
            }
            ScorerDraft::Gmm {
                mut stage,
                pooled,
                projected,
                scratch,
            } => {
                stage.pooled = operand(pooled);
                if let (Some((_, out)), Some(p)) = (stage.projection.as_mut(), projected) {
                    *out = operand(p);
                }
                stage.scratch = operand(scratch);
                ScorerStage::Gmm(stage)
            }
        }
    }
}

/// Placeholder operand until planning fills it in.
const UNPLANNED: Operand = Operand {
    offset: 0,
    shape: Shape::new(0, 0, 0),
};

fn check(condition: bool, message: impl FnOnce() -> String) -> Result<()> {
    if condition {
        Ok(())
    } else {
        Err(Error::usage(message()))
    }
}

/// The constants of PatchCore's pruned search (see [`PatchCoreStage`] for their layouts),
/// computed in f64 from the bank; the projections use the basis as rounded to f32, the one the
/// generated code multiplies by.
pub struct PatchCoreSearch {
    pub rank: usize,
    pub mean: Vec<f32>,
    pub basis: Vec<f32>,
    pub basis_mean: Vec<f32>,
    pub projected: Vec<f32>,
    pub residuals: Vec<f32>,
    pub radius: f32,
}

impl PatchCoreSearch {
    /// `bank` is `[rows][dim]` with at least one row.
    pub fn of(bank: &[f32], dim: usize) -> PatchCoreSearch {
        let rows = bank.len() / dim;
        let rank = PATCHCORE_RANK.min(dim);
        let mut mean = vec![0f64; dim];
        for row in bank.chunks_exact(dim) {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += v as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= rows as f64);
        let mean_f32: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
        let centred = |row: &[f32]| -> Vec<f64> {
            row.iter()
                .zip(&mean_f32)
                .map(|(&v, &m)| v as f64 - m as f64)
                .collect()
        };
        let mut covariance = nalgebra::DMatrix::<f64>::zeros(dim, dim);
        for row in bank.chunks_exact(dim) {
            let c = nalgebra::DVector::from_vec(centred(row));
            covariance.syger(1.0, &c, &c, 1.0);
        }
        let eigen = covariance.symmetric_eigen();
        let mut order: Vec<usize> = (0..dim).collect();
        // Largest variance first; index breaks ties so the order is deterministic.
        order.sort_by(|&a, &b| {
            eigen.eigenvalues[b]
                .total_cmp(&eigen.eigenvalues[a])
                .then(a.cmp(&b))
        });
        let mut axes = Vec::with_capacity(rank * dim);
        for &axis in &order[..rank] {
            let v = eigen.eigenvectors.column(axis);
            // A fixed sign (largest component positive) keeps the output stable across builds.
            let pivot = (0..dim)
                .max_by(|&a, &b| v[a].abs().total_cmp(&v[b].abs()).then(b.cmp(&a)))
                .unwrap_or(0);
            let sign = if v[pivot] < 0.0 { -1.0 } else { 1.0 };
            axes.extend(v.iter().map(|&x| (sign * x) as f32));
        }
        let mut projected = vec![0f32; rank * rows];
        let mut residuals = Vec::with_capacity(rows);
        let mut radius = 0f64;
        for (m, row) in bank.chunks_exact(dim).enumerate() {
            let c = centred(row);
            let norm2: f64 = c.iter().map(|x| x * x).sum();
            let mut inside = 0f64;
            for (j, axis) in axes.chunks_exact(dim).enumerate() {
                let q: f64 = axis.iter().zip(&c).map(|(&a, x)| a as f64 * x).sum();
                projected[j * rows + m] = q as f32;
                inside += q * q;
            }
            residuals.push((norm2 - inside).max(0.0).sqrt() as f32);
            radius = radius.max(norm2.sqrt());
        }
        let basis_mean = axes
            .chunks_exact(dim)
            .map(|axis| {
                axis.iter()
                    .zip(&mean_f32)
                    .map(|(&a, &m)| a as f64 * m as f64)
                    .sum::<f64>() as f32
            })
            .collect();
        let mean_norm = mean_f32
            .iter()
            .map(|&m| m as f64 * m as f64)
            .sum::<f64>()
            .sqrt();
        PatchCoreSearch {
            rank,
            mean: mean_f32,
            basis: axes,
            basis_mean,
            projected,
            residuals,
            radius: (radius + mean_norm) as f32,
        }
    }
}

fn lower_scorer(
    b: &mut Builder,
    spec: &ScorerSpec,
    features: usize,
    fshape: Shape,
    first_step: usize,
) -> Result<(ScorerDraft, Grid)> {
    match spec {
        ScorerSpec::PatchCore {
            pool,
            neighbors,
            memory_bank,
            dim,
        } => {
            let (pool, neighbors, dim) = (*pool, *neighbors, *dim);
            check(dim == fshape.c, || {
                format!("the PatchCore memory bank has {dim} channels per entry but the backbone gives {}", fshape.c)
            })?;
            check(pool % 2 == 1, || {
                format!("PatchCore pooling window {pool} is not odd")
            })?;
            let memory_len = memory_bank.len() / dim.max(1);
            check(
                memory_len > 0 && memory_len * dim == memory_bank.len(),
                || {
                    format!(
                    "the PatchCore memory bank holds {} values, not a whole number of {dim}-channel entries",
                    memory_bank.len()
                )
                },
            )?;
            check((1..=memory_len).contains(&neighbors), || {
                format!("PatchCore neighbours {neighbors} is not in 1..={memory_len}")
            })?;
            // Pooling at `first_step` (if any), nearest neighbours right after.
            let search = first_step + usize::from(pool > 1);
            let pooled = if pool > 1 {
                b.read(features, first_step);
                b.buffer(fshape.len(), first_step)
            } else {
                features
            };
            b.read(pooled, search);
            let scratch_shape = Shape::new(PATCHCORE_GROUP * memory_len + neighbors, 1, 1);
            let scratch = b.buffer(scratch_shape.len(), search);
            let search_consts = PatchCoreSearch::of(memory_bank, dim);
            let rank = search_consts.rank;
            let bank = b.constant(
                "memory_bank".into(),
                memory_bank.clone(),
                vec![memory_len, dim],
                "[memory_len][dim]",
                format!("PatchCore memory bank: {memory_len} pooled training patches"),
            )?;
            let mean = b.constant(
                "bank_mean".into(),
                search_consts.mean,
                vec![dim],
                "[dim]",
                "mean memory bank row (search bounds only)".into(),
            )?;
            let basis = b.constant(
                "bank_basis".into(),
                search_consts.basis,
                vec![rank, dim],
                "[rank][dim]",
                format!("top {rank} principal axes of the memory bank (search bounds only)"),
            )?;
            let basis_mean = b.constant(
                "bank_basis_mean".into(),
                search_consts.basis_mean,
                vec![rank],
                "[rank]",
                "the mean row on the principal axes (search bounds only)".into(),
            )?;
            let bank_projected = b.constant(
                "bank_projected".into(),
                search_consts.projected,
                vec![rank, memory_len],
                "[rank][memory_len]",
                "memory bank rows on the principal axes, transposed (search bounds only)".into(),
            )?;
            let bank_radius = b.constant(
                "bank_radius".into(),
                vec![search_consts.radius],
                vec![1],
                "[1]",
                "largest distance of a memory bank row from the mean, plus the mean's norm (search slack)".into(),
            )?;
            let bank_residuals = b.constant(
                "bank_residuals".into(),
                search_consts.residuals,
                vec![memory_len],
                "[memory_len]",
                "norm of each memory bank row off the principal axes (search bounds only)".into(),
            )?;
            Ok((
                ScorerDraft::PatchCore {
                    stage: PatchCoreStage {
                        pool,
                        pooled: UNPLANNED,
                        neighbors,
                        memory_len,
                        dim,
                        bank,
                        rank,
                        mean,
                        basis,
                        basis_mean,
                        bank_projected,
                        bank_residuals,
                        bank_radius,
                        scratch: UNPLANNED,
                    },
                    pooled: (pooled, fshape),
                    scratch: (scratch, scratch_shape),
                },
                Grid {
                    rows: fshape.h,
                    cols: fshape.w,
                },
            ))
        }
        ScorerSpec::Gmm {
            pool_kernel,
            pool_stride,
            projection,
            covariance,
            components,
            dim,
            means,
            precisions_cholesky,
            log_weights,
            standardize,
        } => {
            let (kernel, stride, k, d) = (*pool_kernel, *pool_stride, *components, *dim);
            check(kernel > 0 && stride > 0, || {
                format!("GMM pooling {kernel}x{kernel} stride {stride} is empty")
            })?;
            check(fshape.h >= kernel && fshape.w >= kernel, || {
                format!(
                    "GMM pooling window {kernel} does not fit the {}x{} feature grid",
                    fshape.h, fshape.w
                )
            })?;
            let rows = (fshape.h - kernel) / stride + 1;
            let cols = (fshape.w - kernel) / stride + 1;
            let pooled_shape = Shape::new(fshape.c, rows, cols);
            check(k > 0 && d > 0, || {
                "the GMM has no components or dimensions".into()
            })?;
            match projection {
                Some(p) => check(p.len() == d * fshape.c, || {
                    format!("the GMM projection holds {} values, expected {d} x {} (dim x backbone channels)", p.len(), fshape.c)
                })?,
                None => check(d == fshape.c, || {
                    format!(
                        "the GMM has {d} dimensions but the backbone gives {} channels",
                        fshape.c
                    )
                })?,
            }
            let precision_len = match covariance {
                Covariance::Full => d * d,
                Covariance::Diag => d,
            };
            check(
                means.len() == k * d
                    && precisions_cholesky.len() == k * precision_len
                    && log_weights.len() == k,
                || format!("GMM tensors do not match {k} components of dimension {d}"),
            )?;
            let pool_step = first_step;
            let project_step = pool_step + 1;
            let mixture_step = project_step + usize::from(projection.is_some());
            b.read(features, pool_step);
            let pooled = b.buffer(pooled_shape.len(), pool_step);
            let (projection_id, projected) = match projection {
                Some(p) => {
                    b.read(pooled, project_step);
                    let id = b.constant(
                        "gmm_projection".into(),
                        p.clone(),
                        vec![d, fshape.c],
                        "[dim][channels]",
                        "GMM random projection of each pooled cell".into(),
                    )?;
                    let shape = Shape::new(d, rows, cols);
                    let buf = b.buffer(shape.len(), project_step);
                    b.read(buf, mixture_step);
                    (Some(id), Some((buf, shape)))
                }
                None => {
                    b.read(pooled, mixture_step);
                    (None, None)
                }
            };
            let scratch = b.buffer(d, mixture_step);
            // log w_k - 0.5 d ln(2 pi) + sum ln diag U_k, in f64 like the reference.
            let ln_2pi = (2.0 * std::f64::consts::PI).ln();
            let diag = |kk: usize, j: usize| match covariance {
                Covariance::Full => precisions_cholesky[kk * d * d + j * d + j],
                Covariance::Diag => precisions_cholesky[kk * d + j],
            };
            let log_constants = (0..k)
                .map(|kk| {
                    let log_det: f64 = (0..d).map(|j| (diag(kk, j) as f64).ln()).sum();
                    (log_weights[kk] as f64 - 0.5 * d as f64 * ln_2pi + log_det) as f32
                })
                .collect();
            let (precision_values, precision_dims, layout) = match covariance {
                Covariance::Full => {
                    let packed_len = d * (d + 1) / 2;
                    let mut packed = Vec::with_capacity(k * packed_len);
                    for kk in 0..k {
                        let u = &precisions_cholesky[kk * d * d..(kk + 1) * d * d];
                        for j in 0..d {
                            packed.extend((0..=j).map(|i| u[i * d + j]));
                        }
                    }
                    (
                        packed,
                        vec![k, packed_len],
                        "[components][rows of U^T, packed]",
                    )
                }
                Covariance::Diag => (precisions_cholesky.clone(), vec![k, d], "[components][dim]"),
            };
            let means_id = b.constant(
                "gmm_means".into(),
                means.clone(),
                vec![k, d],
                "[components][dim]",
                "GMM component means".into(),
            )?;
            let precision = b.constant(
                "gmm_precision".into(),
                precision_values,
                precision_dims,
                layout,
                "GMM precision Cholesky factors (scikit-learn precisions_cholesky_)".into(),
            )?;
            let log_constants = b.constant(
                "gmm_log_constants".into(),
                log_constants,
                vec![k],
                "[components]",
                "log weight - dim/2 ln(2 pi) + log det of each precision factor".into(),
            )?;
            let normalisation = match standardize {
                Some((mean, std)) => {
                    check(mean.is_finite() && std.is_finite() && *std > 0.0, || {
                        format!("GMM score normalisation mean {mean} std {std} is not usable")
                    })?;
                    GmmNormalisation::Standardized {
                        mean: b.constant(
                            "score_mean".into(),
                            vec![*mean as f32],
                            vec![1],
                            "[1]",
                            "mean log-likelihood of the training cells".into(),
                        )?,
                        std: b.constant(
                            "score_std".into(),
                            vec![*std as f32],
                            vec![1],
                            "[1]",
                            "standard deviation of the training cells' log-likelihoods".into(),
                        )?,
                    }
                }
                None => GmmNormalisation::NegativeLogLikelihood,
            };
            Ok((
                ScorerDraft::Gmm {
                    stage: GmmStage {
                        pool_kernel: kernel,
                        pool_stride: stride,
                        pooled: UNPLANNED,
                        projection: projection_id.map(|id| (id, UNPLANNED)),
                        covariance: *covariance,
                        components: k,
                        dim: d,
                        means: means_id,
                        precision,
                        log_constants,
                        normalisation,
                        scratch: UNPLANNED,
                    },
                    pooled: (pooled, pooled_shape),
                    projected,
                    scratch: (scratch, Shape::new(d, 1, 1)),
                },
                Grid { rows, cols },
            ))
        }
    }
}

impl Program {
    /// Bytes of all constants (what goes to flash).
    pub fn constant_bytes(&self) -> usize {
        self.constants.iter().map(|c| c.values.len() * 4).sum()
    }
    /// Backbone multiply-accumulates per frame.
    pub fn backbone_macs(&self) -> u64 {
        self.steps.iter().map(|s| s.macs).sum()
    }
    pub fn constant(&self, id: ConstId) -> &Constant {
        &self.constants[id.0]
    }
    /// Distinct kernel names the steps use, in first-use order (what an emitter must include).
    pub fn kernels_used(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        for step in &self.steps {
            if !names.contains(&step.kernel.name()) {
                names.push(step.kernel.name());
            }
        }
        names
    }
}
