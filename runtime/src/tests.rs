//! Unit tests of the kernels against plain, obviously-correct loops written here (the
//! cross-checks against the compiler's reference executor live in `tests/tests/rust_kernels.rs`).

use std::vec;
use std::vec::Vec;

use crate::*;

/// Deterministic pseudo-random values in [-1, 1) (a tiny LCG: no dependencies).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn assert_close(actual: &[f32], expected: &[f32], tolerance: f32) {
    assert_eq!(actual.len(), expected.len());
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - e).abs() <= tolerance * e.abs().max(1.0),
            "value {i}: {a} != {e}"
        );
    }
}

/// Direct convolution over HWC with `[groups][kh][kw][in/groups][out/groups]` weights, written
/// index by index.
fn naive_conv(p: &Conv2d, input: &[f32], weights: &[f32], bias: &[f32]) -> Vec<f32> {
    let (ic, oc) = (p.input.c, p.output.c);
    let (ipg, opg) = (ic / p.groups, oc / p.groups);
    let [kh, kw] = p.window.kernel;
    let mut out = vec![0.0; p.output.len()];
    for oy in 0..p.output.h {
        for ox in 0..p.output.w {
            for o in 0..oc {
                let g = o / opg;
                let mut acc = bias.get(o).copied().unwrap_or(0.0);
                for ky in 0..kh {
                    for kx in 0..kw {
                        let y = (oy * p.window.stride[0] + ky * p.window.dilation[0]) as isize
                            - p.window.pads[0] as isize;
                        let x = (ox * p.window.stride[1] + kx * p.window.dilation[1]) as isize
                            - p.window.pads[1] as isize;
                        if y < 0 || x < 0 || y >= p.input.h as isize || x >= p.input.w as isize {
                            continue;
                        }
                        for i in 0..ipg {
                            let v = input[(y as usize * p.input.w + x as usize) * ic + g * ipg + i];
                            acc +=
                                v * weights[(((g * kh + ky) * kw + kx) * ipg + i) * opg + o % opg];
                        }
                    }
                }
                out[(oy * p.output.w + ox) * oc + o] = p.clamp.apply(acc);
            }
        }
    }
    out
}

fn conv(input: Shape, out_c: usize, window: Window, groups: usize, clamp: Clamp) -> Conv2d {
    let (h, w) = window.output_size(input).unwrap();
    Conv2d {
        input,
        output: Shape::new(h, w, out_c),
        window,
        groups,
        clamp,
    }
}

#[test]
fn general_conv_matches_direct_loops_with_padding_stride_dilation_and_groups() {
    let cases = [
        conv(
            Shape::new(7, 6, 3),
            4,
            Window::new([3, 3], [2, 2], [1, 1, 1, 1]),
            1,
            Clamp::RELU6,
        ),
        conv(
            Shape::new(5, 5, 4),
            6,
            Window::new([3, 2], [1, 2], [0, 1, 2, 0]),
            2,
            Clamp::NONE,
        ),
        conv(
            Shape::new(8, 8, 2),
            2,
            Window {
                dilation: [2, 2],
                ..Window::new([3, 3], [1, 1], [2, 2, 2, 2])
            },
            1,
            Clamp::new(-0.5, 0.25),
        ),
    ];
    for (n, p) in cases.iter().enumerate() {
        let input = values(p.input.len(), n as u64);
        let weights = values(p.weights_len(), 10 + n as u64);
        let bias = values(p.output.c, 20 + n as u64);
        let mut out = vec![f32::NAN; p.output.len()];
        conv2d(p, &input, &weights, &bias, &mut out).unwrap();
        assert_close(&out, &naive_conv(p, &input, &weights, &bias), 1e-5);
    }
}

#[test]
fn pointwise_and_depthwise_agree_with_the_general_conv() {
    let pw = conv(
        Shape::new(4, 5, 7),
        9,
        Window::new([1, 1], [1, 1], [0; 4]),
        1,
        Clamp::RELU,
    );
    let dw = conv(
        Shape::new(9, 7, 5),
        5,
        Window::new([3, 3], [2, 2], [1, 1, 1, 1]),
        5,
        Clamp::RELU6,
    );
    for (n, p) in [pw, dw].iter().enumerate() {
        let input = values(p.input.len(), 30 + n as u64);
        let weights = values(p.weights_len(), 40 + n as u64);
        let bias = values(p.output.c, 50 + n as u64);
        let mut general = vec![0.0; p.output.len()];
        let mut special = vec![0.0; p.output.len()];
        // The general layout of a depthwise conv is [channels][kh][kw], its own [kh][kw][channels].
        let taps = p.window.kernel[0] * p.window.kernel[1];
        let general_weights: Vec<f32> = if n == 0 {
            weights.clone()
        } else {
            (0..weights.len())
                .map(|i| weights[(i % taps) * p.output.c + i / taps])
                .collect()
        };
        conv2d(p, &input, &general_weights, &bias, &mut general).unwrap();
        if n == 0 {
            let (blocked, padded_bias) = blocked_pointwise(&weights, &bias, p.input.c, p.output.c);
            conv2d_pointwise(p, &input, &blocked, &padded_bias, &mut special, false).unwrap();
        } else {
            conv2d_depthwise(p, &input, &weights, &bias, &mut special).unwrap();
        }
        assert_close(&special, &general, 1e-6);
    }
    // Each specialisation refuses the other's geometry rather than computing nonsense.
    let w = values(dw.weights_len(), 0);
    let mut out = vec![0.0; dw.output.len()];
    assert!(matches!(
        conv2d_pointwise(&dw, &values(dw.input.len(), 0), &w, &[], &mut out, false),
        Err(Error::Shape(_))
    ));
    let w = values(pw.weights_len(), 0);
    let mut out = vec![0.0; pw.output.len()];
    assert!(matches!(
        conv2d_depthwise(&pw, &values(pw.input.len(), 0), &w, &[], &mut out),
        Err(Error::Shape(_))
    ));
}

/// `[in][out]` weights and `[out]` bias in the pointwise kernel's layout: blocks of 16 outputs,
/// zero-padded.
fn blocked_pointwise(
    weights: &[f32],
    bias: &[f32],
    in_c: usize,
    out_c: usize,
) -> (Vec<f32>, Vec<f32>) {
    let mut blocked = vec![0.0; pointwise_weights_len(in_c, out_c)];
    for i in 0..in_c {
        for o in 0..out_c {
            blocked[((o / POINTWISE_BLOCK) * in_c + i) * POINTWISE_BLOCK + o % POINTWISE_BLOCK] =
                weights[i * out_c + o];
        }
    }
    let mut padded = bias.to_vec();
    padded.resize(out_c.div_ceil(POINTWISE_BLOCK) * POINTWISE_BLOCK, 0.0);
    (blocked, padded)
}

#[test]
fn pointwise_tiles_cover_odd_pixel_counts_and_channel_tails_and_add_the_residual() {
    // 5 x 3 = 15 pixels (tiles of 4 leave 3), 37 outputs (two blocks of 16 and a tail of 5).
    for (in_c, out_c) in [(3, 37), (20, 16), (1, 5)] {
        let p = conv(
            Shape::new(5, 3, in_c),
            out_c,
            Window::new([1, 1], [1, 1], [0; 4]),
            1,
            Clamp::RELU6,
        );
        let input = values(p.input.len(), 1);
        let weights = values(p.weights_len(), 2);
        let bias = values(out_c, 3);
        let skip = values(p.output.len(), 4);
        let (blocked, padded_bias) = blocked_pointwise(&weights, &bias, in_c, out_c);
        let plain = naive_conv(
            &conv(p.input, out_c, p.window, 1, Clamp::NONE),
            &input,
            &weights,
            &bias,
        );
        let mut out = vec![f32::NAN; p.output.len()];
        conv2d_pointwise(&p, &input, &blocked, &padded_bias, &mut out, false).unwrap();
        let expected: Vec<f32> = plain.iter().map(|&v| Clamp::RELU6.apply(v)).collect();
        assert_close(&out, &expected, 1e-6);
        let mut out = skip.clone();
        conv2d_pointwise(&p, &input, &blocked, &padded_bias, &mut out, true).unwrap();
        let expected: Vec<f32> = plain
            .iter()
            .zip(&skip)
            .map(|(&v, &s)| Clamp::RELU6.apply(v + s))
            .collect();
        assert_close(&out, &expected, 1e-6);
    }
}

#[test]
fn conv_rejects_wrong_lengths_and_geometry_instead_of_panicking() {
    let p = conv(
        Shape::new(4, 4, 2),
        3,
        Window::new([3, 3], [1, 1], [1, 1, 1, 1]),
        1,
        Clamp::NONE,
    );
    let input = values(p.input.len(), 1);
    let weights = values(p.weights_len(), 2);
    let bias = values(3, 3);
    let mut out = vec![0.0; p.output.len()];
    assert_eq!(
        conv2d(&p, &input[1..], &weights, &bias, &mut out),
        Err(Error::Length {
            what: "input",
            expected: 32,
            actual: 31
        })
    );
    assert!(matches!(
        conv2d(&p, &input, &weights[..10], &bias, &mut out),
        Err(Error::Length {
            what: "weights",
            ..
        })
    ));
    assert!(matches!(
        conv2d(&p, &input, &weights, &bias[..2], &mut out),
        Err(Error::Length { what: "bias", .. })
    ));
    assert!(matches!(
        conv2d(&p, &input, &weights, &bias, &mut out[..5]),
        Err(Error::Length { what: "output", .. })
    ));
    let bad_size = Conv2d {
        output: Shape::new(3, 4, 3),
        ..p
    };
    assert!(matches!(
        conv2d(&bad_size, &input, &weights, &bias, &mut out),
        Err(Error::Shape(_))
    ));
    let bad_groups = Conv2d { groups: 2, ..p };
    assert!(matches!(
        conv2d(&bad_groups, &input, &weights, &bias, &mut out),
        Err(Error::Shape(_))
    ));
    let zero_stride = Conv2d {
        window: Window::new([3, 3], [0, 1], [1; 4]),
        ..p
    };
    assert!(matches!(
        conv2d(&zero_stride, &input, &weights, &bias, &mut out),
        Err(Error::Shape(_))
    ));
    let huge = Conv2d {
        input: Shape::new(usize::MAX, usize::MAX, 2),
        ..p
    };
    assert!(conv2d(&huge, &input, &weights, &bias, &mut out).is_err());
}

#[test]
fn pools_average_and_take_maxima_over_windows() {
    // One channel 3x3 = 1..9; 2x2 windows, stride 1, padding right/bottom 1.
    let input: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let p = Pool2d {
        input: Shape::new(3, 3, 1),
        output: Shape::new(3, 3, 1),
        window: Window::new([2, 2], [1, 1], [0, 0, 1, 1]),
        count_include_pad: false,
    };
    let mut out = vec![0.0; 9];
    avg_pool(&p, &input, &mut out).unwrap();
    assert_eq!(out, [3.0, 4.0, 4.5, 6.0, 7.0, 7.5, 7.5, 8.5, 9.0]);
    avg_pool(
        &Pool2d {
            count_include_pad: true,
            ..p
        },
        &input,
        &mut out,
    )
    .unwrap();
    assert_eq!(out, [3.0, 4.0, 2.25, 6.0, 7.0, 3.75, 3.75, 4.25, 2.25]);
    max_pool(&p, &input, &mut out).unwrap();
    assert_eq!(out, [5.0, 6.0, 6.0, 8.0, 9.0, 9.0, 8.0, 9.0, 9.0]);
    // Channels stay independent.
    let two: Vec<f32> = input.iter().flat_map(|&v| [v, -v]).collect();
    let p2 = Pool2d {
        input: Shape::new(3, 3, 2),
        output: Shape::new(3, 3, 2),
        ..p
    };
    let mut out2 = vec![0.0; 18];
    max_pool(&p2, &two, &mut out2).unwrap();
    assert_eq!(out2[0..2], [5.0, -1.0]);
    assert!(matches!(
        avg_pool(&p2, &two[..17], &mut out2),
        Err(Error::Length { .. })
    ));
}

#[test]
fn elementwise_kernels() {
    let a = [-1.0, 0.5, 7.0, 3.0];
    let b = [0.5, 0.5, 0.5, 4.0];
    let mut out = [0.0; 4];
    add(Clamp::RELU6, &a, &b, &mut out).unwrap();
    assert_eq!(out, [0.0, 1.0, 6.0, 6.0]);
    let mut acc = a;
    add_in_place(Clamp::NONE, &mut acc, &b).unwrap();
    assert_eq!(acc, [-0.5, 1.0, 7.5, 7.0]);
    clamp(Clamp::RELU, &a, &mut out).unwrap();
    assert_eq!(out, [0.0, 0.5, 7.0, 3.0]);
    let mut v = a;
    clamp_in_place(Clamp::new(0.0, 1.0), &mut v);
    assert_eq!(v, [0.0, 0.5, 1.0, 1.0]);
    let mut v = a;
    double_in_place(Clamp::RELU6, &mut v);
    assert_eq!(v, [0.0, 1.0, 6.0, 6.0]);
    let mut v = a;
    channel_affine_in_place(&mut v, &[2.0, -1.0], &[1.0, 0.0]).unwrap();
    assert_eq!(v, [-1.0, -0.5, 15.0, -3.0]);
    channel_affine(&a, &[2.0, -1.0], &[1.0, 0.0], &mut out).unwrap();
    assert_eq!(out, [-1.0, -0.5, 15.0, -3.0]);
    assert!(add(Clamp::NONE, &a, &b[..3], &mut out).is_err());
    assert!(channel_affine(&a[..3], &[2.0, -1.0], &[1.0, 0.0], &mut out[..3]).is_err());
}

#[test]
fn pad_and_copy_channels_place_values() {
    // 1x2 pixels of 2 channels, padded top 1, left 1, right 0, bottom 0 -> 2x3.
    let input = [1.0, 2.0, 3.0, 4.0];
    let mut out = [9.0; 12];
    pad(Shape::new(1, 2, 2), [1, 1, 0, 0], &input, &mut out).unwrap();
    assert_eq!(
        out,
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0]
    );
    let mut cat = [0.0; 6];
    copy_channels(&[1.0, 2.0], 1, 3, 0, &mut cat).unwrap();
    copy_channels(&input, 2, 3, 1, &mut cat).unwrap();
    assert_eq!(cat, [1.0, 1.0, 2.0, 2.0, 3.0, 4.0]);
    assert!(copy_channels(&input, 2, 3, 2, &mut cat).is_err());
}

#[test]
fn scale_pixels_per_channel() {
    let pixels = [0u8, 255, 128, 10, 20, 30];
    let mut out = [0.0; 6];
    scale_pixels(
        &pixels,
        &[1.0 / 255.0, 2.0, 1.0],
        &[0.0, -1.0, 0.5],
        &mut out,
    )
    .unwrap();
    assert_eq!(out, [0.0, 509.0, 128.5, 10.0 / 255.0, 39.0, 30.5]);
    assert!(scale_pixels(&pixels[..5], &[1.0; 3], &[0.0; 3], &mut out[..5]).is_err());
    assert!(scale_pixels(&pixels, &[1.0; 3], &[0.0; 3], &mut out[..5]).is_err());
}

#[test]
fn scale_pixels_matches_per_value_scaling_for_any_channel_count_and_length() {
    // 1-4 channels take the 48-value runs plus a tail, 5 and 7 the per-pixel loop; 37 pixels
    // leave a tail in each case. A factor applied to the wrong channel moves values by ~100.
    for channels in [1usize, 2, 3, 4, 5, 7] {
        let pixels: Vec<u8> = (0..37 * channels).map(|i| (i * 37 % 256) as u8).collect();
        let scale: Vec<f32> = (0..channels).map(|c| 0.5 + c as f32).collect();
        let offset: Vec<f32> = (0..channels).map(|c| -100.0 * c as f32).collect();
        let mut out = vec![f32::NAN; pixels.len()];
        scale_pixels(&pixels, &scale, &offset, &mut out).unwrap();
        let expected: Vec<f32> = pixels
            .iter()
            .enumerate()
            .map(|(i, &v)| f32::from(v) * scale[i % channels] + offset[i % channels])
            .collect();
        assert_eq!(out, expected, "{channels} channels");
    }
}

#[test]
fn arena_split_hands_out_disjoint_regions_or_refuses() {
    let mut arena: Vec<f32> = (0..10).map(|v| v as f32).collect();
    let ([a, b], out) = split(
        &mut arena,
        [Region::new(0, 2), Region::new(7, 3)],
        Region::new(3, 4),
    )
    .unwrap();
    assert_eq!((a, b), (&[0.0, 1.0][..], &[7.0, 8.0, 9.0][..]));
    out.fill(-1.0);
    assert_eq!(arena[3..7], [-1.0; 4]);
    // Overlapping the output, or running past the arena, is an error.
    assert!(split(&mut arena, [Region::new(2, 2)], Region::new(3, 4)).is_err());
    assert!(split(&mut arena, [Region::new(0, 1)], Region::new(8, 4)).is_err());
    assert!(split(&mut arena, [Region::new(9, 2)], Region::new(0, 4)).is_err());
    assert!(split(&mut arena, [Region::new(usize::MAX, 2)], Region::new(0, 4)).is_err());
    // Inputs may overlap each other (x + x).
    let ([x, y], _) = split(
        &mut arena,
        [Region::new(0, 3), Region::new(0, 3)],
        Region::new(3, 3),
    )
    .unwrap();
    assert_eq!(x, y);
    assert!(region(&arena, Region::new(8, 3)).is_err());
    assert_eq!(region_mut(&mut arena, Region::new(8, 2)).unwrap().len(), 2);
}

#[test]
fn math_matches_std_closely() {
    for i in 0..2000 {
        let x = f32::from_bits(0x0000_0100 + i * 1_063_153);
        let expected = x.sqrt();
        let got = math::sqrt(x);
        assert!(
            (got.to_bits() as i64 - expected.to_bits() as i64).abs() <= 1,
            "sqrt({x}) = {got}, std says {expected}"
        );
    }
    for i in 0..2000 {
        let x = f64::from_bits(0x0000_0000_0000_0100 + i * 4_611_686_018_427_387);
        let (got, expected) = (math::sqrt_f64(x), x.sqrt());
        assert!(
            (got - expected).abs() <= 2.5e-16 * expected,
            "sqrt_f64({x}) = {got}, std says {expected}"
        );
    }
    assert_eq!(math::sqrt(0.0), 0.0);
    assert!(math::sqrt(-1.0).is_nan());
    assert_eq!(math::sqrt(f32::INFINITY), f32::INFINITY);
    for i in 0..4000 {
        let x = -740.0 + i as f64 * 0.3623;
        let (got, expected) = (math::exp(x), x.exp());
        assert!(
            (got - expected).abs() <= 1e-14 * expected,
            "exp({x}) = {got}, std says {expected}"
        );
    }
    assert_eq!(math::exp(-1000.0), 0.0);
    assert_eq!(math::exp(1000.0), f64::INFINITY);
    assert_eq!(math::exp(0.0), 1.0);
    for i in 0..4000 {
        let x = f64::from_bits(0x0000_0000_0000_1000 + i * 1_152_921_504_606_847);
        let (got, expected) = (math::ln(x), x.ln());
        assert!(
            (got - expected).abs() <= 1e-15 * expected.abs().max(1.0),
            "ln({x}) = {got}, std says {expected}"
        );
    }
    assert_eq!(math::ln(1.0), 0.0);
    assert_eq!(math::ln(0.0), f64::NEG_INFINITY);
    assert!(math::ln(-1.0).is_nan());
}

#[test]
fn log_sum_exp_is_stable_and_exact() {
    let mut lse = math::LogSumExp::new();
    assert_eq!(lse.value(), f64::NEG_INFINITY);
    for v in [-1000.0, -1001.0, -999.5, f64::NEG_INFINITY] {
        lse.add(v);
    }
    let expected = -999.5 + ((-0.5f64).exp() + (-1.5f64).exp() + 1.0).ln();
    assert!((lse.value() - expected).abs() < 1e-12);
}

/// The `k` smallest distances from `cell` to the rows of `bank`, averaged, in f64.
fn naive_patchcore(cell: &[f32], bank: &[f32], dims: usize, k: usize) -> f32 {
    let mut d: Vec<f64> = bank
        .chunks(dims)
        .map(|b| {
            cell.iter()
                .zip(b)
                .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
                .sum::<f64>()
                .sqrt()
        })
        .collect();
    d.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (d[..k].iter().sum::<f64>() / k as f64) as f32
}

/// Search constants for `bank` on the first `rank` coordinate axes: any orthonormal basis gives
/// an exact search; principal axes only make it faster.
struct AxisSearch {
    mean: Vec<f32>,
    basis: Vec<f32>,
    basis_mean: Vec<f32>,
    projected: Vec<f32>,
    residuals: Vec<f32>,
    radius: f32,
}

fn axis_search(bank: &[f32], dims: usize, rank: usize) -> AxisSearch {
    let entries = bank.len() / dims;
    let mean: Vec<f32> = (0..dims)
        .map(|i| bank.chunks(dims).map(|b| b[i]).sum::<f32>() / entries as f32)
        .collect();
    let basis: Vec<f32> = (0..rank * dims)
        .map(|n| if n / dims == n % dims { 1.0 } else { 0.0 })
        .collect();
    let basis_mean = mean[..rank].to_vec();
    let mut projected = vec![0.0; rank * entries];
    let mut residuals = Vec::new();
    let mut radius = 0.0f32;
    for (m, b) in bank.chunks(dims).enumerate() {
        let c: Vec<f64> = b
            .iter()
            .zip(&mean)
            .map(|(&x, &m)| f64::from(x - m))
            .collect();
        for j in 0..rank {
            projected[j * entries + m] = c[j] as f32;
        }
        residuals.push(c[rank..].iter().map(|x| x * x).sum::<f64>().sqrt() as f32);
        radius = radius.max(c.iter().map(|x| x * x).sum::<f64>().sqrt() as f32);
    }
    let mean_norm = mean.iter().map(|&m| f64::from(m * m)).sum::<f64>().sqrt() as f32;
    AxisSearch {
        basis_mean,
        radius: radius + mean_norm,
        mean,
        basis,
        projected,
        residuals,
    }
}

#[test]
fn patchcore_scores_are_mean_distances_to_the_nearest_entries() {
    let (dims, entries, cells) = (13, 40, 6);
    let bank = values(entries * dims, 7);
    let features = values(cells * dims, 8);
    for rank in [0, 2, 13] {
        let s = axis_search(&bank, dims, rank);
        let p = PatchCore {
            dims,
            bank: &bank,
            mean: &s.mean,
            basis: &s.basis,
            basis_mean: &s.basis_mean,
            projected: &s.projected,
            residuals: &s.residuals,
            radius: s.radius,
        };
        for k in [1, 3, 40] {
            let mut scratch = vec![0.0; PATCHCORE_GROUP * entries + k];
            let mut scores = vec![0.0; cells];
            patchcore_scores(&p, &features, &mut scratch, &mut scores).unwrap();
            let expected: Vec<f32> = features
                .chunks(dims)
                .map(|c| naive_patchcore(c, &bank, dims, k))
                .collect();
            assert_close(&scores, &expected, 1e-6);
        }
        // A cell equal to a bank entry is at distance 0 exactly (distances are sum (a - b)^2).
        let mut scores = [1.0];
        patchcore_scores(
            &p,
            &bank[dims..2 * dims],
            &mut [0.0; 4 * 40 + 1],
            &mut scores,
        )
        .unwrap();
        assert_eq!(scores[0], 0.0, "rank {rank}");
    }
    let s = axis_search(&bank, dims, 2);
    let p = PatchCore {
        dims,
        bank: &bank,
        mean: &s.mean,
        basis: &s.basis,
        basis_mean: &s.basis_mean,
        projected: &s.projected,
        residuals: &s.residuals,
        radius: s.radius,
    };
    // Scratch for 41 neighbours of 40 entries, then for none, then features one value short.
    assert!(patchcore_scores(&p, &features, &mut [0.0; 4 * 40 + 41], &mut [0.0; 6]).is_err());
    assert!(patchcore_scores(&p, &features, &mut [0.0; 4 * 40], &mut [0.0; 6]).is_err());
    assert!(patchcore_scores(&p, &features[1..], &mut [0.0; 4 * 40 + 1], &mut [0.0; 6]).is_err());
}

/// scikit-learn's `score_samples` for one sample, in f64, from full `[k][d][d]` factors.
fn naive_gmm(x: &[f32], means: &[f32], chol: &[f32], weights: &[f64], d: usize) -> f64 {
    let terms: Vec<f64> = weights
        .iter()
        .enumerate()
        .map(|(k, w)| {
            let l = &chol[k * d * d..][..d * d];
            let mut q = 0.0;
            for j in 0..d {
                let y: f64 = (0..d)
                    .map(|i| {
                        (f64::from(x[i]) - f64::from(means[k * d + i])) * f64::from(l[i * d + j])
                    })
                    .sum();
                q += y * y;
            }
            let log_det: f64 = (0..d).map(|i| f64::from(l[i * d + i]).ln()).sum();
            w.ln() - 0.5 * (d as f64 * (2.0 * std::f64::consts::PI).ln() + q) + log_det
        })
        .collect();
    let max = terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln()
}

/// Upper-triangular factors with a positive diagonal, as scikit-learn's are.
fn upper_factors(k: usize, d: usize, seed: u64, diag_only: bool) -> Vec<f32> {
    let noise = values(k * d * d, seed);
    let mut l = vec![0.0; k * d * d];
    for c in 0..k {
        for i in 0..d {
            for j in i..d {
                let v = noise[(c * d + i) * d + j];
                l[(c * d + i) * d + j] = if i == j {
                    1.0 + v.abs()
                } else if diag_only {
                    0.0
                } else {
                    0.5 * v
                };
            }
        }
    }
    l
}

/// The compiler's canonical form: packed rows of `U^T`, and per-component log constants.
fn packed(l: &[f32], k: usize, d: usize) -> Vec<f32> {
    let mut out = Vec::new();
    for c in 0..k {
        for j in 0..d {
            out.extend((0..=j).map(|i| l[(c * d + i) * d + j]));
        }
    }
    out
}

fn log_constants(l: &[f32], weights: &[f64], d: usize) -> Vec<f32> {
    let ln_2pi = (2.0 * std::f64::consts::PI).ln();
    weights
        .iter()
        .enumerate()
        .map(|(c, w)| {
            let log_det: f64 = (0..d).map(|i| f64::from(l[(c * d + i) * d + i]).ln()).sum();
            (w.ln() - 0.5 * d as f64 * ln_2pi + log_det) as f32
        })
        .collect()
}

#[test]
fn gmm_full_log_likelihood_matches_scikit_learns_formula() {
    let (k, d) = (3, 11);
    let means = values(k * d, 11);
    let l = upper_factors(k, d, 12, false);
    let weights = [0.2f64, 0.5, 0.3];
    let precision = packed(&l, k, d);
    let constants = log_constants(&l, &weights, d);
    let g = GaussianMixture {
        dims: d,
        covariance: Covariance::Full,
        means: &means,
        precision: &precision,
        log_constants: &constants,
    };
    let features = values(4 * d, 13);
    let mut scratch = [0.0; 11];
    let mut lls = [0.0f64; 4];
    for (x, ll) in features.chunks(d).zip(&mut lls) {
        *ll = gmm_log_likelihood(&g, x, &mut scratch).unwrap();
        let expected = naive_gmm(x, &means, &l, &weights, d);
        assert!(
            (*ll - expected).abs() <= 1e-5 * expected.abs(),
            "{ll} vs {expected}"
        );
    }
    let mut scores = [0.0; 4];
    gmm_scores(
        &g,
        GmmScore::NegativeLogLikelihood,
        &features,
        &mut scratch,
        &mut scores,
    )
    .unwrap();
    assert_eq!(scores, lls.map(|v| (-v) as f32));
    let standardized = GmmScore::Standardized {
        mean: -8.0,
        std: 2.0,
    };
    gmm_scores(&g, standardized, &features, &mut scratch, &mut scores).unwrap();
    assert_eq!(scores, lls.map(|v| ((v + 8.0) / 2.0).abs() as f32));
    assert!(matches!(
        gmm_log_likelihood(&g, &features[..d], &mut scratch[..4]),
        Err(Error::Length {
            what: "scratch",
            ..
        })
    ));
    assert!(gmm_log_likelihood(&g, &features[..d - 1], &mut scratch).is_err());
    let short = GaussianMixture {
        precision: &precision[1..],
        ..g
    };
    assert!(gmm_log_likelihood(&short, &features[..d], &mut scratch).is_err());
}

#[test]
fn gmm_diag_equals_full_with_diagonal_factors() {
    let (k, d) = (2, 4);
    let means = values(k * d, 21);
    let full = upper_factors(k, d, 22, true);
    let diag: Vec<f32> = (0..k * d).map(|n| full[n * d + n % d]).collect();
    let weights = [0.3f64, 0.7];
    let precision = packed(&full, k, d);
    let constants = log_constants(&full, &weights, d);
    let g_full = GaussianMixture {
        dims: d,
        covariance: Covariance::Full,
        means: &means,
        precision: &precision,
        log_constants: &constants,
    };
    let g_diag = GaussianMixture {
        covariance: Covariance::Diag,
        precision: &diag,
        ..g_full
    };
    let x = values(d, 23);
    let a = gmm_log_likelihood(&g_full, &x, &mut [0.0; 4]).unwrap();
    let b = gmm_log_likelihood(&g_diag, &x, &mut [0.0; 4]).unwrap();
    assert!((a - b).abs() <= 1e-6 * a.abs(), "{a} vs {b}");
    let expected = naive_gmm(&x, &means, &full, &weights, d);
    assert!((b - expected).abs() <= 1e-5 * expected.abs());
}

#[test]
fn project_maps_each_cell_through_the_matrix() {
    // Two cells of 3 values, a 2x3 matrix.
    let input = [1.0, 2.0, 3.0, -1.0, 0.0, 1.0];
    let matrix = [1.0, 0.0, 1.0, 0.5, 0.5, 0.5];
    let mut out = [0.0; 4];
    project(&input, 3, &matrix, &mut out).unwrap();
    assert_eq!(out, [4.0, 3.0, 0.0, 0.0]);
    assert!(project(&input, 3, &matrix[..5], &mut out).is_err());
    assert!(project(&input, 3, &matrix, &mut out[..3]).is_err());
    assert!(project(&input[..5], 3, &matrix, &mut out).is_err());
}

#[test]
fn summary_of_cells() {
    let s = summarize(&[1.0, 4.0, 2.0, 1.0], 4.0).unwrap();
    assert_eq!(
        s,
        Summary {
            max_score: 4.0,
            mean_score: 2.0,
            anomalous: true
        }
    );
    assert!(!summarize(&[1.0, 3.9], 4.0).unwrap().anomalous);
    assert!(summarize(&[], 1.0).is_err());
}

#[test]
fn dot_and_squared_distance_count_every_value_of_any_length() {
    // Lengths around the 16 lanes, so the tail summed apart is exercised with and without
    // whole blocks before it; a value dropped or counted twice would move the sums by ~1.
    for n in [0, 1, 7, 15, 16, 17, 31, 32, 33, 191, 192] {
        let a = values(n, 60 + n as u64);
        let b = values(n, 61 + n as u64);
        let dot_f64: f64 = a
            .iter()
            .zip(&b)
            .map(|(&x, &y)| f64::from(x) * f64::from(y))
            .sum();
        let dist_f64: f64 = a
            .iter()
            .zip(&b)
            .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
            .sum();
        assert_close(&[dot(&a, &b)], &[dot_f64 as f32], 1e-5);
        assert_close(&[squared_distance(&a, &b)], &[dist_f64 as f32], 1e-5);
    }
}
