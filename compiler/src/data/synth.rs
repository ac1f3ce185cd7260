//! A synthetic inspection data set in MVTec AD layout (with masks), so demos and tests need no
//! download. Normal images are a procedural surface seen with small random shifts, rotations,
//! brightness/tint changes and sensor noise; defects are drawn on top with their exact masks.
//!
//! Every image has its own random stream derived from (seed, split, index), so output is the same
//! bytes for the same seed regardless of how many threads render it.

use std::f32::consts::PI;
use std::path::{Path, PathBuf};

use image::{GrayImage, Luma, Rgb, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The surface every image in a data set shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Surface {
    /// Plain-weave fabric.
    #[default]
    Woven,
    /// Brushed metal.
    Metal,
    /// Wood grain.
    Wood,
}

/// Defect kinds, in folder order.
pub const DEFECTS: [Defect; 3] = [Defect::Insert, Defect::Scratch, Defect::Spot];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Defect {
    /// A small foreign object: a square or disc of another texture.
    Insert,
    /// Thin bright or dark line segments.
    Scratch,
    /// A blob of a different colour (a stain).
    Spot,
}

impl Defect {
    pub fn name(self) -> &'static str {
        match self {
            Defect::Insert => "insert",
            Defect::Scratch => "scratch",
            Defect::Spot => "spot",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SynthOptions {
    pub seed: u64,
    /// Normal training images.
    pub train: usize,
    /// Normal test images.
    pub test_good: usize,
    /// Anomalous test images per defect kind.
    pub test_anomalous: usize,
    /// Square image side in pixels.
    pub size: u32,
    pub surface: Surface,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            seed: 0,
            train: 200,
            test_good: 40,
            test_anomalous: 20,
            size: 96,
            surface: Surface::Woven,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SynthSummary {
    pub images: usize,
    pub masks: usize,
}

/// Name of the marker file that says a folder was made by `synth` (so `--force` may replace it).
pub const MARKER: &str = "synth.json";

/// One image to render: its split, file stem and defect.
#[derive(Clone, Copy)]
enum Split {
    Train,
    TestGood,
    TestDefect(Defect),
}

/// Renders image `index` of `split`: the RGB image and, for a defect, its mask (255 = defect).
fn render(options: &SynthOptions, split: Split, index: usize) -> (RgbImage, Option<GrayImage>) {
    let split_id = match split {
        Split::Train => 0,
        Split::TestGood => 1,
        Split::TestDefect(d) => 2 + d as u64,
    };
    let mut rng =
        ChaCha8Rng::seed_from_u64(mix(mix(options.seed) ^ mix(split_id << 32 | index as u64)));
    let size = options.size;
    let s = size as f32 / 96.0;
    // The texture's noise lattice is shared by the whole data set (same surface); each image sees
    // a different window of it, slightly rotated, with its own lighting.
    let lattice = mix(options.seed ^ 0x5eed);
    let view = View {
        angle: rng.random_range(-4.0f32..4.0).to_radians(),
        dx: rng.random_range(0.0..1000.0),
        dy: rng.random_range(0.0..1000.0),
        centre: size as f32 / 2.0,
        scale: s,
    };
    let brightness = rng.random_range(0.9f32..1.1);
    let tint: [f32; 3] = std::array::from_fn(|_| rng.random_range(0.97f32..1.03));
    // A gentle lighting gradient across the image.
    let (gx, gy) = (
        rng.random_range(-0.05f32..0.05),
        rng.random_range(-0.05f32..0.05),
    );
    let mut pixels = vec![[0.0f32; 3]; (size * size) as usize];
    for y in 0..size {
        for x in 0..size {
            let (u, v) = view.map(x as f32, y as f32);
            let colour = surface_colour(options.surface, lattice, u, v);
            let light = brightness
                * (1.0
                    + gx * (x as f32 / size as f32 - 0.5) * 2.0
                    + gy * (y as f32 / size as f32 - 0.5) * 2.0);
            let px = &mut pixels[(y * size + x) as usize];
            for c in 0..3 {
                px[c] = colour[c] * light * tint[c];
            }
        }
    }
    let mask = match split {
        Split::TestDefect(defect) => {
            let mut mask = vec![0.0f32; pixels.len()];
            draw_defect(
                defect,
                options.surface,
                &mut rng,
                size,
                s,
                &mut pixels,
                &mut mask,
            );
            Some(GrayImage::from_fn(size, size, |x, y| {
                Luma([if mask[(y * size + x) as usize] >= 0.3 {
                    255
                } else {
                    0
                }])
            }))
        }
        _ => None,
    };
    let image = RgbImage::from_fn(size, size, |x, y| {
        let px = pixels[(y * size + x) as usize];
        Rgb(std::array::from_fn(|c| {
            // Sensor noise, roughly Gaussian with sigma ~3 (sum of three uniforms).
            let noise: f32 = (0..3).map(|_| rng.random_range(-1.0f32..1.0)).sum::<f32>() * 3.0;
            (px[c] + noise).round().clamp(0.0, 255.0) as u8
        }))
    });
    (image, mask)
}

/// Maps image pixels to texture coordinates: rotation about the centre, then a shift.
struct View {
    angle: f32,
    dx: f32,
    dy: f32,
    centre: f32,
    /// Image size / 96, so the texture keeps its look (in cells of the 12x12 grid) at any size.
    scale: f32,
}

impl View {
    fn map(&self, x: f32, y: f32) -> (f32, f32) {
        let (sin, cos) = self.angle.sin_cos();
        let (px, py) = (x - self.centre, y - self.centre);
        (
            (cos * px - sin * py) / self.scale + self.dx,
            (sin * px + cos * py) / self.scale + self.dy,
        )
    }
}

/// Surface colour (0..255 floats) at texture coordinates (u, v), in units of a 96-px image.
fn surface_colour(surface: Surface, lattice: u64, u: f32, v: f32) -> [f32; 3] {
    match surface {
        Surface::Woven => {
            // Threads 6 px wide, over-under: each square shows either a warp or a weft thread,
            // bright in its middle and shaded at its edges, with fibres along the thread.
            let w = 6.0;
            let (i, j) = ((u / w).floor() as i64, (v / w).floor() as i64);
            let vertical = (i + j).rem_euclid(2) == 0;
            let (across, along) = if vertical { (u, v) } else { (v, u) };
            let profile = (PI * (across / w).rem_euclid(1.0)).sin().sqrt();
            let fibre = noise(lattice, across * 1.3, along * 0.25) - 0.5;
            let blotch = fbm(lattice ^ 1, u / 30.0, v / 30.0) - 0.5;
            let shade = 0.55 + 0.4 * profile + 0.12 * fibre + 0.1 * blotch;
            [182.0 * shade, 164.0 * shade, 132.0 * shade]
        }
        Surface::Metal => {
            // Streaks stretched along u, fine brushing marks and a broad sheen.
            let streak = fbm(lattice, u / 40.0, v / 1.5) - 0.5;
            let fine = noise(lattice ^ 2, u / 5.0, v / 0.7) - 0.5;
            let sheen = fbm(lattice ^ 3, u / 60.0, v / 60.0) - 0.5;
            let shade = 1.0 + 0.22 * streak + 0.08 * fine + 0.12 * sheen;
            [158.0 * shade, 162.0 * shade, 168.0 * shade]
        }
        Surface::Wood => {
            // Wavy grain lines roughly along u, with fine pores.
            let grain = v + 6.0 * fbm(lattice, u / 25.0, v / 25.0);
            let t = 0.5 + 0.5 * (2.0 * PI * grain / 7.0).sin();
            let pores = noise(lattice ^ 4, u / 6.0, v / 0.8) - 0.5;
            let k = (t.powf(1.5) + 0.1 * pores).clamp(0.0, 1.0);
            let light = [208.0, 164.0, 112.0];
            let dark = [140.0, 92.0, 52.0];
            std::array::from_fn(|c| dark[c] + (light[c] - dark[c]) * k)
        }
    }
}

/// Draws one defect into `pixels` and its coverage (0..1) into `mask`.
fn draw_defect(
    defect: Defect,
    surface: Surface,
    rng: &mut ChaCha8Rng,
    size: u32,
    s: f32,
    pixels: &mut [[f32; 3]],
    mask: &mut [f32],
) {
    let n = size as f32;
    let mut blend = |pixels: &mut [[f32; 3]], x: u32, y: u32, colour: [f32; 3], alpha: f32| {
        let i = (y * size + x) as usize;
        for c in 0..3 {
            pixels[i][c] += (colour[c] - pixels[i][c]) * alpha;
        }
        mask[i] = mask[i].max(alpha);
    };
    match defect {
        Defect::Scratch => {
            let bright = rng.random_bool(0.5);
            let strokes = rng.random_range(1..=2);
            for _ in 0..strokes {
                let length = rng.random_range(20.0..36.0) * s;
                let half = rng.random_range(0.8f32..1.2) * s;
                let angle = rng.random_range(0.0..PI);
                let (dx, dy) = (angle.cos() * length, angle.sin() * length);
                let margin = 4.0 * s;
                let x0 = rng.random_range(margin + dx.min(0.0).abs()..n - margin - dx.max(0.0));
                let y0 = rng.random_range(margin..n - margin - dy);
                let grey = if bright {
                    rng.random_range(235.0..255.0)
                } else {
                    rng.random_range(25.0..50.0)
                };
                for y in 0..size {
                    for x in 0..size {
                        let d = segment_distance(x as f32, y as f32, x0, y0, x0 + dx, y0 + dy);
                        let alpha = (half + 0.5 - d).clamp(0.0, 1.0);
                        if alpha > 0.0 {
                            blend(pixels, x, y, [grey; 3], 0.9 * alpha);
                        }
                    }
                }
            }
        }
        Defect::Spot => {
            let radius = rng.random_range(5.5..8.5) * s;
            let margin = radius * 1.3 + 2.0;
            let (cx, cy) = (
                rng.random_range(margin..n - margin),
                rng.random_range(margin..n - margin),
            );
            let colours = [
                [150.0, 70.0, 30.0],
                [55.0, 45.0, 40.0],
                [45.0, 70.0, 160.0],
                [90.0, 140.0, 60.0],
            ];
            let colour = colours[rng.random_range(0..colours.len())];
            let wobble = rng.random::<u64>();
            for y in 0..size {
                for x in 0..size {
                    let (px, py) = (x as f32 - cx, y as f32 - cy);
                    let d = (px * px + py * py).sqrt();
                    // An irregular edge: the radius varies with the angle.
                    let theta = py.atan2(px);
                    let edge = radius
                        * (0.8
                            + 0.4
                                * noise(wobble, theta.cos() * 1.5 + 3.0, theta.sin() * 1.5 + 3.0));
                    let alpha = ((edge - d) / (1.5 * s)).clamp(0.0, 1.0);
                    if alpha > 0.0 {
                        // Keep the texture visible through the stain (a dye, not paint).
                        let i = (y * size + x) as usize;
                        let under = (pixels[i][0] + pixels[i][1] + pixels[i][2]) / (3.0 * 150.0);
                        let stained = colour.map(|c| c * under.clamp(0.6, 1.3));
                        blend(pixels, x, y, stained, 0.9 * alpha);
                    }
                }
            }
        }
        Defect::Insert => {
            let side = rng.random_range(10.0..16.0) * s;
            let disc = rng.random_bool(0.5);
            let margin = side / 2.0 + 2.0;
            let (cx, cy) = (
                rng.random_range(margin..n - margin),
                rng.random_range(margin..n - margin),
            );
            // A foreign material: another surface, recoloured so it never matches the background.
            let other = match surface {
                Surface::Woven => Surface::Metal,
                Surface::Metal => Surface::Wood,
                Surface::Wood => Surface::Metal,
            };
            let hue =
                [[1.1, 0.75, 0.6], [0.6, 0.8, 1.15], [0.55, 0.55, 0.6]][rng.random_range(0..3)];
            let lattice = rng.random::<u64>();
            for y in 0..size {
                for x in 0..size {
                    let (px, py) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
                    let inside = if disc {
                        (px * px + py * py).sqrt() - side / 2.0
                    } else {
                        px.abs().max(py.abs()) - side / 2.0
                    };
                    let alpha = (0.5 - inside).clamp(0.0, 1.0);
                    if alpha > 0.0 {
                        let c =
                            surface_colour(other, lattice, x as f32 / s * 1.7, y as f32 / s * 1.7);
                        // A dark rim where the object meets the surface.
                        let rim = if inside > -1.2 * s { 0.55 } else { 1.0 };
                        blend(
                            pixels,
                            x,
                            y,
                            std::array::from_fn(|k| c[k] * hue[k] * rim),
                            alpha,
                        );
                    }
                }
            }
        }
    }
}

fn segment_distance(px: f32, py: f32, x0: f32, y0: f32, x1: f32, y1: f32) -> f32 {
    let (dx, dy) = (x1 - x0, y1 - y0);
    let t = (((px - x0) * dx + (py - y0) * dy) / (dx * dx + dy * dy)).clamp(0.0, 1.0);
    let (ex, ey) = (px - x0 - t * dx, py - y0 - t * dy);
    (ex * ex + ey * ey).sqrt()
}

/// SplitMix64's finaliser: a well-mixed 64-bit hash.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn lattice_value(seed: u64, x: i64, y: i64) -> f32 {
    let h = mix(seed ^ mix(x as u64 ^ mix(y as u64)));
    (h >> 40) as f32 / (1u64 << 24) as f32
}

/// Value noise in 0..1: smoothly interpolated random values on the integer lattice.
fn noise(seed: u64, x: f32, y: f32) -> f32 {
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let (sx, sy) = (fx * fx * (3.0 - 2.0 * fx), fy * fy * (3.0 - 2.0 * fy));
    let (ix, iy) = (x0 as i64, y0 as i64);
    let a = lattice_value(seed, ix, iy);
    let b = lattice_value(seed, ix + 1, iy);
    let c = lattice_value(seed, ix, iy + 1);
    let d = lattice_value(seed, ix + 1, iy + 1);
    let top = a + (b - a) * sx;
    let bottom = c + (d - c) * sx;
    top + (bottom - top) * sy
}

/// Three octaves of value noise, 0..1.
fn fbm(seed: u64, x: f32, y: f32) -> f32 {
    (noise(seed, x, y) * 4.0
        + noise(seed ^ 7, x * 2.0, y * 2.0) * 2.0
        + noise(seed ^ 11, x * 4.0, y * 4.0))
        / 7.0
}

/// Writes the data set to `out`, atomically: it is built in a hidden temp folder beside `out` and
/// renamed into place. An existing non-empty `out` is refused unless `force`, and even then only
/// replaced if an earlier `synth` made it (it holds [`MARKER`]): `--force` never deletes user data.
pub fn write_dataset(options: &SynthOptions, out: &Path, force: bool) -> Result<SynthSummary> {
    if options.size < 16 || options.size > 4096 {
        return Err(Error::usage(format!(
            "--size {}: must be between 16 and 4096 pixels",
            options.size
        )));
    }
    if options.train == 0 {
        return Err(Error::usage("--train must be at least 1"));
    }
    let replace = if out.exists() {
        if !out.is_dir() {
            return Err(Error::input(out, "exists and is not a directory"));
        }
        let empty = std::fs::read_dir(out)
            .map_err(|e| Error::io(out, e))?
            .next()
            .is_none();
        if !empty && !force {
            return Err(Error::input(
                out,
                "directory is not empty; pass --force to replace it",
            ));
        }
        if !empty && !out.join(MARKER).is_file() {
            return Err(Error::input(
                out,
                format!("not a data set made by `fomo-ad synth` (no {MARKER}); refusing to delete it even with --force"),
            ));
        }
        true
    } else {
        false
    };
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
    let temp = crate::atomic::staging_dir(&parent, ".fomo-ad-synth-")?;
    let summary = write_into(options, temp.path())?;
    if replace {
        // Move the old folder aside first so `out` is never missing a complete data set for long,
        // and put it back if the new one cannot take its place.
        let old = crate::atomic::staging_dir(&parent, ".fomo-ad-synth-old-")?;
        let aside = old.path().join("old");
        std::fs::rename(out, &aside).map_err(|e| Error::io(out, e))?;
        if let Err(e) = std::fs::rename(temp.path(), out) {
            let _ = std::fs::rename(&aside, out);
            return Err(Error::io(out, e));
        }
        drop(old); // deletes the previous data set
    } else {
        std::fs::rename(temp.path(), out).map_err(|e| Error::io(out, e))?;
    }
    // The temporary directory is now `out`: it must not be cleaned up.
    let _ = temp.keep();
    Ok(summary)
}

fn write_into(options: &SynthOptions, root: &Path) -> Result<SynthSummary> {
    let mut jobs: Vec<(Split, PathBuf, usize)> = Vec::new();
    let mut add = |split: Split, dir: PathBuf, count: usize| {
        jobs.extend((0..count).map(|i| (split, dir.clone(), i)));
    };
    add(Split::Train, root.join("train/good"), options.train);
    add(Split::TestGood, root.join("test/good"), options.test_good);
    for defect in DEFECTS {
        add(
            Split::TestDefect(defect),
            root.join("test").join(defect.name()),
            options.test_anomalous,
        );
    }
    let mut dirs: Vec<PathBuf> = jobs.iter().map(|j| j.1.clone()).collect();
    if options.test_anomalous > 0 {
        dirs.extend(
            DEFECTS
                .iter()
                .map(|d| root.join("ground_truth").join(d.name())),
        );
    }
    dirs.push(root.join("test/good"));
    for dir in &dirs {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let width = jobs
        .iter()
        .map(|j| j.2)
        .max()
        .unwrap_or(0)
        .to_string()
        .len()
        .max(3);
    let results: Vec<Result<bool>> = jobs
        .par_iter()
        .map(|(split, dir, index)| {
            let (image, mask) = render(options, *split, *index);
            let name = format!("{index:0width$}");
            let path = dir.join(format!("{name}.png"));
            image
                .save(&path)
                .map_err(|e| Error::input(&path, format!("cannot write PNG: {e}")))?;
            if let (Some(mask), Split::TestDefect(defect)) = (mask, split) {
                let path = root
                    .join("ground_truth")
                    .join(defect.name())
                    .join(format!("{name}_mask.png"));
                mask.save(&path)
                    .map_err(|e| Error::input(&path, format!("cannot write PNG: {e}")))?;
                return Ok(true);
            }
            Ok(false)
        })
        .collect();
    let mut masks = 0;
    for result in results {
        masks += result? as usize;
    }
    let marker = serde_json::json!({
        "generator": "fomo-ad synth",
        "version": crate::VERSION,
        "options": options,
        "layout": "mvtec",
        "defects": DEFECTS.iter().map(|d| d.name()).collect::<Vec<_>>(),
    });
    let path = root.join(MARKER);
    let text = serde_json::to_string_pretty(&marker).expect("JSON values always serialise") + "\n";
    std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
    Ok(SynthSummary {
        images: jobs.len(),
        masks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{open_dataset, Label};

    fn small() -> SynthOptions {
        SynthOptions {
            seed: 7,
            train: 6,
            test_good: 3,
            test_anomalous: 4,
            ..SynthOptions::default()
        }
    }

    fn files(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    out.push((
                        path.strip_prefix(root).unwrap().to_path_buf(),
                        std::fs::read(&path).unwrap(),
                    ));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn synth_is_deterministic_per_seed() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("c"),
        );
        write_dataset(&small(), &a, false).unwrap();
        write_dataset(&small(), &b, false).unwrap();
        write_dataset(&SynthOptions { seed: 8, ..small() }, &c, false).unwrap();
        let (fa, fb, fc) = (files(&a), files(&b), files(&c));
        assert_eq!(fa.len(), 6 + 3 + 3 * 4 + 3 * 4 + 1);
        assert!(fa == fb, "same seed, same bytes");
        let train0 = |f: &[(PathBuf, Vec<u8>)]| {
            f.iter()
                .find(|(p, _)| p.ends_with("train/good/000.png"))
                .unwrap()
                .1
                .clone()
        };
        assert_ne!(train0(&fa), train0(&fc), "another seed, another image");
        // No temp folders left beside the output.
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 3, "{left:?}");
    }

    #[test]
    fn synth_layout_opens_with_masks_for_every_defect() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("set");
        let summary = write_dataset(&small(), &out, false).unwrap();
        assert_eq!(
            summary,
            SynthSummary {
                images: 21,
                masks: 12
            }
        );
        let ds = open_dataset(&out).unwrap();
        assert_eq!(ds.train.len(), 6);
        assert_eq!(
            ds.test.iter().filter(|s| s.label == Label::Normal).count(),
            3
        );
        for defect in DEFECTS {
            let samples: Vec<_> = ds
                .test
                .iter()
                .filter(|s| s.defect.as_deref() == Some(defect.name()))
                .collect();
            assert_eq!(samples.len(), 4);
            for sample in samples {
                let mask = image::open(sample.mask.as_ref().expect("every defect has a mask"))
                    .unwrap()
                    .to_luma8();
                assert_eq!(mask.dimensions(), (96, 96));
                let on = mask.pixels().filter(|p| p.0[0] == 255).count();
                assert!(
                    mask.pixels().all(|p| p.0[0] == 0 || p.0[0] == 255),
                    "binary mask"
                );
                // Visible but not huge: more than a few pixels, well under a quarter of the image.
                assert!(
                    (20..96 * 96 / 8).contains(&on),
                    "{defect:?}: {on} mask pixels"
                );
                let img = image::open(&sample.path).unwrap().to_rgb8();
                assert_eq!(img.dimensions(), (96, 96));
            }
        }
    }

    #[test]
    fn synth_refuses_non_empty_dirs_and_force_replaces_only_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("user");
        std::fs::create_dir(&user).unwrap();
        std::fs::write(user.join("thesis.txt"), "precious").unwrap();
        let e = write_dataset(&small(), &user, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("user") && e.contains("--force"), "{e}");
        let e = write_dataset(&small(), &user, true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("refusing"), "{e}");
        assert!(user.join("thesis.txt").is_file());

        let out = dir.path().join("set");
        write_dataset(&small(), &out, false).unwrap();
        assert!(write_dataset(&small(), &out, false).is_err());
        let opts = SynthOptions {
            train: 2,
            ..small()
        };
        write_dataset(&opts, &out, true).unwrap();
        assert_eq!(open_dataset(&out).unwrap().train.len(), 2, "replaced");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "no temp folders left: {names:?}");
    }

    #[test]
    fn every_surface_renders_with_normal_variation() {
        for surface in [Surface::Woven, Surface::Metal, Surface::Wood] {
            let opts = SynthOptions { surface, ..small() };
            let (a, _) = render(&opts, Split::Train, 0);
            let (b, _) = render(&opts, Split::Train, 1);
            assert_ne!(a, b, "{surface:?}: normal images vary");
            let mean = |img: &RgbImage| {
                img.as_raw().iter().map(|&v| v as f64).sum::<f64>() / img.as_raw().len() as f64
            };
            assert!(
                (60.0..220.0).contains(&mean(&a)),
                "{surface:?}: mean {}",
                mean(&a)
            );
            let (_, mask) = render(&opts, Split::TestDefect(Defect::Insert), 0);
            assert!(mask.unwrap().pixels().any(|p| p.0[0] == 255));
        }
    }
}
