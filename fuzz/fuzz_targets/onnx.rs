#![no_main]
//! `fomo_ad::fuzz::onnx` under libFuzzer (see fuzz/README.md).

libfuzzer_sys::fuzz_target!(
    init: fomo_ad_fuzz::quiet_caught_panics(),
    |data: &[u8]| {
        fomo_ad::fuzz::onnx(data);
    }
);
