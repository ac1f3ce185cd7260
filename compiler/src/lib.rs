//! fomo-ad: compiles visual anomaly detection models (a MobileNetV2 cut at stride 8 and a
//! PatchCore or GMM scorer) into standalone C or Rust for microcontrollers.
//!
//! Data flows one way: `frontend` (ONNX via tract) -> `ir` -> `passes` -> `exec` (the reference
//! executor, the oracle) and the emitters. `cli` is the only module that ties them together.

pub mod artifact;
pub mod atomic;
pub mod backbones;
pub mod bench;
pub mod cli;
pub mod codegen;
pub mod data;
pub mod error;
pub mod eval;
pub mod exec;
pub mod frontend;
#[doc(hidden)]
pub mod fuzz;
pub mod ir;
pub mod passes;
pub mod pipeline;
pub mod scorer;

pub use error::{Error, Result};

/// Version written into every generated file's header.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
