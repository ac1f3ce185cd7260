//! Kernels shared by the Rust code that `fomo-ad compile --lang rust` generates.
#![no_std]
#![forbid(unsafe_code)]
