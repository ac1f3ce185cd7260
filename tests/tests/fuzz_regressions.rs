//! The fuzz targets (fuzz/, cargo-fuzz) in a normal `cargo test`: every seed and every input a
//! fuzzer once crashed on (fuzz/regressions/<target>/) is replayed through the same entry points
//! (`fomo_ad::fuzz`), then each target gets a short seeded mutation run, so CI catches a
//! regression without a libFuzzer build (see fuzz/README.md).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fomo_ad::fuzz::{run, seeds, TARGETS};
use fomo_ad_tests::{repo_root, Rng};

fn fuzz_dir() -> PathBuf {
    repo_root().join("fuzz")
}

/// Files directly in `dir`, sorted (none if it does not exist).
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.expect("readable directory entry").path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Runs `target` on `data`: whether it was accepted; a panic is returned as its message.
fn try_run(target: &str, data: &[u8]) -> Result<bool, String> {
    // Panics that fomo-ad catches itself (inside tract or an image decoder) are errors, not
    // findings: keep their reports (with backtraces when RUST_BACKTRACE is set) out of the log.
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !fomo_ad::error::panic_is_caught() {
                default(info);
            }
        }));
    });
    std::panic::catch_unwind(|| run(target, data))
        .map_err(|payload| fomo_ad::error::panic_message(&*payload))
}

#[test]
fn committed_seeds_are_what_the_generator_writes() {
    let update = std::env::var_os("FOMO_AD_UPDATE_FUZZ_SEEDS").is_some();
    let generated = seeds();
    for target in TARGETS {
        let dir = fuzz_dir().join("seeds").join(target);
        let expected: Vec<_> = generated.iter().filter(|s| s.0 == *target).collect();
        if update {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("fuzz/seeds is writable");
            for (_, name, bytes) in &expected {
                std::fs::write(dir.join(name), bytes).expect("fuzz/seeds is writable");
            }
            continue;
        }
        let names: Vec<String> = files_in(&dir)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        let mut wanted: Vec<String> = expected.iter().map(|s| s.1.clone()).collect();
        wanted.sort();
        assert_eq!(
            names, wanted,
            "fuzz/seeds/{target} is stale: run FOMO_AD_UPDATE_FUZZ_SEEDS=1 cargo test -p fomo-ad-tests --test fuzz_regressions"
        );
        for (_, name, bytes) in &expected {
            let committed = std::fs::read(dir.join(name)).expect("listed above");
            assert!(
                &committed == bytes,
                "fuzz/seeds/{target}/{name} is stale: run FOMO_AD_UPDATE_FUZZ_SEEDS=1 cargo test -p fomo-ad-tests --test fuzz_regressions"
            );
        }
    }
}

/// Every seed and every saved crash of every target, plus the ONNX fixtures for `onnx`; with
/// FOMO_AD_FUZZ_CORPUS=1 also the corpora cargo-fuzz grew locally (fuzz/corpus/, not committed).
fn replay_inputs() -> Vec<(&'static str, PathBuf)> {
    let mut kinds = vec!["seeds", "regressions"];
    if std::env::var_os("FOMO_AD_FUZZ_CORPUS").is_some() {
        kinds.push("corpus");
    }
    let mut inputs = Vec::new();
    for target in TARGETS {
        for kind in &kinds {
            for path in files_in(&fuzz_dir().join(kind).join(target)) {
                inputs.push((*target, path));
            }
        }
    }
    for path in files_in(&repo_root().join("tests/fixtures")) {
        if path.extension().is_some_and(|e| e == "onnx") {
            inputs.push(("onnx", path));
        }
    }
    inputs
}

#[test]
fn seeds_and_saved_crashes_run_cleanly() {
    let inputs = replay_inputs();
    let mut failures = Vec::new();
    let mut accepted = std::collections::BTreeMap::<&str, (usize, usize)>::new();
    for (target, path) in &inputs {
        let data = std::fs::read(path).expect("replay inputs are readable");
        let count = accepted.entry(target).or_default();
        count.1 += 1;
        match try_run(target, &data) {
            Ok(true) => count.0 += 1,
            Ok(false) => {}
            Err(message) => failures.push(format!("{target} {}: {message}", path.display())),
        }
    }
    // How deep the inputs reach, for `--nocapture`.
    for (target, (ok, all)) in &accepted {
        eprintln!("{target}: {ok} of {all} inputs accepted by the loader");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A byte-level mutation of `data` (flip, overwrite, insert, delete, duplicate, splice).
fn mutate(data: &[u8], other: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = data.to_vec();
    for _ in 0..1 + rng.next_u64() % 4 {
        let at = |rng: &mut Rng, len: usize| (rng.next_u64() % (len as u64 + 1)) as usize;
        match rng.next_u64() % 6 {
            0 if !out.is_empty() => {
                let i = at(rng, out.len() - 1);
                out[i] ^= 1 << (rng.next_u64() % 8);
            }
            1 if !out.is_empty() => {
                let i = at(rng, out.len() - 1);
                out[i] = [0, 1, 0x7f, 0x80, 0xff][(rng.next_u64() % 5) as usize];
            }
            2 => {
                let i = at(rng, out.len());
                out.insert(i, rng.byte());
            }
            3 if !out.is_empty() => {
                let i = at(rng, out.len() - 1);
                let n = (rng.next_u64() % 16) as usize;
                out.drain(i..(i + n).min(out.len()));
            }
            4 if !out.is_empty() => {
                let i = at(rng, out.len() - 1);
                let n = ((rng.next_u64() % 16) as usize).min(out.len() - i);
                let chunk = out[i..i + n].to_vec();
                let j = at(rng, out.len());
                out.splice(j..j, chunk);
            }
            _ if !other.is_empty() => {
                let i = at(rng, out.len());
                let j = at(rng, other.len() - 1);
                out.truncate(i);
                out.extend_from_slice(&other[j..]);
            }
            _ => {}
        }
    }
    out
}

/// One input that runs longer than this is a hang (libFuzzer's `-timeout` in fuzz/run.sh is 30 s
/// too); the slowest accepted inputs take well under a second.
const HANG_SECONDS: u64 = 30;

/// Turns a hanging input into a failure naming it: a loop that never ends (an unbounded shape
/// solver, a decoder spinning on a corrupt header) would otherwise run until CI's time limit, with
/// nothing in the log saying which input it was.
/// The input being run: since when, by which target, and its bytes.
type Running = Option<(Instant, &'static str, Vec<u8>)>;

struct Watchdog {
    current: Arc<Mutex<Running>>,
}

impl Watchdog {
    fn start(limit: Duration) -> Watchdog {
        let current: Arc<Mutex<Running>> = Arc::default();
        let watched = Arc::clone(&current);
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(250));
            // A poisoned lock means the test thread panicked: the failure is reported already.
            let Ok(guard) = watched.lock() else { return };
            if let Some((since, target, input)) = guard.as_ref() {
                if since.elapsed() > limit {
                    let saved = std::env::temp_dir().join(format!("fomo-ad-{target}-hang"));
                    let written = std::fs::write(&saved, input).is_ok();
                    eprintln!(
                        "{target} ran for more than {} s on a mutated input (saved as {}{}; add it to fuzz/regressions/{target}/)",
                        limit.as_secs(),
                        saved.display(),
                        if written { "" } else { ": could not write it" },
                    );
                    // The hanging call cannot be interrupted from here; abort fails the test.
                    std::process::abort();
                }
            }
        });
        Watchdog { current }
    }

    fn arm(&self, target: &'static str, input: &[u8]) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), target, input.to_vec()));
    }

    fn disarm(&self) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// A short seeded mutation run per target (no coverage guidance: the cheap check CI can afford
/// on every run; the real fuzzing is cargo-fuzz, see fuzz/README.md). FOMO_AD_FUZZ_SECONDS sets
/// the time per target (default 3).
#[test]
fn short_mutation_run_finds_no_crash() {
    let seconds: u64 = std::env::var("FOMO_AD_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let inputs = replay_inputs();
    let watchdog = Watchdog::start(Duration::from_secs(HANG_SECONDS));
    let mut report = Vec::new();
    for target in TARGETS {
        let corpus: Vec<Vec<u8>> = inputs
            .iter()
            .filter(|(t, p)| t == target && std::fs::metadata(p).is_ok_and(|m| m.len() < 64 << 10))
            .map(|(_, p)| std::fs::read(p).expect("replay inputs are readable"))
            .collect();
        assert!(!corpus.is_empty(), "no seeds for {target}");
        let mut rng = Rng::new(0x5eed ^ target.len() as u64);
        let started = Instant::now();
        let mut runs = 0u64;
        while started.elapsed() < Duration::from_secs(seconds) {
            let base = &corpus[(rng.next_u64() % corpus.len() as u64) as usize];
            let other = &corpus[(rng.next_u64() % corpus.len() as u64) as usize];
            let input = mutate(base, other, &mut rng);
            watchdog.arm(target, &input);
            let outcome = try_run(target, &input);
            watchdog.disarm();
            if let Err(message) = outcome {
                let saved = std::env::temp_dir().join(format!("fomo-ad-{target}-crash"));
                std::fs::write(&saved, &input).expect("the temp dir is writable");
                panic!(
                    "{target} crashed on a mutated input (saved as {}; add it to fuzz/regressions/{target}/): {message}",
                    saved.display()
                );
            }
            runs += 1;
        }
        report.push(format!("{target}: {runs} runs"));
    }
    eprintln!("{}", report.join(", "));
}

/// Seeds rejected at the first check would leave the fuzzers stuck at the surface: each must
/// reach the code behind the parser.
#[test]
fn seeds_are_valid_inputs() {
    use fomo_ad::fuzz::{assemble_artifact, build_graph, Choices};
    let path = Path::new("seed");
    for (target, name, bytes) in seeds() {
        let outcome = match target {
            "artifact" => fomo_ad::artifact::from_bytes(path, &bytes).map(|_| ()),
            "artifact_parts" => {
                let assembled = assemble_artifact(&bytes).expect("the seed assembles");
                fomo_ad::artifact::from_bytes(path, &assembled).map(|_| ())
            }
            "onnx_graph" if !bytes.is_empty() => {
                let proto = build_graph(&mut Choices::new(&bytes));
                let options = fomo_ad::frontend::BackboneOptions::default();
                fomo_ad::frontend::load_backbone_proto(path, &proto, String::new(), &options)
                    .map(|_| ())
            }
            "image" => {
                let pre = fomo_ad::data::Preprocess {
                    width: 8,
                    height: 8,
                    channels: 3,
                    resize: fomo_ad::data::Resize::Squash,
                    scaling: fomo_ad::data::Scaling::Unit,
                };
                pre.load_pixels_from_bytes(path, &bytes[1..]).map(|_| ())
            }
            _ => Ok(()),
        };
        if let Err(e) = outcome {
            panic!("seed {target}/{name} is rejected: {e}");
        }
    }
}
