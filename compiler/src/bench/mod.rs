//! `fomo-ad bench`: per-frame time of every way to run a trained model on one core, side by
//! side on the same frame: the generated C (`-O2`, `-O3 -march=native`), the generated Rust
//! (release, `-C target-cpu=native`), the reference executor, and the backbone alone in tract and
//! in onnxruntime. The backbone and the scorer are timed apart and together; every row carries
//! MACs, achieved GFLOP/s against this core's measured fp32 peak, the arena and constant bytes,
//! and its agreement with the reference executor. A row that cannot run (no compiler, no
//! Python, no onnxruntime) says why instead of failing the bench.

mod baselines;
mod generated;
pub mod machine;
pub mod stats;
mod table;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::artifact::Model;
use crate::codegen::{self, harness::max_relative_error, Program};
use crate::data::Preprocess;
use crate::error::{Error, Result};
use crate::frontend::{Backbone, BackboneOptions};
use crate::ir::Tensor;
use crate::pipeline::FeatureGraph;

pub use machine::{Machine, Peak};
pub use stats::Stats;
pub use table::render;

/// Groups of rows, for `--only` and `--skip`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    /// Generated C at -O2 and at -O3 -march=native.
    C,
    /// Generated Rust, release and -C target-cpu=native.
    Rust,
    /// The reference executor and the reference scorer.
    Reference,
    /// tract on the backbone ONNX.
    Tract,
    /// onnxruntime on the backbone ONNX (Python).
    Onnxruntime,
    /// The fp32 peak microbenchmark.
    Peak,
}

impl Group {
    pub const ALL: [Group; 6] = [
        Group::C,
        Group::Rust,
        Group::Reference,
        Group::Tract,
        Group::Onnxruntime,
        Group::Peak,
    ];
}

/// How to run the bench.
#[derive(Clone, Debug)]
pub struct Options {
    /// Timed frames per row (after `warmup` untimed ones).
    pub frames: usize,
    pub warmup: usize,
    /// Timed frames of the reference executor, which is far slower.
    pub reference_frames: usize,
    /// Separate processes each generated-code row runs in (`frames` each, timings pooled), in
    /// rounds of one process per row.
    pub processes: usize,
    pub groups: Vec<Group>,
    /// C compiler.
    pub cc: String,
    /// Appended to both C builds' flags.
    pub extra_cflags: Vec<String>,
    /// Python for the onnxruntime script.
    pub python: String,
    /// Where the generated Rust gets fomo-ad-runtime from.
    pub runtime: codegen::rust::Runtime,
    /// Scratch directory (generated code, drivers, builds).
    pub work: PathBuf,
    /// Where the timed frame comes from, for the report.
    pub frame_source: String,
}

/// A trained model to bench, with everything that runs it.
pub struct Subject<'a> {
    /// Row label (`patchcore`, `gmm`, or the model file's stem).
    pub name: String,
    pub model: &'a Model,
    pub backbone: &'a Backbone,
    pub features: &'a FeatureGraph,
    pub preprocess: &'a Preprocess,
    /// The backbone ONNX file's bytes (tract and onnxruntime run the file itself).
    pub onnx: &'a [u8],
    /// The frame every row runs: interleaved HWC bytes of the model's input size.
    pub frame: &'a [u8],
}

/// Everything the bench measured.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub tool: String,
    pub machine: Machine,
    /// This core's fp32 peak.
    pub peak: Option<Peak>,
    /// Why the peak was not measured.
    pub peak_unavailable: Option<String>,
    pub settings: Settings,
    pub models: Vec<ModelReport>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    pub threads: usize,
    pub batch: usize,
    pub frames: usize,
    pub warmup: usize,
    pub reference_frames: usize,
    /// Processes per generated-code row (each `frames` timed frames; the stats pool them).
    pub processes: usize,
    pub frame: String,
    pub c_o2: String,
    pub c_native: String,
    pub rust_release: String,
    pub rust_native: String,
    pub stages: String,
}

/// One model's rows.
#[derive(Clone, Debug, Serialize)]
pub struct ModelReport {
    pub name: String,
    pub scorer: String,
    pub path: PathBuf,
    pub backbone: String,
    /// `[height, width, channels]`.
    pub input: [usize; 3],
    /// `[rows, cols]`.
    pub grid: [usize; 2],
    pub backbone_macs: u64,
    pub arena_bytes: usize,
    /// The schedule's lower bound (the largest live set).
    pub arena_lower_bound_bytes: usize,
    pub constant_bytes: usize,
    pub rows: Vec<Row>,
    pub ratios: Ratios,
}

/// One way of running the model.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// `c-O2`, `c-O3-native`, `rust-release`, `rust-native`, `reference`, `tract`, `onnxruntime`.
    pub engine: String,
    /// How it was built or run.
    pub what: String,
    /// Why the row has no figures.
    pub unavailable: Option<String>,
    /// tract and onnxruntime run the backbone alone: no scorer, no total.
    pub backbone_only: bool,
    pub backbone: Option<Stats>,
    pub scorer: Option<Stats>,
    pub total: Option<Stats>,
    pub macs: u64,
    /// 2 x MACs / median backbone time.
    pub gflops: Option<f64>,
    pub percent_of_peak: Option<f64>,
    /// Planned working memory and baked-in constants of the generated code.
    pub arena_bytes: Option<usize>,
    pub constant_bytes: Option<usize>,
    /// Largest difference from the reference executor relative to the largest |reference|
    /// value: over the cells for full rows, over the feature map for backbone-only rows.
    pub max_relative_error: Option<f32>,
}

impl Row {
    fn unavailable(engine: &str, what: String, macs: u64, reason: String) -> Row {
        Row {
            engine: engine.into(),
            what,
            unavailable: Some(reason),
            backbone_only: false,
            backbone: None,
            scorer: None,
            total: None,
            macs,
            gflops: None,
            percent_of_peak: None,
            arena_bytes: None,
            constant_bytes: None,
            max_relative_error: None,
        }
    }
}

/// The ratios the speed targets are stated in (issue 6), from the medians.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Ratios {
    /// Generated C (-O3 -march=native) backbone + scorer over tract's backbone alone (target
    /// <= 0.5).
    pub c_native_total_over_tract_backbone: Option<f64>,
    /// The same over onnxruntime's backbone alone (the goal: below 1).
    pub c_native_total_over_onnxruntime_backbone: Option<f64>,
    pub c_native_backbone_over_onnxruntime_backbone: Option<f64>,
    /// Generated Rust over generated C, total (target <= 1.25).
    pub rust_native_total_over_c_native_total: Option<f64>,
    pub rust_release_total_over_c_o2_total: Option<f64>,
}

const C_O2: &[&str] = &["-std=c99", "-O2"];
const C_NATIVE: &[&str] = &["-std=c99", "-O3", "-march=native"];
const RUST_NATIVE_FLAGS: &str = "-C target-cpu=native";

/// Runs every selected row for every subject.
pub fn run(subjects: &[Subject], options: &Options) -> Result<Report> {
    if options.frames == 0 || options.reference_frames == 0 || options.processes == 0 {
        return Err(Error::usage(
            "--frames, --reference-frames and --processes must be at least 1",
        ));
    }
    let mut machine = Machine::now();
    let peak = if options.groups.contains(&Group::Peak) {
        progress("measuring the single-thread fp32 peak");
        let dir = options.work.join("peak");
        create_dir(&dir)?;
        machine::measure_peak(&options.cc, &dir).map_err(|e| e.to_string())
    } else {
        Err("skipped".into())
    };
    let settings = Settings {
        threads: 1,
        batch: 1,
        frames: options.frames,
        warmup: options.warmup,
        reference_frames: options.reference_frames,
        processes: options.processes,
        frame: format!("{}, run again every frame", options.frame_source),
        c_o2: c_flags(C_O2, options).join(" "),
        c_native: c_flags(C_NATIVE, options).join(" "),
        rust_release: "cargo build --release".into(),
        rust_native: format!("RUSTFLAGS='{RUST_NATIVE_FLAGS}' cargo build --release"),
        stages: "backbone = pixels scaled into the input + backbone; scorer = cell scores from \
                 the feature map; total = the public run (C, Rust) or backbone + scorer \
                 (reference), timed in its own loop"
            .into(),
    };
    let mut baselines = Baselines::default();
    let mut models = Vec::new();
    for subject in subjects {
        models.push(bench_model(
            subject,
            options,
            peak.as_ref().ok(),
            &mut baselines,
        )?);
    }
    machine.load_average_end = machine::load_average();
    Ok(Report {
        tool: format!("fomo-ad {}", crate::VERSION),
        machine,
        peak_unavailable: peak.as_ref().err().cloned(),
        peak: peak.ok(),
        settings,
        models,
    })
}

/// tract and onnxruntime rows, measured once per backbone and input size.
#[derive(Default)]
struct Baselines {
    rows: HashMap<(String, [usize; 3], Option<String>), Vec<Row>>,
}

fn bench_model(
    subject: &Subject,
    options: &Options,
    peak: Option<&Peak>,
    baselines: &mut Baselines,
) -> Result<ModelReport> {
    let name = &subject.name;
    let program = codegen::program_for_model(
        subject.model,
        subject.features,
        subject.backbone,
        Vec::new(),
    )?;
    let macs = program.backbone_macs();
    let graph = &subject.features.graph;
    let input = graph.input_shape();
    if subject.frame.len() != input.len() {
        return Err(Error::usage(format!(
            "{name}: the frame has {} bytes, the model takes {}",
            subject.frame.len(),
            input.len()
        )));
    }
    let reference_cells = subject.model.scorer.score(&crate::exec::run(
        graph,
        &subject.preprocess.pixels_to_tensor(subject.frame),
    ));
    let context = RowContext {
        program: &program,
        peak,
        reference_cells: &reference_cells,
    };
    let work = options.work.join("models").join(name);
    create_dir(&work)?;
    let frame_path = work.join("frame.u8");
    std::fs::write(&frame_path, subject.frame).map_err(|e| Error::io(&frame_path, e))?;

    let mut builds = Vec::new();
    if options.groups.contains(&Group::C) {
        builds.extend(c_builds(&context, options, &work, name));
    }
    if options.groups.contains(&Group::Rust) {
        builds.extend(rust_builds(&context, options, &work, name));
    }
    let mut rows = time_builds(&context, options, &frame_path, name, builds);
    if options.groups.contains(&Group::Reference) {
        progress(&format!(
            "{name}: reference executor, {} frames",
            options.reference_frames
        ));
        let timings = baselines::time_reference(
            graph,
            subject.preprocess,
            subject.model.scorer.as_ref(),
            subject.frame,
            options.reference_frames,
            options.warmup.min(options.reference_frames),
        )?;
        let mut row = context.row(
            "reference",
            "fomo-ad's reference executor and scorer, in-process, one thread".into(),
            &timings.backbone_ns,
            Some((&timings.scorer_ns, &timings.total_ns)),
        );
        row.arena_bytes = None;
        row.constant_bytes = None;
        row.max_relative_error = Some(0.0);
        rows.push(row);
    }
    let key = (
        subject.backbone.sha256.clone(),
        [input.h, input.w, input.c],
        subject.model.meta.backbone.cut.clone(),
    );
    let wanted =
        options.groups.contains(&Group::Tract) || options.groups.contains(&Group::Onnxruntime);
    if wanted {
        if !baselines.rows.contains_key(&key) {
            let measured = backbone_rows(subject, options, &context)?;
            baselines.rows.insert(key.clone(), measured);
        }
        rows.extend(baselines.rows[&key].iter().cloned());
    }
    let ratios = ratios(&rows);
    Ok(ModelReport {
        name: name.clone(),
        scorer: subject.model.scorer.kind().name().to_string(),
        path: subject.model.path.clone(),
        backbone: subject.backbone.path.display().to_string(),
        input: [input.h, input.w, input.c],
        grid: [program.grid.rows, program.grid.cols],
        backbone_macs: macs,
        arena_bytes: program.arena.bytes,
        arena_lower_bound_bytes: program.arena.lower_bound_bytes,
        constant_bytes: program.constant_bytes(),
        rows,
        ratios,
    })
}

/// What every row of one model is computed against.
struct RowContext<'a> {
    program: &'a Program,
    peak: Option<&'a Peak>,
    reference_cells: &'a [f32],
}

impl RowContext<'_> {
    /// A row from per-frame nanoseconds: the backbone, and the scorer and total when the engine
    /// runs the whole model.
    fn row(
        &self,
        engine: &str,
        what: String,
        backbone_ns: &[f64],
        scorer_and_total: Option<(&[f64], &[f64])>,
    ) -> Row {
        let backbone = Stats::from_ns(backbone_ns);
        self.row_from_stats(
            engine,
            what,
            backbone,
            scorer_and_total.map(|(s, t)| (Stats::from_ns(s), Stats::from_ns(t))),
        )
    }

    fn row_from_stats(
        &self,
        engine: &str,
        what: String,
        backbone: Option<Stats>,
        scorer_and_total: Option<(Option<Stats>, Option<Stats>)>,
    ) -> Row {
        let macs = self.program.backbone_macs();
        let gflops = backbone.map(|b| 2.0 * macs as f64 / (b.median_ms * 1e-3) * 1e-9);
        let (scorer, total) = scorer_and_total.unwrap_or((None, None));
        Row {
            engine: engine.into(),
            what,
            unavailable: None,
            backbone_only: scorer_and_total.is_none(),
            backbone,
            scorer,
            total,
            macs,
            gflops,
            percent_of_peak: gflops.zip(self.peak).map(|(g, p)| 100.0 * g / p.gflops),
            arena_bytes: Some(self.program.arena.bytes),
            constant_bytes: Some(self.program.constant_bytes()),
            max_relative_error: None,
        }
    }

    /// The row of a generated-code driver's timings, checked against the reference.
    fn generated_row(&self, engine: &str, what: String, timings: generated::Timings) -> Row {
        if timings.staged_cells != timings.cells {
            let macs = self.program.backbone_macs();
            return Row::unavailable(
                engine,
                what,
                macs,
                "internal error: the stage hooks and the public run disagree on the cells".into(),
            );
        }
        let mut row = self.row(
            engine,
            what,
            &timings.backbone_ns,
            Some((&timings.scorer_ns, &timings.total_ns)),
        );
        row.max_relative_error = Some(max_relative_error(self.reference_cells, &timings.cells));
        row
    }
}

fn c_flags(base: &[&str], options: &Options) -> Vec<String> {
    base.iter()
        .map(|s| s.to_string())
        .chain(options.extra_cflags.iter().cloned())
        .collect()
}

/// A generated-code row: its driver, built, or why it could not be.
struct Build {
    engine: &'static str,
    what: String,
    exe: std::result::Result<PathBuf, String>,
}

fn c_builds(context: &RowContext, options: &Options, work: &Path, name: &str) -> Vec<Build> {
    let dir = work.join("c");
    let builds = [("c-O2", C_O2), ("c-O3-native", C_NATIVE)];
    let prepared = create_dir(&dir).and_then(|_| generated::prepare_c(context.program, &dir));
    builds
        .iter()
        .map(|&(engine, base)| {
            let flags = c_flags(base, options);
            let what = format!("generated C, {} {}", options.cc, flags.join(" "));
            let exe = prepared.as_ref().map_err(|e| e.to_string()).and_then(|_| {
                progress(&format!("{name}: building {engine}"));
                let exe = dir.join(format!("driver-{engine}"));
                generated::build_c(context.program, &dir, &options.cc, &flags, &exe)
                    .map(|_| exe)
                    .map_err(|e| e.to_string())
            });
            Build { engine, what, exe }
        })
        .collect()
}

fn rust_builds(context: &RowContext, options: &Options, work: &Path, name: &str) -> Vec<Build> {
    let dir = work.join("rust");
    let builds = [("rust-release", ""), ("rust-native", RUST_NATIVE_FLAGS)];
    let prepared = create_dir(&dir)
        .and_then(|_| generated::prepare_rust(context.program, &dir, options.runtime.clone()));
    builds
        .iter()
        .map(|&(engine, rustflags)| {
            let what = if rustflags.is_empty() {
                "generated Rust, cargo build --release".to_string()
            } else {
                format!("generated Rust, RUSTFLAGS='{rustflags}' cargo build --release")
            };
            let exe = prepared.as_ref().map_err(|e| e.to_string()).and_then(|_| {
                progress(&format!("{name}: building {engine} (cargo, release)"));
                // One target directory per flavour: the flags change every artifact.
                let target = options.work.join(format!("target-{engine}"));
                generated::build_rust(&dir, &target, rustflags).map_err(|e| e.to_string())
            });
            Build { engine, what, exe }
        })
        .collect()
}

/// Times every built driver in `options.processes` rounds of one process each, pooling each
/// driver's rounds. Round by round, not row by row: a slow spell of a virtual machine (seen here
/// lasting minutes, 1.5-2x) then lands on every row alike instead of on whichever rows ran
/// during it, which skewed the ratios between rows (one run read the GMM's Rust/C as 1.20,
/// interleaved runs of the same builds about 1.55).
fn time_builds(
    context: &RowContext,
    options: &Options,
    frame: &Path,
    name: &str,
    builds: Vec<Build>,
) -> Vec<Row> {
    let built: Vec<&str> = builds
        .iter()
        .filter(|b| b.exe.is_ok())
        .map(|b| b.engine)
        .collect();
    if !built.is_empty() {
        progress(&format!(
            "{name}: timing {} in {} interleaved rounds",
            built.join(", "),
            options.processes
        ));
    }
    // Per build: why it has no row (unbuilt, or a round failed), or its timings pooled so far.
    let mut timed: Vec<std::result::Result<Option<generated::Timings>, String>> = builds
        .iter()
        .map(|b| b.exe.as_ref().map(|_| None).map_err(Clone::clone))
        .collect();
    for _ in 0..options.processes {
        for (build, slot) in builds.iter().zip(&mut timed) {
            let (Ok(exe), Ok(pooled)) = (&build.exe, slot.as_mut()) else {
                continue;
            };
            let so_far = pooled.take();
            let pooled = generated::run_driver(exe, frame, options.frames, options.warmup)
                .and_then(|more| match so_far {
                    None => Ok(more),
                    Some(mut so_far) => so_far.pool(exe, more).map(|()| so_far),
                });
            *slot = pooled.map(Some).map_err(|e| e.to_string());
        }
    }
    let macs = context.program.backbone_macs();
    builds
        .into_iter()
        .zip(timed)
        .map(|(build, timings)| {
            // `processes` is at least 1 (checked with the options), so every built driver ran.
            let timings = timings
                .and_then(|t| t.ok_or_else(|| "internal error: the driver never ran".to_string()));
            match timings {
                Ok(t) => context.generated_row(build.engine, build.what, t),
                Err(reason) => Row::unavailable(build.engine, build.what, macs, reason),
            }
        })
        .collect()
}

/// tract and onnxruntime on the backbone file, checked against the reference executor's
/// backbone output.
fn backbone_rows(subject: &Subject, options: &Options, context: &RowContext) -> Result<Vec<Row>> {
    let macs = context.program.backbone_macs();
    let backbone = subject.backbone;
    let input = subject.preprocess.pixels_to_tensor(subject.frame);
    let reference = crate::exec::run(&backbone.graph, &input);
    let meta = &subject.model.meta;
    let backbone_options = BackboneOptions {
        input_size: Some((meta.input.width, meta.input.height)),
        cut: meta.backbone.cut.clone(),
    };
    let finish = |mut row: Row, output: &Tensor| {
        row.arena_bytes = None;
        row.constant_bytes = None;
        row.max_relative_error = Some(max_relative_error(&reference.data, &output.data));
        row
    };
    let mut rows = Vec::new();
    if options.groups.contains(&Group::Tract) {
        progress(&format!(
            "{}: tract (backbone only), {} frames",
            subject.name, options.frames
        ));
        let what = "tract-onnx 0.23 in-process, into_optimized().into_runnable(), one \
                    session, one thread (backbone only)"
            .to_string();
        rows.push(
            match baselines::time_tract(
                &backbone.path,
                subject.onnx,
                &backbone_options,
                &input,
                options.frames,
                options.warmup,
            ) {
                Ok((times, output)) => finish(context.row("tract", what, &times, None), &output),
                Err(e) => Row::unavailable("tract", what, macs, e.to_string()),
            },
        );
    }
    if options.groups.contains(&Group::Onnxruntime) {
        progress(&format!(
            "{}: onnxruntime (backbone only, Python), {} frames",
            subject.name, options.frames
        ));
        let mut what = format!(
            "onnxruntime via `{} scripts/bench_onnxruntime.py`, one thread, sequential, all \
             graph optimisations (backbone only)",
            options.python
        );
        let dir = options
            .work
            .join("models")
            .join(&subject.name)
            .join("onnxruntime");
        create_dir(&dir)?;
        let measured = if meta.backbone.cut.is_some() {
            Err(
                "the model cuts the backbone file inside (--cut); the script runs whole files"
                    .into(),
            )
        } else {
            baselines::time_onnxruntime(
                &options.python,
                subject.onnx,
                &input,
                backbone.graph.input_layout,
                (backbone.graph.output_shape(), backbone.graph.output_layout),
                &dir,
                options.frames,
                options.warmup,
            )
        };
        rows.push(match measured {
            Ok(timings) => {
                what += &format!(", onnxruntime {}", timings.version);
                let row = context.row_from_stats("onnxruntime", what, Some(timings.stats), None);
                finish(row, &timings.output)
            }
            Err(reason) => Row::unavailable("onnxruntime", what, macs, reason),
        });
    }
    Ok(rows)
}

fn ratios(rows: &[Row]) -> Ratios {
    let median = |engine: &str, stage: fn(&Row) -> Option<Stats>| {
        rows.iter()
            .find(|r| r.engine == engine)
            .and_then(stage)
            .map(|s| s.median_ms)
    };
    let backbone = |r: &Row| r.backbone;
    let total = |r: &Row| r.total;
    let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a / b);
    Ratios {
        c_native_total_over_tract_backbone: ratio(
            median("c-O3-native", total),
            median("tract", backbone),
        ),
        c_native_total_over_onnxruntime_backbone: ratio(
            median("c-O3-native", total),
            median("onnxruntime", backbone),
        ),
        c_native_backbone_over_onnxruntime_backbone: ratio(
            median("c-O3-native", backbone),
            median("onnxruntime", backbone),
        ),
        rust_native_total_over_c_native_total: ratio(
            median("rust-native", total),
            median("c-O3-native", total),
        ),
        rust_release_total_over_c_o2_total: ratio(
            median("rust-release", total),
            median("c-O2", total),
        ),
    }
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}

/// Progress goes to stderr so that `--json` on stdout stays clean.
fn progress(message: &str) {
    eprintln!("bench: {message}");
}
