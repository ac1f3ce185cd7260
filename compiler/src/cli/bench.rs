//! `fomo-ad bench`: time every way of running a trained model on one core (see `bench`).
//! Without `--model` it synthesises a data set and trains PatchCore and a GMM with `fomo-ad
//! train`'s defaults first, so one command measures the shipped configuration.

use std::path::{Path, PathBuf};
use std::process::Command;

use rand::{Rng, SeedableRng};

use super::model_args::{LoadedModel, ModelArgs};
use crate::bench::{self, Group, Subject};
use crate::codegen::rust::Runtime;
use crate::data::{open_dataset, synth};
use crate::error::{Error, Result};

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Trained model to time (repeatable; default: PatchCore and a GMM trained here).
    #[arg(long, value_name = "MODEL.safetensors")]
    pub model: Vec<PathBuf>,
    /// Backbone ONNX file (default: the embedded MobileNetV2 width 1.0 cut at stride 8).
    #[arg(long, value_name = "B.onnx")]
    pub backbone: Option<PathBuf>,
    /// Data set to train on (without --model) and whose first test image is the timed frame
    /// (default: a synthetic one; with --model and no --data, seeded random pixels).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Training images of the synthetic data set.
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub train_images: usize,
    /// Timed frames per row.
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub frames: usize,
    /// Untimed frames before the timed ones.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub warmup: usize,
    /// Timed frames of the reference executor (an interpreter, far slower).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub reference_frames: usize,
    /// Separate processes each generated C and Rust row runs in, --frames each, timings pooled
    /// (one process can be slow for its whole life on a virtual machine); run in rounds of one
    /// process per row, so a slow spell of the machine hits every row alike.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub processes: usize,
    /// Run only these rows.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        value_name = "LIST",
        conflicts_with = "skip"
    )]
    pub only: Vec<Group>,
    /// Run every row but these.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "LIST")]
    pub skip: Vec<Group>,
    /// Write the whole report as JSON to PATH (`-` or no value: to stdout instead of the table).
    #[arg(long, value_name = "PATH", num_args = 0..=1, default_missing_value = "-")]
    pub json: Option<PathBuf>,
    /// C compiler (default: $CC, else cc).
    #[arg(long, value_name = "CC")]
    pub cc: Option<String>,
    /// Extra flags for both C builds, e.g. "-ffp-contract=fast".
    #[arg(long, value_name = "FLAGS", allow_hyphen_values = true)]
    pub extra_cflags: Option<String>,
    /// Python with onnxruntime (pip install -r scripts/requirements.txt).
    #[arg(long, value_name = "PYTHON", default_value = "python3")]
    pub python: String,
    /// fomo-ad-runtime for the generated Rust (default: this repository's runtime/, else the
    /// registry version).
    #[arg(long, value_name = "PATH")]
    pub runtime_path: Option<PathBuf>,
    /// Keep the generated code, drivers and builds here instead of a temp dir.
    #[arg(long, value_name = "DIR")]
    pub work: Option<PathBuf>,
    /// Seed of the synthetic data set, the training and the random frame.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

pub fn run(args: BenchArgs) -> Result<()> {
    // A bad report path fails now, not after minutes of timing.
    if let Some(path) = args.json.as_deref().filter(|p| *p != Path::new("-")) {
        crate::atomic::check_file_target(path)?;
    }
    let groups: Vec<Group> = if args.only.is_empty() {
        Group::ALL
            .into_iter()
            .filter(|g| !args.skip.contains(g))
            .collect()
    } else {
        args.only.clone()
    };
    let temp = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let work = match &args.work {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            std::path::absolute(dir).map_err(|e| Error::io(dir, e))?
        }
        None => temp.path().to_path_buf(),
    };

    let (model_paths, data) = if args.model.is_empty() {
        let data = match &args.data {
            Some(dir) => dir.clone(),
            None => synthesise(&work.join("data"), args.train_images, args.seed)?,
        };
        (train_defaults(&args, &data, &work)?, Some(data))
    } else {
        let names = args
            .model
            .iter()
            .map(|p| {
                (
                    p.file_stem()
                        .map_or("model".into(), |s| s.to_string_lossy().into_owned()),
                    p.clone(),
                )
            })
            .collect();
        (names, args.data.clone())
    };

    let onnx = match &args.backbone {
        Some(path) => std::fs::read(path).map_err(|e| Error::io(path, e))?,
        None => crate::backbones::DEFAULT_ONNX.to_vec(),
    };
    let mut loaded: Vec<(String, LoadedModel, Vec<u8>)> = Vec::new();
    for (i, (name, path)) in model_paths.iter().enumerate() {
        let model = ModelArgs {
            model: path.clone(),
            backbone: args.backbone.clone(),
        }
        .load()?;
        let frame = frame_for(&model, data.as_deref(), args.seed)?;
        // Two model files with the same stem would write to the same work folder.
        let name = if model_paths[..i].iter().any(|(n, _)| n == name) {
            format!("{name}-{i}")
        } else {
            name.clone()
        };
        loaded.push((name, model, frame));
    }
    let subjects: Vec<Subject> = loaded
        .iter()
        .map(|(name, m, frame)| Subject {
            name: name.clone(),
            model: &m.model,
            backbone: &m.backbone,
            features: &m.features,
            preprocess: &m.preprocess,
            onnx: &onnx,
            frame,
        })
        .collect();

    let options = bench::Options {
        frames: args.frames,
        warmup: args.warmup,
        reference_frames: args.reference_frames,
        processes: args.processes,
        groups,
        cc: args
            .cc
            .clone()
            .or_else(|| std::env::var("CC").ok())
            .unwrap_or_else(|| "cc".into()),
        extra_cflags: args
            .extra_cflags
            .as_deref()
            .map(|f| f.split_whitespace().map(String::from).collect())
            .unwrap_or_default(),
        python: args.python.clone(),
        runtime: runtime(args.runtime_path.as_deref())?,
        work: work.clone(),
        frame_source: match &data {
            Some(dir) => format!("the first test (else training) image of {}", dir.display()),
            None => format!("seeded random pixels (seed {})", args.seed),
        },
    };
    let report = bench::run(&subjects, &options)?;
    let json = serde_json::to_string_pretty(&report).expect("the report serialises to JSON");
    match args.json.as_deref() {
        Some(path) if path == Path::new("-") => super::print(&format!("{json}\n")),
        Some(path) => {
            crate::artifact::write_atomically(path, format!("{json}\n").as_bytes())?;
            super::print(&bench::render(&report))?;
            super::print(&format!("wrote {}\n", path.display()))
        }
        None => super::print(&bench::render(&report)),
    }
}

/// A small synthetic data set: the training images and one test frame per class.
fn synthesise(dir: &Path, train: usize, seed: u64) -> Result<PathBuf> {
    eprintln!(
        "bench: synthesising {train} training images in {}",
        dir.display()
    );
    let options = synth::SynthOptions {
        seed,
        train,
        test_good: 1,
        test_anomalous: 1,
        ..synth::SynthOptions::default()
    };
    synth::write_dataset(&options, dir, false)?;
    Ok(dir.to_path_buf())
}

/// Trains PatchCore and a GMM with `fomo-ad train`'s defaults (10 % coreset; medium capacity),
/// by running this very binary, so the bench measures exactly what `train` produces.
fn train_defaults(args: &BenchArgs, data: &Path, work: &Path) -> Result<Vec<(String, PathBuf)>> {
    let exe = std::env::current_exe()
        .map_err(|e| Error::usage(format!("cannot find this executable: {e}")))?;
    let mut models = Vec::new();
    for scorer in ["patchcore", "gmm"] {
        let out = work.join(format!("{scorer}.safetensors"));
        eprintln!("bench: training {scorer} on {}", data.display());
        let mut command = Command::new(&exe);
        command
            .arg("train")
            .arg("--data")
            .arg(data)
            .args(["--scorer", scorer, "--seed", &args.seed.to_string()])
            .arg("--out")
            .arg(&out);
        if let Some(backbone) = &args.backbone {
            command.arg("--backbone").arg(backbone);
        }
        let output = command.output().map_err(|e| Error::io(&exe, e))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        for line in stdout.lines() {
            eprintln!("bench:   {line}");
        }
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(Error::input(
                data,
                format!(
                    "training {scorer} failed: {}",
                    crate::error::one_line(stderr.trim())
                ),
            ));
        }
        models.push((scorer.to_string(), out));
    }
    Ok(models)
}

/// The timed frame: the data set's first test image (else first training image), resized as
/// the model expects; without a data set, seeded random pixels.
fn frame_for(model: &LoadedModel, data: Option<&Path>, seed: u64) -> Result<Vec<u8>> {
    match data {
        Some(dir) => {
            let dataset = open_dataset(dir)?;
            let sample = dataset
                .test
                .first()
                .or(dataset.train.first())
                .ok_or_else(|| Error::input(dir, "the data set has no images"))?;
            model.preprocess.load_pixels(&sample.path)
        }
        None => {
            let p = &model.preprocess;
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            Ok((0..p.width * p.height * p.channels)
                .map(|_| rng.random())
                .collect())
        }
    }
}

/// This repository's runtime when the binary runs from a checkout, else the registry version.
fn runtime(path: Option<&Path>) -> Result<Runtime> {
    let repo_runtime = Path::new(env!("CARGO_MANIFEST_DIR")).join("../runtime");
    let chosen = match path {
        Some(p) => Some(p.to_path_buf()),
        None => repo_runtime
            .join("Cargo.toml")
            .is_file()
            .then_some(repo_runtime),
    };
    Ok(match chosen {
        Some(p) => {
            let absolute = std::fs::canonicalize(&p).map_err(|e| Error::io(&p, e))?;
            Runtime::Path(absolute.display().to_string())
        }
        None => Runtime::Version,
    })
}
