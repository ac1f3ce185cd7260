//! The generated C runs on a microcontroller: `examples/cortex-m/run.sh` trains a GMM and a
//! PatchCore model on the width-0.35 backbone, cross-compiles each into a bare-metal firmware for
//! QEMU's mps2-an386 (Cortex-M4F), runs it and compares the printed scores with the reference
//! executor. `.ci/run` installs the toolchain and QEMU (gcc-arm-none-eabi,
//! libnewlib-arm-none-eabi, qemu-system-arm): without them this test fails, it does not skip.

use std::path::Path;
use std::process::Command;

const STACK_LIMIT: u64 = 1024;

#[test]
fn emulated_cortex_m4_firmware_agrees_with_the_reference_for_both_scorers() {
    let root = fomo_ad_tests::repo_root();
    let fomo_ad = fomo_ad_tests::fomo_ad_bin();
    let out = tempfile::tempdir().expect("a temporary directory");
    let output = Command::new(root.join("examples/cortex-m/run.sh"))
        .arg("--out")
        .arg(out.path())
        .env("FOMO_AD", &fomo_ad)
        .output()
        .expect("run.sh starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "examples/cortex-m/run.sh failed (the toolchain and QEMU come from `.ci/run`):\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("all 2 model(s) agree with the reference on mps2-an386"),
        "{stdout}"
    );
    for scorer in ["gmm", "patchcore"] {
        // The summary row: | model | code | constants | arena | stack static | stack measured | ...
        let row: Vec<&str> = stdout
            .lines()
            .find(|l| l.starts_with(&format!("| {scorer} ")))
            .unwrap_or_else(|| panic!("no summary row for {scorer}:\n{stdout}"))
            .split('|')
            .map(str::trim)
            .collect();
        let bytes = |i: usize| -> u64 {
            row[i]
                .parse()
                .unwrap_or_else(|_| panic!("{scorer}: column {i} of {row:?} is not a number"))
        };
        assert!(bytes(2) > 0 && bytes(3) > 0 && bytes(4) > 0, "{row:?}");
        for stack in [bytes(5), bytes(6)] {
            assert!(
                stack > 0 && stack <= STACK_LIMIT,
                "{scorer}: stack of fomo_ad_run {stack} bytes"
            );
        }
        assert_eq!(row[8], "agrees", "{row:?}");
        let readme = std::fs::read_to_string(out.path().join(format!("run-{scorer}/c/README.md")))
            .expect("the generated README");
        assert!(
            readme.contains(&format!("| flash: code | {} |", bytes(2)))
                && readme.contains(&format!("| RAM: arena (static) | {} |", bytes(4))),
            "{scorer}: the generated README lacks the cortex-m4 footprint:\n{readme}"
        );
    }
    for scorer in ["gmm", "patchcore"] {
        single_precision_only(&out.path().join(format!("run-{scorer}/c")));
    }
    assert_eq!(
        stdout
            .matches("device run vs reference on 4 images")
            .count(),
        2,
        "{stdout}"
    );
    scores_off_by_a_thousandth_are_rejected(&fomo_ad, &root, out.path());
}

/// The comparison is not vacuous: the same log with its largest cell score of one image 0.1 %
/// off fails verification.
fn scores_off_by_a_thousandth_are_rejected(fomo_ad: &Path, root: &Path, out: &Path) {
    let log = std::fs::read_to_string(out.join("run-gmm/qemu.log")).expect("the QEMU log");
    let mut tampered = String::new();
    let mut done = false;
    for line in log.lines() {
        match line.strip_prefix("cells: ") {
            Some(scores) if !done => {
                let mut values: Vec<f32> = scores
                    .split(' ')
                    .map(|v| v.parse().expect("a printed score"))
                    .collect();
                // The largest cell: the tolerance is relative to it.
                let largest = (0..values.len())
                    .max_by(|&a, &b| values[a].abs().total_cmp(&values[b].abs()))
                    .expect("cells");
                values[largest] *= 1.001;
                let printed: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
                tampered += &format!("cells: {}\n", printed.join(" "));
                done = true;
            }
            _ => tampered += &format!("{line}\n"),
        }
    }
    let path = out.join("tampered.log");
    std::fs::write(&path, tampered).expect("writes the tampered log");
    let verify = |log: &Path| {
        Command::new(fomo_ad)
            .args(["verify", "--images", "4", "--device-scores"])
            .arg(log)
            .arg("--model")
            .arg(out.join("gmm.safetensors"))
            .arg("--backbone")
            .arg(root.join("models/mobilenetv2_0.35_cut8.onnx"))
            .arg("--data")
            .arg(out.join("data"))
            .output()
            .expect("fomo-ad runs")
    };
    assert!(verify(&out.join("run-gmm/qemu.log")).status.success());
    let rejected = verify(&path);
    assert_eq!(
        rejected.status.code(),
        Some(2),
        "a tampered score passed: {}",
        String::from_utf8_lossy(&rejected.stdout)
    );
    assert!(String::from_utf8_lossy(&rejected.stderr).contains("disagrees with the reference"));
}

/// The generated library needs no double precision on a single-precision FPU: compiled for the
/// Cortex-M4F it calls no soft-float double helper (`__aeabi_d*`) and no double math function.
fn single_precision_only(generated: &Path) {
    let object = generated.join("fomo_ad.o");
    let status = Command::new("arm-none-eabi-gcc")
        .args([
            "-mcpu=cortex-m4",
            "-mthumb",
            "-mfloat-abi=hard",
            "-mfpu=fpv4-sp-d16",
            "-std=c99",
            "-O2",
            "-c",
        ])
        .arg(generated.join("fomo_ad.c"))
        .arg("-o")
        .arg(&object)
        .status()
        .expect("arm-none-eabi-gcc runs");
    assert!(status.success());
    let nm = Command::new("arm-none-eabi-nm")
        .arg("-u")
        .arg(&object)
        .output()
        .expect("arm-none-eabi-nm runs");
    let undefined = String::from_utf8_lossy(&nm.stdout);
    let symbols: Vec<&str> = undefined.split_whitespace().filter(|s| *s != "U").collect();
    assert!(symbols.contains(&"fomo_ad_l01_weights"), "{undefined}");
    let doubles: Vec<&&str> = symbols
        .iter()
        .filter(|s| {
            s.starts_with("__aeabi_d")
                || ["exp", "log", "sqrt", "pow", "fabs", "floor", "ceil"].contains(s)
        })
        .collect();
    assert!(
        doubles.is_empty(),
        "{}: double precision in the generated C: {doubles:?}",
        generated.display()
    );
}
