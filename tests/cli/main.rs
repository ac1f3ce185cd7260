//! End-to-end tests of the `fomo-ad` binary: exit codes, one-line errors, JSON reports.
//! Wired into the compiler package (see compiler/Cargo.toml) so cargo builds the binary for them.

mod bad_inputs;
mod bench;
mod inspect;
mod train_test;

use std::path::PathBuf;
use std::process::{Command, Output};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("compiler/ has a parent")
        .to_path_buf()
}

pub fn fomo_ad(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fomo-ad"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("the binary runs")
}

/// Runs a command that must succeed and print JSON.
pub fn stdout_json(args: &[&str]) -> serde_json::Value {
    let out = fomo_ad(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the command prints JSON")
}
