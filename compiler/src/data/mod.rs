//! Images and data sets: decoding and preprocessing an image into the backbone's input tensor,
//! discovering MVTec AD / Edge Impulse folder layouts, per-cell ground truth from masks, and the
//! synthetic inspection data set behind `fomo-ad synth`.

mod dataset;
pub mod synth;

use std::path::Path;

use image::imageops::{self, FilterType};
use image::{DynamicImage, ImageBuffer, Pixel};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ir::{Shape, Tensor};

pub use dataset::{load_all, load_all_pixels, open_dataset, Dataset, Label, Layout, Sample};

/// How an image whose size differs from the model input is brought to that size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Resize {
    /// Stretch the whole image to the target size (aspect ratio not kept).
    #[default]
    Squash,
    /// Center-crop to the target aspect ratio, then resize (nothing is distorted, edges are lost).
    Crop,
}

/// How a pixel byte becomes the backbone's input value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Scaling {
    /// 0..1 (x / 255): what Edge Impulse's FOMO-AD feeds MobileNetV2.
    #[default]
    Unit,
    /// 0..255, unchanged.
    Byte,
    /// -1..1 (x / 127.5 - 1): Keras' own MobileNetV2 preprocessing.
    Symmetric,
    /// ImageNet normalisation per channel, (x / 255 - mean) / std. A 1-channel input uses the
    /// luma-weighted (0.299, 0.587, 0.114) mean 0.458971 and std 0.225609 of the RGB constants.
    Imagenet,
}

const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
/// ITU-R BT.601 luma weights.
const LUMA: [f32; 3] = [0.299, 0.587, 0.114];

impl Scaling {
    /// Per-channel `(scale, offset)` with `value = byte * scale + offset`, the form generated code
    /// folds into its first layer. [`Scaling::scale`] uses exactly this arithmetic, so the reference
    /// and the generated code round identically.
    pub fn per_channel(&self, channels: usize) -> (Vec<f32>, Vec<f32>) {
        (0..channels)
            .map(|c| match self {
                Scaling::Unit => (1.0 / 255.0, 0.0),
                Scaling::Byte => (1.0, 0.0),
                Scaling::Symmetric => (1.0 / 127.5, -1.0),
                Scaling::Imagenet => {
                    let (mean, std) = if channels == 3 {
                        (IMAGENET_MEAN[c], IMAGENET_STD[c])
                    } else {
                        let dot = |v: [f32; 3]| v.iter().zip(LUMA).map(|(a, w)| a * w).sum();
                        (dot(IMAGENET_MEAN), dot(IMAGENET_STD))
                    };
                    (1.0 / (255.0 * std), -mean / std)
                }
            })
            .unzip()
    }

    /// The input value of `byte` in `channel` of a `channels`-channel image.
    pub fn scale(&self, channel: usize, channels: usize, byte: u8) -> f32 {
        let (scale, offset) = self.per_channel(channels);
        byte as f32 * scale[channel] + offset[channel]
    }
}

/// Everything that turns an image file into the backbone's input tensor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Preprocess {
    pub width: usize,
    pub height: usize,
    /// 1 (luma) or 3 (RGB).
    pub channels: usize,
    pub resize: Resize,
    pub scaling: Scaling,
}

impl Preprocess {
    /// Decodes `path` (PNG, JPEG, BMP or PNM, recognised by content), converts it to RGB or luma
    /// (ITU-R 601, rounded to u8), then resizes it bilinearly to `width x height`: interleaved HWC
    /// bytes. An unreadable, truncated or non-image file is an error naming `path`.
    pub fn load_pixels(&self, path: &Path) -> Result<Vec<u8>> {
        self.pixels_of(&decode(path)?)
    }

    /// [`Preprocess::load_pixels`] on a file already in memory; `path` only names it in messages.
    pub fn load_pixels_from_bytes(&self, path: &Path, bytes: &[u8]) -> Result<Vec<u8>> {
        self.pixels_of(&decode_bytes(path, bytes)?)
    }

    fn pixels_of(&self, image: &DynamicImage) -> Result<Vec<u8>> {
        let (w, h) = (self.width as u32, self.height as u32);
        Ok(match self.channels {
            1 => self.fit(&to_luma(image), w, h).into_raw(),
            3 => self.fit(&image.to_rgb8(), w, h).into_raw(),
            n => {
                return Err(Error::usage(format!(
                    "{n} input channels: only 1 (luma) or 3 (RGB) are supported"
                )));
            }
        })
    }

    /// Scales interleaved HWC bytes (as from [`Preprocess::load_pixels`]) into a CHW tensor.
    pub fn pixels_to_tensor(&self, pixels: &[u8]) -> Tensor {
        let shape = Shape::new(self.channels, self.height, self.width);
        assert_eq!(
            pixels.len(),
            shape.len(),
            "pixel buffer does not match the preprocess size"
        );
        let (scale, offset) = self.scaling.per_channel(self.channels);
        let mut data = vec![0.0; pixels.len()];
        let plane = self.width * self.height;
        for (i, px) in pixels.chunks_exact(self.channels).enumerate() {
            for (c, &byte) in px.iter().enumerate() {
                data[c * plane + i] = byte as f32 * scale[c] + offset[c];
            }
        }
        Tensor::from_vec(shape, data)
    }

    /// [`Preprocess::load_pixels`] then [`Preprocess::pixels_to_tensor`].
    pub fn load(&self, path: &Path) -> Result<Tensor> {
        Ok(self.pixels_to_tensor(&self.load_pixels(path)?))
    }

    /// The region of a `src_w x src_h` image that [`Resize`] keeps: `(x, y, w, h)`.
    pub fn source_region(&self, src_w: u32, src_h: u32) -> (u32, u32, u32, u32) {
        match self.resize {
            Resize::Squash => (0, 0, src_w, src_h),
            Resize::Crop => {
                let (tw, th) = (self.width as u64, self.height as u64);
                let (sw, sh) = (src_w as u64, src_h as u64);
                if sw * th > sh * tw {
                    // Wider than the target: keep the full height, crop the sides.
                    let w = ((sh * tw + th / 2) / th).clamp(1, sw) as u32;
                    ((src_w - w) / 2, 0, w, src_h)
                } else {
                    let h = ((sw * th + tw / 2) / tw).clamp(1, sh) as u32;
                    (0, (src_h - h) / 2, src_w, h)
                }
            }
        }
    }

    fn fit<P>(
        &self,
        image: &ImageBuffer<P, Vec<P::Subpixel>>,
        w: u32,
        h: u32,
    ) -> ImageBuffer<P, Vec<P::Subpixel>>
    where
        P: Pixel + 'static,
        P::Subpixel: 'static,
    {
        let (x, y, cw, ch) = self.source_region(image.width(), image.height());
        let cropped = imageops::crop_imm(image, x, y, cw, ch);
        imageops::resize(&*cropped, w, h, FilterType::Triangle)
    }
}

/// Decompression-bomb limits. A header states an image's size before any pixel is read, so a
/// file of a few hundred bytes can claim 13000x13000 pixels (a fuzzer found one: 16 s and 1 GB to
/// score it). Refused from the header, before decoding:
/// - more than [`MAX_IMAGE_PIXELS`] (67 M, e.g. 8192x8192; Pillow warns at 89 M), or a side over
///   [`MAX_IMAGE_SIDE`];
/// - more than [`MAX_PIXELS_PER_BYTE`] pixels per byte of file. No real PNG, JPEG, BMP or PNM
///   comes near: deflate compresses at most ~1032:1, so even a 1-bit PNG stays under ~8300 pixels
///   per byte, and a JPEG spends at least a bit per 8x8 block (512 pixels per byte).
pub const MAX_IMAGE_PIXELS: u64 = 1 << 26;
pub const MAX_IMAGE_SIDE: u32 = 16384;
pub const MAX_PIXELS_PER_BYTE: u64 = 16384;
/// The decoder's own allocation limit (a 67 M-pixel RGBA image is 268 MB).
const MAX_DECODE_BYTES: u64 = 512 << 20;

fn decode_limits() -> image::Limits {
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    limits
}

/// A decoder for `path` whose format is recognised by content (the extension is the fallback),
/// with the limits checked against the header; `file_len` is the file's size in bytes.
fn image_decoder<'a, R: std::io::BufRead + std::io::Seek + 'a>(
    path: &Path,
    reader: image::ImageReader<R>,
    file_len: u64,
) -> Result<impl image::ImageDecoder + 'a> {
    let mut reader = reader
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    if reader.format().is_none() {
        if let Ok(format) = image::ImageFormat::from_path(path) {
            reader.set_format(format);
        }
    }
    reader.limits(decode_limits());
    let decoder = reader.into_decoder().map_err(|e| cannot_decode(path, e))?;
    let (w, h) = image::ImageDecoder::dimensions(&decoder);
    if w == 0 || h == 0 {
        // A PNM header may say 0 (the image fuzzer found one); cropping it would divide by zero.
        return Err(Error::input(
            path,
            format!("image is {w}x{h}: it has no pixels"),
        ));
    }
    let pixels = u64::from(w) * u64::from(h);
    if pixels > MAX_IMAGE_PIXELS {
        return Err(Error::input(
            path,
            format!("image is {w}x{h}, more than the {MAX_IMAGE_PIXELS} pixels fomo-ad decodes"),
        ));
    }
    // `ImageReader::decode` reserves this against the limits; decoding from the decoder must too.
    if image::ImageDecoder::total_bytes(&decoder) > MAX_DECODE_BYTES {
        return Err(Error::input(
            path,
            format!("image is {w}x{h}, more than {MAX_DECODE_BYTES} bytes decoded"),
        ));
    }
    if pixels > file_len.max(1).saturating_mul(MAX_PIXELS_PER_BYTE) {
        return Err(Error::input(
            path,
            format!("image header claims {w}x{h} pixels, far more than a {file_len}-byte file can hold (truncated or forged)"),
        ));
    }
    Ok(decoder)
}

fn cannot_decode(path: &Path, e: image::ImageError) -> Error {
    Error::input(path, format!("cannot decode image: {e}"))
}

fn open_decoder(path: &Path) -> Result<impl image::ImageDecoder> {
    let file_len = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    let reader = image::ImageReader::open(path).map_err(|e| Error::io(path, e))?;
    image_decoder(path, reader, file_len)
}

// The decoders are third-party code fed untrusted bytes, and the image fuzzer found one that
// panics (zune-jpeg 0.5.15 unwraps a None in its AVX2 IDCT on a malformed JPEG): a panic in them
// is an error naming the file, as in tract.
const DECODER: &str = "the image decoder";

fn decode(path: &Path) -> Result<DynamicImage> {
    crate::error::catch_panic(path, DECODER, || {
        DynamicImage::from_decoder(open_decoder(path)?).map_err(|e| cannot_decode(path, e))
    })
}

fn decode_bytes(path: &Path, bytes: &[u8]) -> Result<DynamicImage> {
    crate::error::catch_panic(path, DECODER, || {
        let reader = image::ImageReader::new(std::io::Cursor::new(bytes));
        let decoder = image_decoder(path, reader, bytes.len() as u64)?;
        DynamicImage::from_decoder(decoder).map_err(|e| cannot_decode(path, e))
    })
}

/// An image's width, height and channel count, read from its header only (with the limits of
/// decoding checked).
pub fn image_header(path: &Path) -> Result<(u32, u32, u8)> {
    crate::error::catch_panic(path, DECODER, || {
        let decoder = open_decoder(path)?;
        let (w, h) = image::ImageDecoder::dimensions(&decoder);
        Ok((
            w,
            h,
            image::ImageDecoder::color_type(&decoder).channel_count(),
        ))
    })
}

/// ITU-R 601 luma of an RGB byte triple, rounded to the nearest byte.
pub fn luma(r: u8, g: u8, b: u8) -> u8 {
    (LUMA[0] * r as f32 + LUMA[1] * g as f32 + LUMA[2] * b as f32)
        .round()
        .clamp(0.0, 255.0) as u8
}

/// Our own luma (not the image crate's, whose weights differ), so training, testing and the
/// generated code agree on what a grayscale pixel is.
fn to_luma(image: &DynamicImage) -> image::GrayImage {
    let rgb = image.to_rgb8();
    image::GrayImage::from_fn(rgb.width(), rgb.height(), |x, y| {
        let [r, g, b] = rgb.get_pixel(x, y).0;
        image::Luma([luma(r, g, b)])
    })
}

/// Per-cell ground truth from a mask: a cell is anomalous if any non-zero mask pixel falls in it.
///
/// The mask goes through the same geometry as its image ([`Resize`] crop, then equal division of
/// the kept region into `rows x cols` cells). Cells are tested at the mask's own resolution rather
/// than after a nearest-neighbour downscale, which is the same mapping but cannot drop a thin
/// defect (a 1 px scratch in a 1024 px mask) that falls between sampled pixels.
pub fn mask_cells(mask: &Path, pre: &Preprocess, rows: usize, cols: usize) -> Result<Vec<bool>> {
    let image = decode(mask)?.to_luma8();
    let (x0, y0, w, h) = pre.source_region(image.width(), image.height());
    let (w, h) = (w as usize, h as usize);
    if rows == 0 || cols == 0 || rows > h || cols > w {
        return Err(Error::input(
            mask,
            format!("cannot divide a {w}x{h} mask into {rows}x{cols} cells"),
        ));
    }
    let mut cells = vec![false; rows * cols];
    for y in 0..h {
        let row = y * rows / h;
        for x in 0..w {
            if image.get_pixel(x0 + x as u32, y0 + y as u32).0[0] != 0 {
                cells[row * cols + x * cols / w] = true;
            }
        }
    }
    Ok(cells)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pre(w: usize, h: usize, channels: usize, resize: Resize, scaling: Scaling) -> Preprocess {
        Preprocess {
            width: w,
            height: h,
            channels,
            resize,
            scaling,
        }
    }

    #[test]
    fn scaling_values() {
        let close = |a: f32, b: f32| (a - b).abs() < 1e-5;
        assert!(close(Scaling::Unit.scale(0, 3, 255), 1.0));
        assert!(close(Scaling::Unit.scale(2, 3, 51), 0.2));
        assert_eq!(Scaling::Byte.scale(1, 3, 200), 200.0);
        assert!(close(Scaling::Symmetric.scale(0, 1, 0), -1.0));
        assert!(close(Scaling::Symmetric.scale(0, 1, 255), 1.0));
        // ImageNet: channel 1 of 255 = (1 - 0.456) / 0.224.
        assert!(close(
            Scaling::Imagenet.scale(1, 3, 255),
            (1.0 - 0.456) / 0.224
        ));
        assert!(close(Scaling::Imagenet.scale(2, 3, 0), -0.406 / 0.225));
        // One channel: luma-weighted constants.
        assert!(close(
            Scaling::Imagenet.scale(0, 1, 0),
            -0.458971 / 0.225609
        ));
        let (scale, offset) = Scaling::Imagenet.per_channel(3);
        assert_eq!((scale.len(), offset.len()), (3, 3));
        assert!(scale[0] != scale[1], "per-channel constants must differ");
    }

    #[test]
    fn luma_uses_itu_601_weights_and_rounds() {
        assert_eq!(luma(255, 0, 0), 76); // 76.245
        assert_eq!(luma(0, 255, 0), 150); // 149.685
        assert_eq!(luma(0, 0, 255), 29); // 29.07
        assert_eq!(luma(255, 255, 255), 255);
        assert_eq!(luma(10, 20, 30), 18); // 2.99 + 11.74 + 3.42 = 18.15
    }

    fn write_png(path: &Path, w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) {
        image::RgbImage::from_fn(w, h, |x, y| image::Rgb(f(x, y)))
            .save(path)
            .unwrap();
    }

    #[test]
    fn load_gives_requested_size_for_both_resize_modes_and_luma() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wide.png");
        // Left third red, middle green, right third blue.
        write_png(&path, 150, 50, |x, _| match x / 50 {
            0 => [255, 0, 0],
            1 => [0, 255, 0],
            _ => [0, 0, 255],
        });
        for resize in [Resize::Squash, Resize::Crop] {
            for (w, h) in [(32, 24), (24, 24), (20, 40)] {
                let p = pre(w, h, 3, resize, Scaling::Byte);
                assert_eq!(p.load_pixels(&path).unwrap().len(), w * h * 3);
                assert_eq!(p.load(&path).unwrap().shape, Shape::new(3, h, w));
            }
            let px = pre(24, 24, 3, resize, Scaling::Byte)
                .load_pixels(&path)
                .unwrap();
            let left = &px[12 * 24 * 3..12 * 24 * 3 + 3];
            match resize {
                // Squash keeps the red third at the left edge.
                Resize::Squash => assert_eq!(left, [255, 0, 0]),
                // Crop to square keeps the middle 50 columns of 150: all green.
                Resize::Crop => assert!(px.chunks(3).all(|p| p == [0, 255, 0])),
            }
        }
        let gray = pre(16, 16, 1, Resize::Squash, Scaling::Byte);
        let px = gray.load_pixels(&path).unwrap();
        assert_eq!(px.len(), 256);
        assert_eq!(px[8 * 16], 76, "luma of pure red");
        assert_eq!(px[8 * 16 + 15], 29, "luma of pure blue");
    }

    #[test]
    fn pixels_to_tensor_is_chw_and_scaled() {
        let p = pre(2, 1, 3, Resize::Squash, Scaling::Unit);
        let t = p.pixels_to_tensor(&[255, 0, 51, 0, 255, 0]);
        assert_eq!(t.shape, Shape::new(3, 1, 2));
        let expect = [1.0, 0.0, 0.0, 1.0, 0.2, 0.0];
        for (a, b) in t.data.iter().zip(expect) {
            assert!((a - b).abs() < 1e-6, "{:?}", t.data);
        }
    }

    #[test]
    fn load_rejects_non_image_and_truncated_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = pre(8, 8, 3, Resize::Squash, Scaling::Unit);
        let text = dir.path().join("notes.png");
        std::fs::write(&text, "not an image").unwrap();
        let err = p.load(&text).unwrap_err().to_string();
        assert!(err.contains("notes.png"), "{err}");
        let good = dir.path().join("good.png");
        write_png(&good, 40, 40, |x, y| [x as u8, y as u8, 7]);
        let bytes = std::fs::read(&good).unwrap();
        let cut = dir.path().join("cut.png");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let err = p.load(&cut).unwrap_err().to_string();
        assert!(err.contains("cut.png") && !err.contains('\n'), "{err}");
        let err = p
            .load(&dir.path().join("missing.png"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.png"), "{err}");
    }

    #[test]
    fn headers_claiming_more_pixels_than_the_file_can_hold_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = pre(8, 8, 1, Resize::Squash, Scaling::Unit);
        // A real, highly compressed image (2048x2048 black PNG, ~1000 pixels per byte) loads.
        let black = dir.path().join("black.png");
        let mut png = Vec::new();
        image::GrayImage::new(2048, 2048)
            .write_with_encoder(image::codecs::png::PngEncoder::new_with_quality(
                &mut png,
                image::codecs::png::CompressionType::Best,
                image::codecs::png::FilterType::NoFilter,
            ))
            .unwrap();
        std::fs::write(&black, &png).unwrap();
        assert!(p.load(&black).is_ok(), "{} bytes", png.len());
        // A 2x2 BMP whose header is patched (width and height at bytes 18 and 22) to claim
        // millions of pixels: refused from the header, before anything is allocated.
        let mut bmp = std::io::Cursor::new(Vec::new());
        image::RgbImage::new(2, 2)
            .write_to(&mut bmp, image::ImageFormat::Bmp)
            .unwrap();
        let bmp = bmp.into_inner();
        for (side, needle) in [(6000i32, "can hold"), (10000, "pixels fomo-ad decodes")] {
            let mut forged = bmp.clone();
            forged[18..22].copy_from_slice(&side.to_le_bytes());
            forged[22..26].copy_from_slice(&side.to_le_bytes());
            let path = dir.path().join(format!("forged{side}.bmp"));
            std::fs::write(&path, &forged).unwrap();
            let err = p.load(&path).unwrap_err().to_string();
            assert!(
                err.contains(&format!("forged{side}.bmp")) && err.contains(needle),
                "{err}"
            );
            let err = image_header(&path).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn mask_cells_marks_cells_touching_the_defect() {
        let dir = tempfile::tempdir().unwrap();
        let mask = dir.path().join("m.png");
        // 96x96 mask, a 1 px dot at (50, 17) -> cell (row 2, col 6) on a 12x12 grid.
        image::GrayImage::from_fn(96, 96, |x, y| {
            image::Luma([if (x, y) == (50, 17) { 255 } else { 0 }])
        })
        .save(&mask)
        .unwrap();
        let p = pre(96, 96, 3, Resize::Squash, Scaling::Unit);
        let cells = mask_cells(&mask, &p, 12, 12).unwrap();
        let hits: Vec<usize> = (0..144).filter(|&i| cells[i]).collect();
        assert_eq!(hits, vec![2 * 12 + 6]);
        // A 192-wide mask cropped to square drops 48 px on each side: x = 50 -> col 0.
        let wide = dir.path().join("w.png");
        image::GrayImage::from_fn(192, 96, |x, y| {
            image::Luma([if (x, y) == (50, 17) { 255 } else { 0 }])
        })
        .save(&wide)
        .unwrap();
        let crop = pre(96, 96, 3, Resize::Crop, Scaling::Unit);
        let cells = mask_cells(&wide, &crop, 12, 12).unwrap();
        assert_eq!(
            (0..144).filter(|&i| cells[i]).collect::<Vec<_>>(),
            vec![2 * 12]
        );
        let dot_outside = dir.path().join("o.png");
        image::GrayImage::from_fn(192, 96, |x, _| image::Luma([if x < 10 { 255 } else { 0 }]))
            .save(&dot_outside)
            .unwrap();
        assert!(!mask_cells(&dot_outside, &crop, 12, 12)
            .unwrap()
            .contains(&true));
    }
}
