//! The bad-input table: every command, every kind of bad input. Each case must exit with code 2,
//! print exactly one line on stderr that names the file (and the key, tensor or node) at fault,
//! never panic, and leave the scratch directory exactly as it was: nothing written, nothing left
//! half-written, nothing removed.
//!
//! Fixtures are made here: a small synthetic data set, two models trained on it with the
//! embedded backbone, and models rewritten from those with one thing wrong each.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde_json::{json, Value};

use super::{fomo_ad, repo};

fn s(path: &Path) -> String {
    path.to_str().expect("temp paths are UTF-8").to_string()
}

fn ok(output: Output, what: &str) {
    assert!(
        output.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Every file and folder under `root` with its contents (folders: None), to prove a failed
/// command changed nothing.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut all = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("scratch folders are readable") {
            let path = entry.expect("readable entry").path();
            let meta = std::fs::symlink_metadata(&path).expect("readable entry");
            let contents = if meta.is_dir() {
                stack.push(path.clone());
                None
            } else if meta.file_type().is_symlink() {
                Some(s(&std::fs::read_link(&path).expect("a link")).into_bytes())
            } else {
                Some(std::fs::read(&path).expect("scratch files are readable"))
            };
            all.insert(path, contents);
        }
    }
    all
}

/// One tensor of an artifact: name, dtype, shape, little-endian bytes.
type RawTensor = (String, Dtype, Vec<usize>, Vec<u8>);

/// Copies the model at `from` to `to`, letting `edit` change its metadata and tensors.
fn rewrite(from: &Path, to: &Path, edit: impl FnOnce(&mut Value, &mut Vec<RawTensor>)) {
    let bytes = std::fs::read(from).expect("the trained model exists");
    let parsed = SafeTensors::deserialize(&bytes).expect("a trained model is valid safetensors");
    let (_, header) = SafeTensors::read_metadata(&bytes).expect("valid header");
    let mut meta: Value = serde_json::from_str(
        header
            .metadata()
            .as_ref()
            .and_then(|m| m.get("fomo_ad"))
            .expect("fomo-ad metadata"),
    )
    .expect("metadata is JSON");
    let mut tensors: Vec<RawTensor> = parsed
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            (
                name,
                view.dtype(),
                view.shape().to_vec(),
                view.data().to_vec(),
            )
        })
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    edit(&mut meta, &mut tensors);
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(name, dtype, shape, data)| {
            let view = TensorView::new(*dtype, shape.clone(), data).expect("consistent tensor");
            (name.clone(), view)
        })
        .collect();
    let metadata = std::collections::HashMap::from([("fomo_ad".to_string(), meta.to_string())]);
    let out = safetensors::serialize(views, Some(metadata)).expect("serialisable");
    std::fs::write(to, out).expect("scratch is writable");
}

fn tensor<'a>(tensors: &'a mut [RawTensor], name: &str) -> &'a mut RawTensor {
    tensors
        .iter_mut()
        .find(|t| t.0 == name)
        .unwrap_or_else(|| panic!("no tensor {name}"))
}

fn set_f32(t: &mut RawTensor, index: usize, value: f32) {
    t.3[index * 4..index * 4 + 4].copy_from_slice(&value.to_le_bytes());
}

fn png(path: &Path, w: u32, h: u32) {
    std::fs::create_dir_all(path.parent().expect("has a folder")).expect("writable");
    image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 40]))
        .save(path)
        .expect("writable");
}

/// A small valid MVTec-style data set copied from `data` with its train images only.
fn train_only(data: &Path, to: &Path) {
    let good = to.join("train/good");
    std::fs::create_dir_all(&good).expect("writable");
    for entry in std::fs::read_dir(data.join("train/good")).expect("synth wrote it") {
        let path = entry.expect("readable").path();
        std::fs::copy(&path, good.join(path.file_name().expect("a file"))).expect("copy");
    }
}

/// Runs `fomo-ad` as an unprivileged user when this process is root, for which permission bits
/// do not stop writes: `setpriv` (util-linux) drops to nobody. Fails loudly if that is not
/// possible rather than skipping the case.
fn fomo_ad_unprivileged(args: &[String]) -> Output {
    let bin = env!("CARGO_BIN_EXE_fomo-ad");
    let mut command = if running_as_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", bin]);
        c
    } else {
        Command::new(bin)
    };
    command
        .args(args)
        .current_dir(repo())
        .output()
        .expect("setpriv (util-linux) runs fomo-ad as nobody; install util-linux")
}

fn running_as_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("`id` runs");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

struct Case {
    what: &'static str,
    args: Vec<String>,
    /// Words the one-line message must contain.
    words: Vec<String>,
    unprivileged: bool,
}

fn case<A: AsRef<str>>(what: &'static str, args: &[A], words: &[&str]) -> Case {
    Case {
        what,
        args: args.iter().map(|a| a.as_ref().to_string()).collect(),
        words: words.iter().map(|w| w.to_string()).collect(),
        unprivileged: false,
    }
}

#[test]
fn bad_inputs_are_one_line_errors_with_exit_code_2_and_leave_nothing_behind() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    let root = tmp.path();
    // Readable by nobody, for the read-only case run through setpriv.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let p = |name: &str| root.join(name);
    let data = p("data");
    ok(
        fomo_ad(&[
            "synth",
            "--out",
            &s(&data),
            "--train",
            "4",
            "--test-good",
            "2",
            "--test-anomalous",
            "1",
        ]),
        "synth",
    );
    let (pc, gmm) = (p("pc.safetensors"), p("gmm.safetensors"));
    ok(
        fomo_ad(&[
            "train",
            "--data",
            &s(&data),
            "--scorer",
            "patchcore",
            "--out",
            &s(&pc),
        ]),
        "train patchcore",
    );
    ok(
        fomo_ad(&[
            "train",
            "--data",
            &s(&data),
            "--scorer",
            "gmm",
            "--components",
            "1",
            "--out",
            &s(&gmm),
        ]),
        "train gmm",
    );
    let image = s(&data.join("test/good/000.png"));

    // Broken model files.
    std::fs::write(p("empty.safetensors"), b"").expect("writable");
    let pc_bytes = std::fs::read(&pc).expect("trained");
    std::fs::write(p("truncated.safetensors"), &pc_bytes[..pc_bytes.len() / 2]).expect("w");
    let mut rng = fomo_ad_tests_rng(7);
    std::fs::write(
        p("random.safetensors"),
        (0..4096).map(|_| rng()).collect::<Vec<u8>>(),
    )
    .expect("writable");
    rewrite(&gmm, &p("no_log_weights.safetensors"), |_, t| {
        t.retain(|t| t.0 != "log_weights")
    });
    rewrite(&pc, &p("f64_bank.safetensors"), |_, t| {
        let bank = tensor(t, "memory_bank");
        bank.1 = Dtype::F64;
        bank.3.extend(bank.3.clone());
    });
    rewrite(&pc, &p("transposed_bank.safetensors"), |_, t| {
        let bank = tensor(t, "memory_bank");
        bank.2.reverse();
    });
    rewrite(&pc, &p("nan_bank.safetensors"), |_, t| {
        set_f32(tensor(t, "memory_bank"), 5, f32::NAN)
    });
    rewrite(&gmm, &p("inf_means.safetensors"), |_, t| {
        set_f32(tensor(t, "means"), 2, f32::INFINITY)
    });
    rewrite(&pc, &p("bad_grid.safetensors"), |m, _| {
        m["grid"] = json!([11, 12])
    });
    rewrite(&pc, &p("knn.safetensors"), |m, _| {
        m["scorer"] = json!("knn")
    });
    rewrite(&pc, &p("future.safetensors"), |m, _| {
        m["format_version"] = json!(2)
    });
    rewrite(&pc, &p("extra_key.safetensors"), |m, _| {
        m["colour"] = json!("red")
    });
    rewrite(&pc, &p("huge_input.safetensors"), |m, _| {
        m["input"]["width"] = json!(1 << 20)
    });
    rewrite(&pc, &p("other_grid.safetensors"), |m, _| {
        m["feature_grid"] = json!([10, 10, 192]);
        m["grid"] = json!([10, 10]);
    });
    rewrite(&pc, &p("wide_pool.safetensors"), |m, _| {
        m["scorer_config"]["pool_size"] = json!(1001);
    });
    rewrite(&gmm, &p("no_cells.safetensors"), |m, _| {
        m["scorer_config"]["pool_kernel"] = json!(40);
    });

    // Broken data sets.
    std::fs::create_dir(p("empty_data")).expect("writable");
    std::fs::create_dir_all(p("no_train_images/train/good")).expect("writable");
    train_only(&data, &p("train_only"));
    train_only(&data, &p("loose_test"));
    png(&p("loose_test/test/x.png"), 96, 96);
    png(&p("loose_test/test/good/y.png"), 96, 96);
    train_only(&data, &p("broken_link"));
    #[cfg(unix)]
    std::os::unix::fs::symlink("/nonexistent/img.png", p("broken_link/train/good/zz.png"))
        .expect("a symlink");
    train_only(&data, &p("garbage"));
    std::fs::write(p("garbage/train/good/zz.png"), b"not a png at all").expect("writable");
    train_only(&data, &p("text_file"));
    std::fs::write(p("text_file/train/good/notes.txt"), b"hello").expect("writable");
    train_only(&data, &p("mixed_sizes"));
    png(&p("mixed_sizes/train/good/zz.png"), 50, 70);
    train_only(&data, &p("mixed_channels"));
    image::GrayImage::new(96, 96)
        .save(p("mixed_channels/train/good/zz.png"))
        .expect("writable");

    train_only(&data, &p("bomb"));
    let mut bmp = std::io::Cursor::new(Vec::new());
    image::RgbImage::new(2, 2)
        .write_to(&mut bmp, image::ImageFormat::Bmp)
        .expect("encodes in memory");
    let mut bomb = bmp.into_inner();
    // Width and height fields of the BMP header: a 70-byte file claiming 6000x6000 pixels.
    bomb[18..22].copy_from_slice(&6000i32.to_le_bytes());
    bomb[22..26].copy_from_slice(&6000i32.to_le_bytes());
    std::fs::write(p("bomb/train/good/zz.bmp"), &bomb).expect("writable");

    // A JPEG on which the decoder itself panics (found by the image fuzzer; the first byte of
    // the fuzz input is the target's options byte).
    let panicking =
        std::fs::read(repo().join("fuzz/regressions/image/jpeg-zune-avx2-idct-unwrap-panic"))
            .expect("the regression input is committed");
    std::fs::write(p("decoder_panics.jpg"), &panicking[1..]).expect("writable");
    // Its header says 12x9 RGB: so does the other image of this data set, so that it is decoded.
    png(&p("decoder_panic/train/good/a.png"), 12, 9);
    std::fs::copy(
        p("decoder_panics.jpg"),
        p("decoder_panic/train/good/zz.jpg"),
    )
    .expect("copy");

    // Output places.
    let file = p("a_file");
    std::fs::write(&file, b"keep me").expect("writable");
    let foreign = p("foreign");
    std::fs::create_dir(&foreign).expect("writable");
    std::fs::write(foreign.join("main.c"), b"int main(void) { return 0; }\n").expect("w");
    let generated = p("generated");
    ok(
        fomo_ad(&[
            "compile",
            "--model",
            &s(&pc),
            "--lang",
            "c",
            "--out",
            &s(&generated),
        ]),
        "compile",
    );
    let read_only = p("read_only");
    std::fs::create_dir(&read_only).expect("writable");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o555))
            .expect("chmod");
    }

    let (pc_s, gmm_s, data_s) = (s(&pc), s(&gmm), s(&data));
    let model = |name: &str| s(&p(name));
    let out_lib = s(&p("lib"));
    let new_model = s(&p("new.safetensors"));
    let fixture = |name: &str| format!("tests/fixtures/{name}");
    let train = |data_dir: &str| {
        vec![
            "train".to_string(),
            "--data".into(),
            model(data_dir),
            "--scorer".into(),
            "gmm".into(),
            "--out".into(),
            new_model.clone(),
        ]
    };
    #[rustfmt::skip]
    let mut cases = vec![
        // Model files, through every command that reads one.
        case("missing model", &["inspect", "--model", &model("missing.safetensors")], &["missing.safetensors", "No such file"]),
        case("empty model", &["score", "--model", &model("empty.safetensors"), &image], &["empty.safetensors", "not a fomo-ad model"]),
        case("truncated model", &["test", "--model", &model("truncated.safetensors"), "--data", &data_s], &["truncated.safetensors", "not a fomo-ad model"]),
        case("random bytes", &["compile", "--model", &model("random.safetensors"), "--lang", "c", "--out", &out_lib], &["random.safetensors", "not a fomo-ad model"]),
        case("missing tensor", &["score", "--model", &model("no_log_weights.safetensors"), &image], &["no_log_weights.safetensors", "`log_weights` is missing"]),
        case("wrong dtype", &["inspect", "--model", &model("f64_bank.safetensors")], &["f64_bank.safetensors", "`memory_bank`", "F64"]),
        case("wrong shape", &["test", "--model", &model("transposed_bank.safetensors"), "--data", &data_s], &["transposed_bank.safetensors", "`memory_bank` has shape"]),
        case("NaN value", &["compile", "--model", &model("nan_bank.safetensors"), "--lang", "rust", "--out", &out_lib], &["nan_bank.safetensors", "`memory_bank`", "NaN"]),
        case("infinite value", &["verify", "--model", &model("inf_means.safetensors"), "--lang", "c", "--generated", &s(&generated), "--data", &data_s], &["inf_means.safetensors", "`means`", "inf"]),
        case("grid vs sizes", &["score", "--model", &model("bad_grid.safetensors"), &image], &["bad_grid.safetensors", "`grid`", "[11, 12]"]),
        case("unknown scorer", &["inspect", "--model", &model("knn.safetensors")], &["knn.safetensors", "`scorer`", "knn"]),
        case("future format version", &["score", "--model", &model("future.safetensors"), &image], &["future.safetensors", "format_version 2", "upgrade"]),
        case("unknown metadata key", &["inspect", "--model", &model("extra_key.safetensors")], &["extra_key.safetensors", "`colour`", "unknown"]),
        case("huge input size in metadata", &["score", "--model", &model("huge_input.safetensors"), &image], &["huge_input.safetensors", "`input.width`", "1048576"]),
        case("feature grid vs backbone", &["test", "--model", &model("other_grid.safetensors"), "--data", &data_s], &["other_grid.safetensors", "`feature_grid`", "12x12x192"]),
        case("pooling larger than the grid", &["inspect", "--model", &model("no_cells.safetensors")], &["no_cells.safetensors", "no cells"]),
        case("pooling too wide to be useful", &["score", "--model", &model("wide_pool.safetensors"), &image], &["wide_pool.safetensors", "`scorer_config.pool_size`", "1001"]),
        case("another backbone", &["score", "--model", &pc_s, "--backbone", "models/mobilenetv2_0.35_cut8.onnx", &image], &["pc.safetensors", "mobilenetv2_0.35_cut8.onnx", "--backbone"]),
        // Backbones.
        case("missing backbone", &["inspect", "--backbone", "nowhere.onnx"], &["nowhere.onnx", "No such file"]),
        case("unsupported op", &["train", "--backbone", &fixture("unsupported_op.onnx"), "--data", &data_s, "--scorer", "gmm", "--out", &new_model], &["unsupported_op.onnx", "weird_lrn", "LRN"]),
        case("no static shape", &["inspect", "--backbone", &fixture("symbolic_channels.onnx")], &["symbolic_channels.onnx", "static"]),
        case("second input", &["train", "--backbone", &fixture("two_inputs.onnx"), "--data", &data_s, "--scorer", "patchcore", "--out", &new_model], &["two_inputs.onnx", "2 inputs"]),
        case("not ONNX", &["inspect", "--backbone", &fixture("not_onnx.onnx")], &["not_onnx.onnx", "not a readable ONNX model"]),
        case("truncated ONNX", &["inspect", "--backbone", &fixture("truncated.onnx")], &["truncated.onnx", "not a readable ONNX model"]),
        case("contradicting shapes", &["inspect", "--backbone", &fixture("inconsistent_shapes.onnx")], &["inconsistent_shapes.onnx", "`mismatched_add`", "do not broadcast"]),
        case("input too large", &["inspect", "--input-size", "4096x4096"], &["--input-size", "at most 2048"]),
        // Data sets and images.
        case("missing data folder", &["train", "--data", &model("nowhere"), "--scorer", "gmm", "--out", &new_model], &["nowhere", "does not exist"]),
        case("empty data folder", &train("empty_data"), &["empty_data", "unknown data set layout"]),
        case("no training images", &train("no_train_images"), &["no_train_images/train/good", "no training images"]),
        case("no test labels", &["test", "--model", &pc_s, "--data", &model("train_only")], &["train_only", "no labelled test images"]),
        case("unlabelled test image", &["test", "--model", &pc_s, "--data", &model("loose_test")], &["loose_test/test/x.png", "no label"]),
        case("unreadable image", &train("broken_link"), &["broken_link/train/good/zz.png", "No such file"]),
        case("not an image", &train("garbage"), &["garbage/train/good/zz.png", "cannot decode image"]),
        case("not an image file name", &train("text_file"), &["text_file/train/good/notes.txt", "not an image file"]),
        case("mixed sizes", &train("mixed_sizes"), &["mixed_sizes/train/good/zz.png", "50x70", "96x96"]),
        case("mixed channel counts", &train("mixed_channels"), &["mixed_channels/train/good/zz.png", "(gray)", "(RGB)"]),
        case("decompression bomb", &train("bomb"), &["bomb/train/good/zz.bmp", "6000x6000", "can hold"]),
        case("decoder panics (score)", &["score", "--model", &pc_s, &model("decoder_panics.jpg")], &["decoder_panics.jpg", "the image decoder failed on this file"]),
        case("decoder panics (train, in a worker thread)", &train("decoder_panic"), &["decoder_panic/train/good/zz.jpg", "the image decoder failed"]),
        case("score a non-image", &["score", "--model", &pc_s, &s(&file)], &["a_file", "cannot decode image"]),
        case("verify without generated code", &["verify", "--model", &pc_s, "--lang", "c", "--generated", &model("nowhere"), "--data", &data_s], &["nowhere", "No such file"]),
        // Training options a data set cannot support.
        case("pool wider than the grid", &["train", "--data", &data_s, "--scorer", "patchcore", "--pool-size", "1001", "--out", &new_model], &["data", "PatchCore", "pool size 1001"]),
        case("projection above the channels", &["train", "--data", &data_s, "--scorer", "gmm", "--projection-dim", "100000", "--out", &new_model], &["data", "GMM", "projection dimension 100000"]),
        // Names.
        case("C keyword", &["compile", "--model", &pc_s, "--lang", "c", "--out", &out_lib, "--name", "int"], &["--name", "int", "keyword"]),
        case("Rust keyword", &["compile", "--model", &pc_s, "--lang", "rust", "--out", &out_lib, "--name", "fn"], &["--name", "fn", "Rust keyword"]),
        case("comment end in a name", &["compile", "--model", &pc_s, "--lang", "c", "--out", &out_lib, "--name", "a*/b"], &["--name", "lower-case ASCII"]),
        case("quote in a name", &["compile", "--model", &pc_s, "--lang", "rust", "--out", &out_lib, "--name", "a\"b"], &["--name", "crate name"]),
        case("newline in a name", &["compile", "--model", &pc_s, "--lang", "c", "--out", &out_lib, "--name", "a\nb"], &["--name", "a_b"]),
        // Output places.
        case("compile onto a file", &["compile", "--model", &pc_s, "--lang", "c", "--out", &s(&file)], &["a_file", "not a directory"]),
        case("train onto a folder", &["train", "--data", &data_s, "--scorer", "gmm", "--out", &s(&foreign)], &["foreign", "is a directory"]),
        case("train under a file", &["train", "--data", &data_s, "--scorer", "gmm", "--out", &format!("{}/m.safetensors", s(&file))], &["a_file", "not a directory"]),
        case("synth onto a file", &["synth", "--out", &s(&file)], &["a_file", "not a directory"]),
        case("heatmaps onto a file", &["test", "--model", &pc_s, "--data", &data_s, "--heatmaps", &s(&file)], &["a_file", "--heatmaps", "not a directory"]),
        case("foreign folder", &["compile", "--model", &pc_s, "--lang", "c", "--out", &s(&foreign)], &["foreign", ".fomo-ad-manifest", "--force"]),
        case("failed compile over earlier output", &["compile", "--model", &model("nan_bank.safetensors"), "--lang", "c", "--out", &s(&generated)], &["nan_bank.safetensors"]),
        case("failed train over an earlier model", &["train", "--data", &model("garbage"), "--scorer", "patchcore", "--out", &gmm_s], &["garbage/train/good/zz.png"]),
        case("bench report under a file", &["bench", "--model", &pc_s, "--only", "reference", "--json", &format!("{}/r.json", s(&file))], &["a_file", "not a directory"]),
        case("bench a corrupt model", &["bench", "--model", &model("random.safetensors"), "--only", "reference"], &["random.safetensors", "not a fomo-ad model"]),
        // Arguments.
        case("unknown scorer argument", &["train", "--data", &data_s, "--scorer", "knn", "--out", &new_model], &["--scorer", "knn"]),
        case("NaN threshold", &["score", "--model", &pc_s, "--threshold", "NaN", &image], &["--threshold"]),
    ];
    for (what, args) in [
        (
            "read-only folder (compile)",
            vec!["compile", "--model", &pc_s, "--lang", "c", "--out"],
        ),
        (
            "read-only folder (train)",
            vec!["train", "--data", &data_s, "--scorer", "gmm", "--out"],
        ),
        (
            "read-only folder (synth)",
            vec!["synth", "--train", "2", "--out"],
        ),
    ] {
        let target = read_only.join(if what.contains("train") {
            "m.safetensors"
        } else {
            "out"
        });
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        args.push(s(&target));
        cases.push(Case {
            what,
            args,
            words: vec![
                "read_only".into(),
                "cannot write here: permission denied".into(),
            ],
            unprivileged: true,
        });
    }

    let before = snapshot(root);
    let mut failures = Vec::new();
    for case in &cases {
        let out = if case.unprivileged {
            fomo_ad_unprivileged(&case.args)
        } else {
            let args: Vec<&str> = case.args.iter().map(String::as_str).collect();
            fomo_ad(&args)
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        // The table of messages, for `--nocapture`.
        eprintln!("{:<36} {}", case.what, stderr.trim_end());
        let mut problems = Vec::new();
        if out.status.code() != Some(2) {
            problems.push(format!("exit code {:?}", out.status.code()));
        }
        if lines.len() != 1 || !lines[0].starts_with("error: ") {
            problems.push("not one `error:` line".into());
        }
        for bad in ["panicked", "internal error", "backtrace"] {
            if stderr.contains(bad) {
                problems.push(format!("`{bad}` in the message"));
            }
        }
        for word in &case.words {
            if !stderr.contains(word.as_str()) {
                problems.push(format!("`{word}` missing"));
            }
        }
        let after = snapshot(root);
        if after != before {
            let changed: Vec<String> = after
                .keys()
                .chain(before.keys())
                .filter(|k| after.get(*k) != before.get(*k))
                .map(|k| s(k))
                .collect();
            problems.push(format!("changed {changed:?}"));
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {} (args {:?}; stderr {stderr:?})",
                case.what,
                problems.join(", "),
                case.args
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// The mechanism of the read-only cases works: the same command that fails in the read-only
/// folder succeeds in a writable one.
#[cfg(unix)]
#[test]
fn the_read_only_cases_fail_because_of_the_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("a temp dir");
    let mode = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod")
    };
    mode(tmp.path(), 0o755);
    let (read_only, writable) = (tmp.path().join("ro"), tmp.path().join("rw"));
    for dir in [&read_only, &writable] {
        std::fs::create_dir(dir).expect("writable");
    }
    mode(&read_only, 0o555);
    mode(&writable, 0o777);
    let synth = |dir: &Path| {
        fomo_ad_unprivileged(&[
            "synth".into(),
            "--train".into(),
            "1".into(),
            "--out".into(),
            s(&dir.join("x")),
        ])
    };
    let refused = synth(&read_only);
    assert_eq!(refused.status.code(), Some(2));
    assert!(!read_only.join("x").exists());
    let written = synth(&writable);
    assert!(
        written.status.success(),
        "{}",
        String::from_utf8_lossy(&written.stderr)
    );
    assert!(writable.join("x/train/good").is_dir());
}

/// Deterministic bytes without a dependency (SplitMix64).
fn fomo_ad_tests_rng(seed: u64) -> impl FnMut() -> u8 {
    let mut state = seed;
    move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) as u8
    }
}
