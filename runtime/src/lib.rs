//! Kernels shared by the Rust code that `fomo-ad compile --lang rust` generates.
//!
//! `no_std`, no `unsafe`, no allocation, no dependencies. Every kernel takes f32 slices and the
//! fixed shapes the compiler decided, checks the slice lengths against them and returns
//! [`Error`] instead of panicking.
//!
//! # Layouts
//! - **Activations** are interleaved, HWC (`[h][w][c]`, batch 1): the layout camera pixels come
//!   in, and the one where a pixel's channels are contiguous, which makes 1x1 convolutions matrix
//!   products and lets every inner loop run over contiguous channels.
//! - **Convolution weights** are HWIO, `[kh][kw][in_channels / groups][out_channels]`; for a
//!   depthwise convolution that is `[kh][kw][channels]`. Bias is `[out_channels]`.
//! - **Scorer inputs** are `[cells][dims]`: a feature map in HWC is already that.
//! - **Arena regions** ([`Region`]) count f32 values, not bytes.
//!
//! The modules live under `src/kernels/` and only refer to each other through `super::`, so the
//! compiler's `--standalone` mode copies that directory verbatim into a generated crate: one
//! source of truth for both modes.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(any(test, feature = "std"))]
extern crate std;

mod kernels;

pub use kernels::*;

#[cfg(test)]
mod tests;
