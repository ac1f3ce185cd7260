//! The kernels, in modules that only refer to each other through `super::`, so that
//! `fomo-ad compile --lang rust --standalone` can copy this directory verbatim into a generated
//! crate as its `kernels` module.

mod arena;
mod conv;
mod elementwise;
mod error;
mod geometry;
mod gmm;
mod linalg;
pub mod math;
mod patchcore;
mod pool;
mod summary;

pub use arena::{region, region_mut, split, Aligned, Region};
pub use conv::{
    conv2d, conv2d_depthwise, conv2d_pointwise, pointwise_weights_len, Conv2d, POINTWISE_BLOCK,
};
pub use elementwise::{
    add, add_in_place, channel_affine, channel_affine_in_place, clamp, clamp_in_place,
    copy_channels, double_in_place, pad, scale_pixels,
};
pub use error::{check_len, Error};
pub use geometry::{Clamp, Shape, Window};
pub use gmm::{gmm_log_likelihood, gmm_scores, Covariance, GaussianMixture, GmmScore};
pub use linalg::{dot, project, squared_distance};
pub use patchcore::{patchcore_scores, PatchCore, GROUP as PATCHCORE_GROUP, MAX_RANK};
pub use pool::{avg_pool, max_pool, Pool2d};
pub use summary::{summarize, Summary};
