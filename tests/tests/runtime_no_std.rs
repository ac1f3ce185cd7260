//! The runtime crate builds for a bare-metal Cortex-M target, where there is no `std`, no heap
//! and no OS: the proof that generated Rust can run on a microcontroller. `.ci/run` installs the
//! target with `rustup target add thumbv7em-none-eabihf`.

use std::process::Command;

const TARGET: &str = "thumbv7em-none-eabihf";

#[test]
fn runtime_builds_for_a_bare_metal_cortex_m_target() {
    let root = fomo_ad_tests::repo_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(&root)
        .args([
            "build",
            "--offline",
            "--release",
            "-p",
            "fomo-ad-runtime",
            "--target",
            TARGET,
        ])
        // Its own target directory: the outer `cargo test` may still hold the workspace's.
        .env("CARGO_TARGET_DIR", root.join("target/no-std-check"))
        .output()
        .expect("cargo runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "fomo-ad-runtime does not build for {TARGET} (install it with `rustup target add {TARGET}`):\n{stderr}"
    );
    let rlib = root.join(format!(
        "target/no-std-check/{TARGET}/release/libfomo_ad_runtime.rlib"
    ));
    assert!(rlib.exists(), "{} was not produced", rlib.display());
}
