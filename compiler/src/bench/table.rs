//! The bench report as a text table.

use super::{ModelReport, Report, Row, Stats};

/// The report as text: machine and peak, then one table per model with its ratios.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let m = &report.machine;
    let s = &report.settings;
    out += &format!(
        "{}: {} thread, batch {}, {} timed frames after {} warm-up ({} for the reference executor); generated code in {} processes of that many, pooled\n",
        report.tool, s.threads, s.batch, s.frames, s.warmup, s.reference_frames, s.processes
    );
    out += &format!(
        "CPU: {} ({} logical, this process allowed on {}), load average {} at start, {} at end\n",
        m.cpu.as_deref().unwrap_or("unknown"),
        m.logical_cpus,
        m.cpus_allowed.as_deref().unwrap_or("?"),
        load(m.load_average_start),
        load(m.load_average_end)
    );
    match (&report.peak, &report.peak_unavailable) {
        (Some(p), _) => {
            out += &format!(
                "fp32 peak, one thread: {:.1} GFLOP/s (512-bit {:.1}, 256-bit {:.1}; FMA-throughput microbenchmark)\n",
                p.gflops, p.gflops_512_bit, p.gflops_256_bit
            )
        }
        (None, reason) => {
            out += &format!(
                "fp32 peak: not measured ({})\n",
                reason.as_deref().unwrap_or("?")
            )
        }
    }
    out += "times: median ms per frame [p10-p90]; backbone = pixels to feature map\n";
    for model in &report.models {
        out += "\n";
        out += &model_table(model);
    }
    out
}

fn model_table(model: &ModelReport) -> String {
    let [h, w, c] = model.input;
    let mut out = format!(
        "{} ({}, {}x{}x{} in, {}x{} cells): backbone {:.2} M MACs, arena {} bytes (lower bound {}), constants {} bytes\n",
        model.name,
        match model.scorer.as_str() {
            "patchcore" => "PatchCore",
            "gmm" => "GMM",
            other => other,
        },
        w,
        h,
        c,
        model.grid[1],
        model.grid[0],
        model.backbone_macs as f64 * 1e-6,
        model.arena_bytes,
        model.arena_lower_bound_bytes,
        model.constant_bytes
    );
    let header = [
        "engine",
        "backbone",
        "scorer",
        "total",
        "GFLOP/s",
        "% peak",
        "max rel err",
    ];
    let mut lines: Vec<[String; 7]> = vec![header.map(String::from)];
    let mut notes = Vec::new();
    for row in &model.rows {
        lines.push(row_cells(row));
        if let Some(reason) = &row.unavailable {
            notes.push(format!("  {}: unavailable: {reason}", row.engine));
        }
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| lines.iter().map(|l| l[i].len()).max().unwrap_or(0))
        .collect();
    for line in &lines {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, width))| {
                if i == 0 {
                    format!("{cell:<width$}")
                } else {
                    format!("{cell:>width$}")
                }
            })
            .collect();
        out += &format!("  {}\n", cells.join("  ").trim_end());
    }
    for note in notes {
        out += &note;
        out += "\n";
    }
    let r = &model.ratios;
    let ratio = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.2}"));
    out += &format!(
        "  C -O3 native total / tract backbone = {} (target <= 0.5); / onnxruntime backbone = {} (backbone alone {})\n",
        ratio(r.c_native_total_over_tract_backbone),
        ratio(r.c_native_total_over_onnxruntime_backbone),
        ratio(r.c_native_backbone_over_onnxruntime_backbone)
    );
    out += &format!(
        "  Rust native / C -O3 native total = {} (target <= 1.25); Rust release / C -O2 = {}\n",
        ratio(r.rust_native_total_over_c_native_total),
        ratio(r.rust_release_total_over_c_o2_total)
    );
    out
}

fn row_cells(row: &Row) -> [String; 7] {
    let time = |s: Option<Stats>| {
        s.map_or("-".to_string(), |s| {
            format!("{} [{}-{}]", ms(s.median_ms), ms(s.p10_ms), ms(s.p90_ms))
        })
    };
    let engine = if row.backbone_only {
        format!("{} (backbone only)", row.engine)
    } else {
        row.engine.clone()
    };
    if row.unavailable.is_some() {
        return [
            engine,
            "unavailable".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
        ];
    }
    [
        engine,
        time(row.backbone),
        time(row.scorer),
        time(row.total),
        row.gflops.map_or("-".into(), |g| format!("{g:.1}")),
        row.percent_of_peak
            .map_or("-".into(), |p| format!("{p:.0}%")),
        row.max_relative_error.map_or("-".into(), |e| {
            if e == 0.0 {
                "0".into()
            } else {
                format!("{e:.1e}")
            }
        }),
    ]
}

/// Three significant digits at least, in milliseconds.
fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn load(values: Option<[f64; 3]>) -> String {
    values.map_or("?".to_string(), |[a, b, c]| format!("{a:.2} {b:.2} {c:.2}"))
}
