//! `fomo-ad test`: score a labelled test set; F1 at the threshold, AUROC, the F1-optimal
//! threshold, the confusion matrix, cell-level AUROC where masks exist, and heatmaps.

use std::path::PathBuf;

use rayon::prelude::*;
use serde_json::json;

use super::model_args::ModelArgs;
use crate::data::{mask_cells, open_dataset, Label};
use crate::error::{Error, Result};
use crate::eval::{self, auroc, best_f1_threshold, confusion};
use crate::pipeline::{image_score, progress_bar, score_image};

#[derive(clap::Args, Debug)]
pub struct TestArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Data set folder with a labelled test set.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Decision threshold (default: the model's suggested one).
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Write one heatmap PNG per test image into DIR.
    #[arg(long, value_name = "DIR")]
    pub heatmaps: Option<PathBuf>,
    /// Print one JSON object instead of a report.
    #[arg(long)]
    pub json: bool,
}

struct Scored {
    path: PathBuf,
    label: Label,
    defect: Option<String>,
    pixels: Vec<u8>,
    cells: Vec<f32>,
    mask: Option<Vec<bool>>,
}

pub fn run(args: TestArgs) -> Result<()> {
    if let Some(dir) = args.heatmaps.as_ref().filter(|d| d.exists() && !d.is_dir()) {
        return Err(Error::input(
            dir,
            "--heatmaps: exists and is not a directory",
        ));
    }
    let loaded = args.model.load()?;
    let dataset = open_dataset(&args.data)?;
    let samples = dataset.require_test()?;
    let meta = &loaded.model.meta;
    let [rows, cols] = meta.grid;
    let threshold = args.threshold.unwrap_or(meta.threshold);
    if !threshold.is_finite() {
        return Err(Error::usage("--threshold must be a finite number"));
    }
    let bar = progress_bar(samples.len() as u64, "testing");
    let scored = samples
        .par_iter()
        .map(|s| {
            let (pixels, cells) = score_image(
                &loaded.features.graph,
                &loaded.preprocess,
                loaded.model.scorer.as_ref(),
                &s.path,
            )?;
            let mask = s
                .mask
                .as_ref()
                .map(|m| mask_cells(m, &loaded.preprocess, rows, cols))
                .transpose()?;
            bar.inc(1);
            Ok(Scored {
                path: s.path.clone(),
                label: s.label,
                defect: s.defect.clone(),
                pixels,
                cells,
                mask,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    bar.finish_and_clear();

    let scores: Vec<f32> = scored.iter().map(|s| image_score(&s.cells)).collect();
    let positive: Vec<bool> = scored.iter().map(|s| s.label.is_anomaly()).collect();
    let image_auroc = auroc(&scores, &positive);
    let matrix = confusion(&scores, &positive, threshold);
    let (best_threshold, best_f1) = best_f1_threshold(&scores, &positive);
    // Cell-level AUROC over the images that have masks, plus every cell of normal images.
    let (mut cell_scores, mut cell_truth) = (vec![], vec![]);
    let any_mask = scored.iter().any(|s| s.mask.is_some());
    for s in &scored {
        match (&s.mask, s.label) {
            (Some(mask), _) => {
                cell_scores.extend_from_slice(&s.cells);
                cell_truth.extend_from_slice(mask);
            }
            (None, Label::Normal) if any_mask => {
                cell_scores.extend_from_slice(&s.cells);
                cell_truth.extend(std::iter::repeat_n(false, s.cells.len()));
            }
            _ => {}
        }
    }
    let cell_auroc = if any_mask {
        auroc(&cell_scores, &cell_truth)
    } else {
        None
    };

    if let Some(dir) = &args.heatmaps {
        // Rendered into a folder beside DIR first: a failure leaves no half set of heatmaps.
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
        let staging = crate::atomic::staging_dir(&parent, ".fomo-ad-heatmaps-")?;
        let scale_max = scores.iter().copied().fold(threshold, f32::max);
        for s in &scored {
            let stem = s
                .path
                .file_stem()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            let group = s.defect.clone().unwrap_or_else(|| {
                if s.label.is_anomaly() {
                    "anomaly".into()
                } else {
                    "good".into()
                }
            });
            let out = staging.path().join(format!("{group}_{stem}.png"));
            let pre = &loaded.preprocess;
            eval::write_heatmap(
                &s.pixels,
                pre.width,
                pre.height,
                pre.channels,
                &s.cells,
                rows,
                cols,
                threshold,
                scale_max,
                &out,
            )?;
        }
        if dir.is_dir() {
            for entry in std::fs::read_dir(staging.path()).map_err(|e| Error::io(dir, e))? {
                let staged = entry.map_err(|e| Error::io(dir, e))?.path();
                let target = dir.join(staged.file_name().expect("read_dir gives file names"));
                std::fs::rename(&staged, &target).map_err(|e| Error::io(&target, e))?;
            }
        } else {
            std::fs::rename(staging.path(), dir).map_err(|e| Error::io(dir, e))?;
            // The staging folder is now DIR: it must not be cleaned up.
            let _ = staging.keep();
        }
    }

    if args.json {
        let images: Vec<_> = scored
            .iter()
            .zip(&scores)
            .map(|(s, score)| {
                json!({
                    "path": s.path.display().to_string(),
                    "label": s.label,
                    "defect": s.defect,
                    "score": score,
                    "anomalous": *score >= threshold,
                    "cells": s.cells.chunks(cols).collect::<Vec<_>>(),
                })
            })
            .collect();
        let report = json!({
            "model": args.model.model.display().to_string(),
            "scorer": meta.scorer,
            "threshold": threshold,
            "image_auroc": image_auroc,
            "cell_auroc": cell_auroc,
            "precision": matrix.precision(),
            "recall": matrix.recall(),
            "f1": matrix.f1(),
            "confusion": {"tp": matrix.tp, "fp": matrix.fp, "tn": matrix.tn, "fn": matrix.fn_},
            "best_f1_threshold": best_threshold,
            "best_f1": best_f1,
            "images": images,
        });
        return super::print(
            &(serde_json::to_string_pretty(&report).expect("JSON values always serialise") + "\n"),
        );
    }
    let fmt = |v: Option<f64>| {
        v.map_or_else(
            || "n/a (one class missing)".to_string(),
            |v| format!("{v:.4}"),
        )
    };
    let mut text = format!(
        "tested {} ({} scorer) on {} images of {}\n\
         threshold       {threshold}{}\n\
         image AUROC     {}\n\
         cell AUROC      {}\n\
         F1              {:.4} (precision {:.4}, recall {:.4})\n\
         confusion       tp {} fp {} tn {} fn {}\n\
         best F1         {:.4} at threshold {best_threshold}\n",
        args.model.model.display(),
        meta.scorer,
        scored.len(),
        args.data.display(),
        if args.threshold.is_none() {
            " (suggested: max training score)"
        } else {
            ""
        },
        fmt(image_auroc),
        fmt(cell_auroc),
        matrix.f1(),
        matrix.precision(),
        matrix.recall(),
        matrix.tp,
        matrix.fp,
        matrix.tn,
        matrix.fn_,
        best_f1,
    );
    if let Some(dir) = &args.heatmaps {
        text += &format!("heatmaps        {}\n", dir.display());
    }
    super::print(&text)
}
