//! `fomo-ad score`: per image, the score, the cell grid and the verdict.

use std::path::PathBuf;

use serde_json::json;

use super::model_args::ModelArgs;
use crate::error::Result;
use crate::pipeline::{image_score, score_image};

#[derive(clap::Args, Debug)]
pub struct ScoreArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Decision threshold (default: the model's suggested one).
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Print a JSON list instead of grids.
    #[arg(long)]
    pub json: bool,
    /// Images to score.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
}

pub fn run(args: ScoreArgs) -> Result<()> {
    let loaded = args.model.load()?;
    let threshold = args.threshold.unwrap_or(loaded.model.meta.threshold);
    if !threshold.is_finite() {
        return Err(crate::Error::usage("--threshold must be a finite number"));
    }
    let cols = loaded.model.meta.grid[1];
    let mut results = vec![];
    for path in &args.images {
        let (_, cells) = score_image(
            &loaded.features.graph,
            &loaded.preprocess,
            loaded.model.scorer.as_ref(),
            path,
        )?;
        results.push((path, image_score(&cells), cells));
    }
    if args.json {
        let list: Vec<_> = results
            .iter()
            .map(|(path, score, cells)| {
                json!({"path": path.display().to_string(), "score": score, "anomalous": *score >= threshold, "cells": cells.chunks(cols).collect::<Vec<_>>()})
            })
            .collect();
        return super::print(
            &(serde_json::to_string_pretty(&list).expect("JSON values always serialise") + "\n"),
        );
    }
    let mut text = String::new();
    for (path, score, cells) in &results {
        let verdict = if *score >= threshold { "ANOMALY" } else { "ok" };
        text += &format!(
            "{}: score {score:.4} -> {verdict} (threshold {threshold})\n",
            path.display()
        );
        for row in cells.chunks(cols) {
            let line: Vec<String> = row
                .iter()
                .map(|v| {
                    if *v >= threshold {
                        format!("[{v:6.2}]")
                    } else {
                        format!(" {v:6.2} ")
                    }
                })
                .collect();
            text += &format!("  {}\n", line.join(""));
        }
    }
    super::print(&text)
}
