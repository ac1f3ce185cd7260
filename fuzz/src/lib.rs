//! Shared by the fuzz targets.

/// libFuzzer's panic hook aborts on every panic, even one fomo-ad catches and turns into an error
/// (a panic inside tract on a malformed file, see `fomo_ad::error::catch_panic`). Those are
/// reported as errors by fomo-ad, so they are not crashes: let them unwind quietly, and keep
/// aborting on every other panic.
pub fn quiet_caught_panics() {
    let abort_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !fomo_ad::error::panic_is_caught() {
            abort_hook(info);
        }
    }));
}
