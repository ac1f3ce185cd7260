//! Data set discovery: MVTec AD and Edge Impulse folder layouts, in a deterministic (sorted) order.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::Preprocess;
use crate::error::{Error, Result};
use crate::ir::Tensor;

/// A test sample's ground truth, spelled as Edge Impulse labels it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Label {
    #[serde(rename = "no anomaly")]
    Normal,
    #[serde(rename = "anomaly")]
    Anomaly,
}

impl Label {
    pub fn is_anomaly(self) -> bool {
        self == Label::Anomaly
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub path: PathBuf,
    pub label: Label,
    /// The defect type (MVTec's `test/<defect>/` folder name); `None` for normal samples and
    /// for Edge Impulse's unnamed `anomaly` folder.
    pub defect: Option<String>,
    /// Pixel mask of the defect (MVTec's `ground_truth/<defect>/<name>_mask.png`), if present.
    pub mask: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// `train/good/`, `test/good/`, `test/<defect>/`, optional `ground_truth/<defect>/<name>_mask.png`.
    MvTec,
    /// `train/` holding images directly, `test/no anomaly/`, `test/anomaly/`.
    EdgeImpulse,
}

#[derive(Clone, Debug)]
pub struct Dataset {
    pub root: PathBuf,
    pub layout: Layout,
    /// Normal images only (label [`Label::Normal`]).
    pub train: Vec<Sample>,
    /// Labelled test images; empty when the data set has no `test/` folder.
    pub test: Vec<Sample>,
}

impl Dataset {
    /// Errors unless the data set has a labelled test set (for `test` / threshold selection).
    pub fn require_test(&self) -> Result<&[Sample]> {
        if self.test.is_empty() {
            let expected = match self.layout {
                Layout::MvTec => "test/good/ and test/<defect>/",
                Layout::EdgeImpulse => "test/no anomaly/ and test/anomaly/",
            };
            return Err(Error::input(
                &self.root,
                format!("no labelled test images: expected {expected}"),
            ));
        }
        Ok(&self.test)
    }
}

const IMAGE_EXTENSIONS: [&str; 8] = ["png", "jpg", "jpeg", "bmp", "pnm", "pbm", "pgm", "ppm"];

/// Finds the layout under `root` and lists its samples, sorted by path. Folder structure, file
/// names and image headers are checked here (every image must share the first training image's
/// size and channel count; every mask must have its image's size); pixels are decoded when
/// loaded. A bad file is reported by path.
pub fn open_dataset(root: &Path) -> Result<Dataset> {
    if !root.is_dir() {
        let why = if root.exists() {
            "is not a directory"
        } else {
            "does not exist"
        };
        return Err(Error::input(root, format!("data set folder {why}")));
    }
    let train_dir = root.join("train");
    let test_dir = root.join("test");
    if !train_dir.is_dir() {
        return Err(Error::input(
            root,
            "unknown data set layout: expected train/good/ + test/<defect>/ (MVTec AD) or train/ + test/no anomaly/ + test/anomaly/ (Edge Impulse)",
        ));
    }
    let layout = if train_dir.join("good").is_dir() {
        Layout::MvTec
    } else if subdirs(&train_dir)?.is_empty() {
        Layout::EdgeImpulse
    } else {
        return Err(Error::input(
            &train_dir,
            "unknown data set layout: expected train/good/ (MVTec AD) or images directly in train/ (Edge Impulse)",
        ));
    };
    let train_images = match layout {
        Layout::MvTec => {
            let extra: Vec<String> = subdirs(&train_dir)?
                .into_iter()
                .filter(|d| d != "good")
                .collect();
            if let Some(name) = extra.first() {
                return Err(Error::input(
                    train_dir.join(name),
                    "training images must be normal: MVTec AD expects only train/good/",
                ));
            }
            images_in(&train_dir.join("good"))?
        }
        Layout::EdgeImpulse => images_in(&train_dir)?,
    };
    let train_images_dir = match layout {
        Layout::MvTec => train_dir.join("good"),
        Layout::EdgeImpulse => train_dir.clone(),
    };
    if train_images.is_empty() {
        return Err(Error::input(train_images_dir, "no training images"));
    }
    let train: Vec<Sample> = train_images
        .into_iter()
        .map(|path| Sample {
            path,
            label: Label::Normal,
            defect: None,
            mask: None,
        })
        .collect();
    let test = if test_dir.is_dir() {
        match layout {
            Layout::MvTec => mvtec_test(root, &test_dir)?,
            Layout::EdgeImpulse => edge_impulse_test(&test_dir)?,
        }
    } else {
        Vec::new()
    };
    check_uniform_images(&train, &test)?;
    Ok(Dataset {
        root: root.to_path_buf(),
        layout,
        train,
        test,
    })
}

/// Every image of a data set must have the size and channel count of the first training image:
/// the model has one input, and a stray thumbnail, mask or grayscale shot among colour images is
/// a mistake that resizing would hide. Reads headers only; an unreadable image fails here.
fn check_uniform_images(train: &[Sample], test: &[Sample]) -> Result<()> {
    let describe = |(w, h, c): (u32, u32, u8)| {
        let kind = match c {
            1 => "gray",
            2 => "gray+alpha",
            3 => "RGB",
            4 => "RGBA",
            _ => "?",
        };
        format!("{w}x{h} with {c} channel(s) ({kind})")
    };
    let Some(first) = train.first() else {
        return Ok(());
    };
    let reference = super::image_header(&first.path)?;
    for sample in train.iter().chain(test).skip(1) {
        let header = super::image_header(&sample.path)?;
        if header != reference {
            return Err(Error::input(
                &sample.path,
                format!(
                    "image is {} but {} is {}; a data set's images must share one size and channel count",
                    describe(header),
                    first.path.display(),
                    describe(reference)
                ),
            ));
        }
    }
    Ok(())
}

fn mvtec_test(root: &Path, test_dir: &Path) -> Result<Vec<Sample>> {
    let folders = subdirs(test_dir)?;
    if folders.is_empty() {
        return Err(unlabelled(test_dir, "test/good/ and test/<defect>/"));
    }
    let loose = images_in(test_dir)?;
    if let Some(file) = loose.first() {
        return Err(Error::input(
            file,
            "test image has no label: put it in test/good/ or test/<defect>/",
        ));
    }
    let mut samples = Vec::new();
    for folder in folders {
        let normal = folder == "good";
        for path in images_in(&test_dir.join(&folder))? {
            let mask = if normal {
                None
            } else {
                let stem = path.file_stem().unwrap_or_default().to_string_lossy();
                let mask = root
                    .join("ground_truth")
                    .join(&folder)
                    .join(format!("{stem}_mask.png"));
                if mask.is_file() {
                    check_mask_size(&mask, &path)?;
                    Some(mask)
                } else {
                    None
                }
            };
            samples.push(Sample {
                path,
                label: if normal {
                    Label::Normal
                } else {
                    Label::Anomaly
                },
                defect: (!normal).then(|| folder.clone()),
                mask,
            });
        }
    }
    samples.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(samples)
}

fn edge_impulse_test(test_dir: &Path) -> Result<Vec<Sample>> {
    let folders = subdirs(test_dir)?;
    if folders.is_empty() {
        return Err(unlabelled(test_dir, "test/no anomaly/ and test/anomaly/"));
    }
    if let Some(other) = folders
        .iter()
        .find(|f| *f != "no anomaly" && *f != "anomaly")
    {
        return Err(Error::input(
            test_dir.join(other),
            "unknown label folder: Edge Impulse test labels are `no anomaly` and `anomaly`",
        ));
    }
    if let Some(file) = images_in(test_dir)?.first() {
        return Err(Error::input(
            file,
            "test image has no label: put it in test/no anomaly/ or test/anomaly/",
        ));
    }
    let mut samples = Vec::new();
    for folder in folders {
        let label = if folder == "anomaly" {
            Label::Anomaly
        } else {
            Label::Normal
        };
        for path in images_in(&test_dir.join(&folder))? {
            samples.push(Sample {
                path,
                label,
                defect: None,
                mask: None,
            });
        }
    }
    samples.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(samples)
}

fn unlabelled(test_dir: &Path, expected: &str) -> Error {
    Error::input(
        test_dir,
        format!("test folder has no label folders: expected {expected}"),
    )
}

fn check_mask_size(mask: &Path, image: &Path) -> Result<()> {
    let dims = |p: &Path| {
        image::image_dimensions(p)
            .map_err(|e| Error::input(p, format!("cannot read image size: {e}")))
    };
    let (m, i) = (dims(mask)?, dims(image)?);
    if m != i {
        return Err(Error::input(
            mask,
            format!(
                "mask is {}x{} but its image {} is {}x{}",
                m.0,
                m.1,
                image.display(),
                i.0,
                i.1
            ),
        ));
    }
    Ok(())
}

fn entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if !hidden {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

/// Names of the (non-hidden) folders in `dir`, sorted.
fn subdirs(dir: &Path) -> Result<Vec<String>> {
    Ok(entries(dir)?
        .into_iter()
        .filter(|p| p.is_dir())
        .map(|p| {
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect())
}

/// Image files directly in `dir`, sorted; any other non-hidden file is an error naming it.
fn images_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut images = Vec::new();
    for path in entries(dir)? {
        if path.is_dir() {
            continue;
        }
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        if !IMAGE_EXTENSIONS.contains(&ext.as_str()) {
            return Err(Error::input(
                &path,
                "not an image file (expected .png, .jpg, .jpeg, .bmp or .pnm/.pbm/.pgm/.ppm)",
            ));
        }
        images.push(path);
    }
    Ok(images)
}

/// Loads samples' tensors in parallel, in `samples` order; on failure reports the first failing
/// sample in that order (not whichever thread failed first), so the error is deterministic.
pub fn load_all(pre: &Preprocess, samples: &[Sample]) -> Result<Vec<Tensor>> {
    let results: Vec<Result<Tensor>> = samples.par_iter().map(|s| pre.load(&s.path)).collect();
    results.into_iter().collect()
}

/// [`load_all`] for the preprocessed HWC bytes (heatmaps draw on these).
pub fn load_all_pixels(pre: &Preprocess, samples: &[Sample]) -> Result<Vec<Vec<u8>>> {
    let results: Vec<Result<Vec<u8>>> = samples
        .par_iter()
        .map(|s| pre.load_pixels(&s.path))
        .collect();
    results.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Resize, Scaling};

    fn png(path: &Path, w: u32, h: u32) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 9]))
            .save(path)
            .unwrap();
    }

    fn mask(path: &Path, w: u32, h: u32) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        image::GrayImage::from_fn(w, h, |x, _| image::Luma([if x < 3 { 255 } else { 0 }]))
            .save(path)
            .unwrap();
    }

    fn mvtec(root: &Path) {
        for name in ["b.png", "a.png", "c.jpg"] {
            png(&root.join("train/good").join(name), 16, 16);
        }
        std::fs::write(root.join("train/good/.DS_Store"), "junk").unwrap();
        png(&root.join("test/good/000.png"), 16, 16);
        png(&root.join("test/scratch/000.png"), 16, 16);
        png(&root.join("test/scratch/001.png"), 16, 16);
        png(&root.join("test/spot/000.png"), 16, 16);
        mask(&root.join("ground_truth/scratch/000_mask.png"), 16, 16);
        mask(&root.join("ground_truth/spot/000_mask.png"), 16, 16);
    }

    fn err(root: &Path) -> String {
        open_dataset(root).unwrap_err().to_string()
    }

    #[test]
    fn discovers_mvtec_layout_sorted_with_masks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        mvtec(root);
        let ds = open_dataset(root).unwrap();
        assert_eq!(ds.layout, Layout::MvTec);
        let names: Vec<_> = ds
            .train
            .iter()
            .map(|s| s.path.file_name().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["a.png", "b.png", "c.jpg"]);
        assert!(ds.train.iter().all(|s| s.label == Label::Normal));
        let test: Vec<_> = ds
            .test
            .iter()
            .map(|s| {
                (
                    s.path.strip_prefix(root).unwrap().to_path_buf(),
                    s.label,
                    s.defect.clone(),
                    s.mask.is_some(),
                )
            })
            .collect();
        assert_eq!(
            test,
            vec![
                ("test/good/000.png".into(), Label::Normal, None, false),
                (
                    "test/scratch/000.png".into(),
                    Label::Anomaly,
                    Some("scratch".into()),
                    true
                ),
                (
                    "test/scratch/001.png".into(),
                    Label::Anomaly,
                    Some("scratch".into()),
                    false
                ),
                (
                    "test/spot/000.png".into(),
                    Label::Anomaly,
                    Some("spot".into()),
                    true
                ),
            ]
        );
        assert_eq!(ds.require_test().unwrap().len(), 4);
        let pre = Preprocess {
            width: 8,
            height: 8,
            channels: 3,
            resize: Resize::Squash,
            scaling: Scaling::Unit,
        };
        let tensors = load_all(&pre, &ds.test).unwrap();
        assert_eq!(tensors.len(), 4);
        assert_eq!(
            tensors[1],
            pre.load(&ds.test[1].path).unwrap(),
            "order is kept"
        );
        assert_eq!(
            serde_json::to_string(&Label::Normal).unwrap(),
            "\"no anomaly\""
        );
        assert_eq!(
            serde_json::to_string(&Label::Anomaly).unwrap(),
            "\"anomaly\""
        );
    }

    #[test]
    fn discovers_edge_impulse_layout() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        png(&root.join("train/x.png"), 10, 12);
        png(&root.join("train/y.bmp"), 10, 12);
        png(&root.join("test/no anomaly/n.png"), 10, 12);
        png(&root.join("test/anomaly/a.png"), 10, 12);
        let ds = open_dataset(root).unwrap();
        assert_eq!(ds.layout, Layout::EdgeImpulse);
        assert_eq!(ds.train.len(), 2);
        let labels: Vec<_> = ds.test.iter().map(|s| s.label).collect();
        assert_eq!(labels, [Label::Anomaly, Label::Normal], "sorted by path");
    }

    #[test]
    fn train_only_opens_but_require_test_fails() {
        let dir = tempfile::tempdir().unwrap();
        png(&dir.path().join("train/good/a.png"), 8, 8);
        let ds = open_dataset(dir.path()).unwrap();
        assert!(ds.test.is_empty());
        let e = ds.require_test().unwrap_err().to_string();
        assert!(
            e.contains(&dir.path().display().to_string()) && e.contains("test/good/"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let missing = root.join("nowhere");
        assert!(err(&missing).contains("nowhere"));

        // Unknown layout: no train/ at all, or train/ with the wrong folders.
        std::fs::create_dir_all(root.join("a/images")).unwrap();
        let e = err(&root.join("a"));
        assert!(
            e.contains("/a") && e.contains("train/good/") && e.contains("Edge Impulse"),
            "{e}"
        );
        png(&root.join("b/train/cats/x.png"), 8, 8);
        let e = err(&root.join("b"));
        assert!(
            e.contains("b/train") && e.contains("unknown data set layout"),
            "{e}"
        );

        // Empty train folder.
        std::fs::create_dir_all(root.join("c/train/good")).unwrap();
        assert!(err(&root.join("c")).contains("c/train/good: no training images"));

        // Test folder without label folders.
        png(&root.join("d/train/good/x.png"), 8, 8);
        png(&root.join("d/test/x.png"), 8, 8);
        let e = err(&root.join("d"));
        assert!(
            e.contains("d/test") && e.contains("no label folders"),
            "{e}"
        );
        png(&root.join("d/test/good/x.png"), 8, 8);
        let e = err(&root.join("d"));
        assert!(e.contains("d/test/x.png") && e.contains("no label"), "{e}");

        // Edge Impulse with a wrong label folder.
        png(&root.join("e/train/x.png"), 8, 8);
        png(&root.join("e/test/broken/x.png"), 8, 8);
        let e = err(&root.join("e"));
        assert!(
            e.contains("e/test/broken") && e.contains("no anomaly"),
            "{e}"
        );

        // A non-image file (a hidden one is skipped).
        png(&root.join("f/train/x.png"), 8, 8);
        std::fs::write(root.join("f/train/notes.txt"), "hi").unwrap();
        std::fs::write(root.join("f/train/.hidden"), "hi").unwrap();
        let e = err(&root.join("f"));
        assert!(
            e.contains("f/train/notes.txt") && e.contains("not an image"),
            "{e}"
        );

        // A mask whose size differs from its image.
        png(&root.join("g/train/good/x.png"), 8, 8);
        png(&root.join("g/test/hole/x.png"), 8, 8);
        mask(&root.join("g/ground_truth/hole/x_mask.png"), 9, 8);
        let e = err(&root.join("g"));
        assert!(
            e.contains("g/ground_truth/hole/x_mask.png") && e.contains("9x8"),
            "{e}"
        );

        // Unreadable image: reported by path, the first failing one in order.
        png(&root.join("h/train/good/a.png"), 8, 8);
        std::fs::write(root.join("h/train/good/b.png"), "garbage").unwrap();
        std::fs::write(root.join("h/train/good/c.png"), "garbage").unwrap();
        let e = err(&root.join("h"));
        assert!(e.contains("h/train/good/b.png"), "{e}");

        // A header that reads but pixels that do not: reported at load time, first in order.
        png(&root.join("t/train/good/a.png"), 8, 8);
        for name in ["b.png", "c.png"] {
            let bytes = std::fs::read(root.join("t/train/good/a.png")).unwrap();
            std::fs::write(
                root.join("t/train/good").join(name),
                &bytes[..bytes.len() - 20],
            )
            .unwrap();
        }
        let ds = open_dataset(&root.join("t")).unwrap();
        let pre = Preprocess {
            width: 8,
            height: 8,
            channels: 1,
            resize: Resize::Crop,
            scaling: Scaling::Unit,
        };
        let e = load_all(&pre, &ds.train).unwrap_err().to_string();
        assert!(e.contains("t/train/good/b.png"), "{e}");

        // Mixed sizes and channel counts, in training or test images.
        png(&root.join("i/train/good/a.png"), 8, 8);
        png(&root.join("i/train/good/b.png"), 8, 9);
        let e = err(&root.join("i"));
        assert!(
            e.contains("i/train/good/b.png")
                && e.contains("8x9")
                && e.contains("i/train/good/a.png"),
            "{e}"
        );
        png(&root.join("j/train/good/a.png"), 8, 8);
        png(&root.join("j/test/good/a.png"), 8, 8);
        std::fs::create_dir_all(root.join("j/test/hole")).unwrap();
        image::GrayImage::new(8, 8)
            .save(root.join("j/test/hole/b.png"))
            .unwrap();
        let e = err(&root.join("j"));
        assert!(
            e.contains("j/test/hole/b.png")
                && e.contains("1 channel(s) (gray)")
                && e.contains("(RGB)"),
            "{e}"
        );
    }
}
