//! The per-cell heatmap, drawn like Edge Impulse's model-testing view: the (preprocessed) image
//! under its grid, each cell tinted blue -> red by score, cells at or over the threshold outlined
//! in white.

use std::path::Path;

use image::{Rgb, RgbImage};

use crate::error::{Error, Result};

/// Small inputs are enlarged (nearest neighbour, by an integer factor) to at least this side.
const MIN_SIDE: usize = 384;
/// Share of the score colour in each tinted pixel.
const TINT: f32 = 0.5;

/// Writes the heatmap PNG to `out`. `pixels_hwc` is the `width x height x channels` image (1 or 3
/// channels) the model saw; `cells` are `rows x cols` scores, row-major, mapped to the image by
/// equal division. Colours run blue (0) -> cyan -> green -> yellow -> red (`scale_max` and above);
/// a NaN score is drawn red. The output is upscaled by `ceil(384 / max(width, height))`.
#[allow(clippy::too_many_arguments)]
pub fn write_heatmap(
    pixels_hwc: &[u8],
    width: usize,
    height: usize,
    channels: usize,
    cells: &[f32],
    rows: usize,
    cols: usize,
    threshold: f32,
    scale_max: f32,
    out: &Path,
) -> Result<()> {
    if channels != 1 && channels != 3 {
        return Err(Error::input(
            out,
            format!("heatmap of a {channels}-channel image: need 1 or 3"),
        ));
    }
    if pixels_hwc.len() != width * height * channels || width == 0 || height == 0 {
        return Err(Error::input(
            out,
            format!(
                "heatmap: {} pixel bytes do not make a {width}x{height}x{channels} image",
                pixels_hwc.len()
            ),
        ));
    }
    if cells.len() != rows * cols || rows == 0 || cols == 0 || rows > height || cols > width {
        return Err(Error::input(
            out,
            format!(
                "heatmap: {} scores do not make a {rows}x{cols} grid over {width}x{height}",
                cells.len()
            ),
        ));
    }
    let factor = MIN_SIDE.div_ceil(width.max(height)).max(1);
    let (w, h) = (width * factor, height * factor);
    let mut image = RgbImage::new(w as u32, h as u32);
    for y in 0..h {
        let (sy, row) = (y / factor, y * rows / h);
        for x in 0..w {
            let (sx, col) = (x / factor, x * cols / w);
            let i = (sy * width + sx) * channels;
            let base = if channels == 3 {
                [pixels_hwc[i], pixels_hwc[i + 1], pixels_hwc[i + 2]]
            } else {
                [pixels_hwc[i]; 3]
            };
            let tint = colour(cells[row * cols + col], scale_max);
            image.put_pixel(
                x as u32,
                y as u32,
                Rgb(std::array::from_fn(|c| {
                    (base[c] as f32 * (1.0 - TINT) + tint[c] * TINT).round() as u8
                })),
            );
        }
    }
    // Outline the flagged cells; the border is 2 px at the output scale (1 px if cells are tiny).
    let border = if factor >= 2 { 2 } else { 1 };
    for row in 0..rows {
        for col in 0..cols {
            if cells[row * cols + col] < threshold {
                continue;
            }
            let (y0, y1) = (row * h / rows, (row + 1) * h / rows);
            let (x0, x1) = (col * w / cols, (col + 1) * w / cols);
            for y in y0..y1 {
                for x in x0..x1 {
                    let edge =
                        y < y0 + border || y + border >= y1 || x < x0 + border || x + border >= x1;
                    if edge {
                        image.put_pixel(x as u32, y as u32, Rgb([255, 255, 255]));
                    }
                }
            }
        }
    }
    image
        .save_with_format(out, image::ImageFormat::Png)
        .map_err(|e| Error::input(out, format!("cannot write heatmap PNG: {e}")))
}

/// Blue -> cyan -> green -> yellow -> red for `score / scale_max` in 0..1.
fn colour(score: f32, scale_max: f32) -> [f32; 3] {
    const STOPS: [[f32; 3]; 5] = [
        [0.0, 0.0, 255.0],
        [0.0, 255.0, 255.0],
        [0.0, 255.0, 0.0],
        [255.0, 255.0, 0.0],
        [255.0, 0.0, 0.0],
    ];
    let t = if score.is_nan() {
        1.0
    } else if scale_max > 0.0 {
        (score / scale_max).clamp(0.0, 1.0)
    } else if score > 0.0 {
        1.0
    } else {
        0.0
    };
    let pos = t * (STOPS.len() - 1) as f32;
    let i = (pos.floor() as usize).min(STOPS.len() - 2);
    let f = pos - i as f32;
    std::array::from_fn(|c| STOPS[i][c] + (STOPS[i + 1][c] - STOPS[i][c]) * f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heatmap_png_size_tint_and_white_borders() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("heat.png");
        let (w, h) = (96, 96);
        let pixels = vec![128u8; w * h * 3];
        let mut cells = vec![0.0f32; 144];
        cells[3 * 12 + 5] = 10.0; // over the threshold
        cells[7 * 12 + 2] = 4.0; // under it
        write_heatmap(&pixels, w, h, 3, &cells, 12, 12, 5.0, 10.0, &out).unwrap();
        let img = image::open(&out).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (384, 384));
        let white = Rgb([255, 255, 255]);
        // Cell (3, 5) spans x 160..192, y 96..128 at 4x: all its border pixels are white.
        for i in 0..32 {
            for (x, y) in [
                (160 + i, 96),
                (160 + i, 127),
                (160, 96 + i),
                (191, 96 + i),
                (161 + i.min(30), 97),
            ] {
                assert_eq!(*img.get_pixel(x, y), white, "({x}, {y})");
            }
        }
        // Its inside is grey blended with red.
        assert_eq!(*img.get_pixel(176, 112), Rgb([192, 64, 64]));
        // The under-threshold cell is not outlined and is tinted (4/10 is between cyan and green).
        assert_ne!(*img.get_pixel(2 * 32, 7 * 32), white);
        assert_eq!(
            *img.get_pixel(2 * 32 + 16, 7 * 32 + 16),
            Rgb([64, 192, 115])
        );
        // Score 0 is blue.
        assert_eq!(*img.get_pixel(0, 0), Rgb([64, 64, 192]));
        assert_eq!(
            img.pixels().filter(|&&p| p == white).count(),
            32 * 32 - 28 * 28
        );
    }

    #[test]
    fn heatmap_grayscale_and_bad_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("g.png");
        let pixels: Vec<u8> = (0..160 * 120).map(|i| (i % 251) as u8).collect();
        write_heatmap(&pixels, 160, 120, 1, &[1.0; 300], 15, 20, 2.0, 1.0, &out).unwrap();
        let img = image::open(&out).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (480, 360));
        let e =
            write_heatmap(&pixels, 160, 120, 3, &[1.0; 300], 15, 20, 2.0, 1.0, &out).unwrap_err();
        assert!(e.to_string().contains("g.png"));
        let e =
            write_heatmap(&pixels, 160, 120, 1, &[1.0; 299], 15, 20, 2.0, 1.0, &out).unwrap_err();
        assert!(e.to_string().contains("15x20"));
    }
}
