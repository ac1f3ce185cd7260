//! The sanitizer build CI uses for the C differential tests (FOMO_AD_C_SANITIZE=1) really fails on
//! a finding: an out-of-bounds read and a signed overflow, each in a program that otherwise exits 0.

use std::process::Command;

use fomo_ad::codegen::harness::SANITIZER_FLAGS;

fn build_and_run(body: &str) -> std::process::Output {
    let dir = tempfile::tempdir().expect("a temp dir");
    let source = dir.path().join("bug.c");
    std::fs::write(
        &source,
        format!("#include <stdio.h>\nint main(int argc, char **argv) {{\n    (void)argv;\n{body}\n    return 0;\n}}\n"),
    )
    .expect("writable");
    let exe = dir.path().join("bug");
    let build = Command::new("cc")
        .args(SANITIZER_FLAGS)
        .arg(&source)
        .arg("-o")
        .arg(&exe)
        .output()
        .expect("a C compiler `cc` is installed");
    assert!(
        build.status.success(),
        "cc cannot build with the sanitizers: {}",
        String::from_utf8_lossy(&build.stderr)
    );
    Command::new(&exe).output().expect("the program runs")
}

#[test]
fn sanitized_programs_fail_on_findings() {
    for (what, body, report) in [
        (
            "out-of-bounds read",
            "    static int data[4];\n    int *p = data;\n    printf(\"%d\\n\", p[argc + 3]);",
            "AddressSanitizer",
        ),
        (
            "signed overflow",
            "    int x = 2147483647;\n    x += argc;\n    printf(\"%d\\n\", x);",
            "signed integer overflow",
        ),
    ] {
        let out = build_and_run(body);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{what}: the sanitized program exited 0"
        );
        assert!(stderr.contains(report), "{what}: {stderr}");
    }
}
