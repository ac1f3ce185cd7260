//! Differential test of the generated C backbone alone: the feature map the generated code
//! computes must match the reference executor on random inputs, for both shipped backbones.

mod c_common;

use c_common::*;
use fomo_ad::codegen::c;
use fomo_ad::ir::Tensor;

/// Reads HWC floats on stdin into the arena's input slot, runs the generated backbone (the harness
/// includes the generated model.c, so it can call the static `run_backbone`), writes the HWC
/// feature map to stdout.
const HARNESS: &str = r#"
#include <stdio.h>
#include "fomo_ad.c"

int main(void)
{
    static float input[INPUT_LEN];
    float *arena = arena_storage;
    if (fread(input, sizeof(float), INPUT_LEN, stdin) != INPUT_LEN) {
        return 2;
    }
    load_floats(input, arena + INPUT_OFFSET);
    run_backbone(arena);
    if (fwrite(arena + FEATURE_OFFSET, sizeof(float), FEATURE_LEN, stdout) != FEATURE_LEN) {
        return 3;
    }
    return 0;
}
"#;

#[test]
fn generated_backbones_match_the_reference_executor() {
    for model in SHIPPED {
        let (graph, identity) = optimized_backbone(model);
        let features = graph.output_shape();
        let source = source(&graph, identity, tiny_patchcore(features.c, 4, 1), 1.0);
        let program = lower(&source);
        let files = c::emit(&program, c::DEFAULT_NAME).expect("the C emitter accepts the program");
        let dir = tempfile::tempdir().expect("a temp dir");
        write_files(dir.path(), &files);
        std::fs::write(dir.path().join("harness.c"), HARNESS).expect("the temp dir is writable");
        let input_shape = graph.input_shape();
        let defines = [
            format!("-DINPUT_LEN={}", input_shape.len()),
            format!("-DINPUT_OFFSET={}", program.input.output.offset),
            format!("-DFEATURE_OFFSET={}", program.features.offset),
            format!("-DFEATURE_LEN={}", features.len()),
        ];
        let exe = compile(
            dir.path(),
            &["harness.c", "fomo_ad_weights.c"],
            &defines,
            "harness",
        );
        let mut rng = Rng::new(42);
        let mut worst = 0.0f32;
        for _ in 0..3 {
            let hwc = rng.floats(input_shape.len(), 0.0, 1.0);
            let reference =
                fomo_ad::exec::run(&graph, &Tensor::from_hwc(input_shape, &hwc)).to_hwc();
            let generated = bytes_to_f32s(&run(&exe, &f32s_to_bytes(&hwc)));
            let (err, scale) = relative_error(&generated, &reference);
            assert!(
                scale > 0.0,
                "{model}: the reference feature map is all zeros"
            );
            worst = worst.max(err);
        }
        println!(
            "{model}: generated C backbone, max abs error / max |activation| = {worst:.3e}; arena {} bytes planned, lower bound {} bytes",
            program.arena.bytes, program.arena.lower_bound_bytes
        );
        assert!(
            worst <= 1e-4,
            "{model}: relative error {worst:e} exceeds 1e-4"
        );
    }
}
