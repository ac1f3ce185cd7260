//! Cross-checks of the runtime crate's kernels (what generated Rust calls) against the reference
//! executor's operators, which compute in CHW with OIHW weights: every case converts the
//! reference's tensors to the runtime's HWC / HWIO layouts and compares.

use fomo_ad::ir::ops::{Add, AvgPool, ChannelAffine, Clamp, Concat, Conv, MaxPool, Pad, Window};
use fomo_ad::ir::{Op, Shape, Tensor};
use fomo_ad_runtime as rt;

/// Deterministic values in [-scale, scale).
fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut state = seed ^ 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

fn tensor(shape: Shape, seed: u64) -> Tensor {
    Tensor::from_vec(shape, values(shape.len(), seed, 2.0))
}

fn rt_shape(s: Shape) -> rt::Shape {
    rt::Shape::new(s.h, s.w, s.c)
}

fn rt_window(w: &Window) -> rt::Window {
    rt::Window {
        kernel: w.kernel,
        stride: w.stride,
        dilation: w.dilation,
        pads: w.pads,
    }
}

fn rt_clamp(c: Option<Clamp>) -> rt::Clamp {
    c.map_or(rt::Clamp::NONE, |c| rt::Clamp::new(c.min, c.max))
}

/// OIHW (I = in / groups) to the runtime's general layout `[groups][kh][kw][in/g][out/g]`.
fn general_weights(conv: &Conv) -> Vec<f32> {
    let [kh, kw] = conv.window.kernel;
    let (ipg, opg) = (conv.in_per_group(), conv.out_per_group());
    let mut out = vec![0.0; conv.weights.len()];
    for g in 0..conv.groups {
        for o in 0..opg {
            for i in 0..ipg {
                for ky in 0..kh {
                    for kx in 0..kw {
                        out[(((g * kh + ky) * kw + kx) * ipg + i) * opg + o] =
                            conv.weights[conv.weight_index(g * opg + o, i, ky, kx)];
                    }
                }
            }
        }
    }
    out
}

/// OIHW to the depthwise layout `[kh][kw][channels]`.
fn depthwise_weights(conv: &Conv) -> Vec<f32> {
    let [kh, kw] = conv.window.kernel;
    let c = conv.out_channels;
    let mut out = vec![0.0; conv.weights.len()];
    for ch in 0..c {
        for ky in 0..kh {
            for kx in 0..kw {
                out[(ky * kw + kx) * c + ch] = conv.weights[conv.weight_index(ch, 0, ky, kx)];
            }
        }
    }
    out
}

/// Largest difference relative to max(|expected|, 1).
fn max_error(actual: &[f32], expected: &[f32]) -> f32 {
    assert_eq!(actual.len(), expected.len());
    actual
        .iter()
        .zip(expected)
        .map(|(a, e)| (a - e).abs() / e.abs().max(1.0))
        .fold(0.0, f32::max)
}

fn reference(op: &Op, inputs: &[&Tensor]) -> Tensor {
    let shapes: Vec<Shape> = inputs.iter().map(|t| t.shape).collect();
    let output = op.output_shape(&shapes).expect("test ops are well formed");
    op.reference(inputs, output)
}

fn conv_op(
    in_c: usize,
    out_c: usize,
    groups: usize,
    window: Window,
    activation: Option<Clamp>,
    seed: u64,
) -> Conv {
    let [kh, kw] = window.kernel;
    Conv {
        in_channels: in_c,
        out_channels: out_c,
        groups,
        window,
        weights: values(out_c * in_c / groups * kh * kw, seed, 0.5),
        bias: values(out_c, seed + 1, 0.5),
        activation,
    }
}

fn window(k: usize, s: usize, pads: [usize; 4]) -> Window {
    Window {
        kernel: [k, k],
        stride: [s, s],
        dilation: [1, 1],
        pads,
    }
}

type ConvKernel = fn(&rt::Conv2d, &[f32], &[f32], &[f32], &mut [f32]) -> Result<(), rt::Error>;

/// The 1x1 kernel given `[in][out]` weights: re-laid out into its blocks of 16 outputs (as
/// `codegen::program` does), no skip connection.
fn pointwise_from_general_layout(
    p: &rt::Conv2d,
    input: &[f32],
    weights: &[f32],
    bias: &[f32],
    out: &mut [f32],
) -> Result<(), rt::Error> {
    let (in_c, out_c, block) = (p.input.c, p.output.c, rt::POINTWISE_BLOCK);
    let mut blocked = vec![0.0; rt::pointwise_weights_len(in_c, out_c)];
    for i in 0..in_c {
        for o in 0..out_c {
            blocked[((o / block) * in_c + i) * block + o % block] = weights[i * out_c + o];
        }
    }
    let mut padded = bias.to_vec();
    padded.resize(out_c.div_ceil(block) * block, 0.0);
    rt::conv2d_pointwise(p, input, &blocked, &padded, out, false)
}

#[test]
fn conv_kernels_match_the_reference_conv() {
    let dilated = Window {
        dilation: [2, 1],
        ..window(3, 1, [2, 1, 2, 1])
    };
    let cases: Vec<(Conv, Shape, ConvKernel)> = vec![
        // MobileNetV2's stem: 3x3 stride 2, asymmetric (Keras "same") padding, relu6.
        (
            conv_op(3, 8, 1, window(3, 2, [0, 0, 1, 1]), Some(Clamp::RELU6), 1),
            Shape::new(3, 12, 10),
            rt::conv2d,
        ),
        (
            conv_op(6, 4, 2, dilated, None, 2),
            Shape::new(6, 7, 7),
            rt::conv2d,
        ),
        (
            conv_op(16, 24, 1, window(1, 1, [0; 4]), None, 3),
            Shape::new(16, 6, 5),
            pointwise_from_general_layout,
        ),
        (
            conv_op(24, 24, 24, window(3, 1, [1; 4]), Some(Clamp::RELU6), 4),
            Shape::new(24, 6, 6),
            rt::conv2d_depthwise,
        ),
        (
            conv_op(8, 8, 8, window(3, 2, [0, 0, 1, 1]), Some(Clamp::RELU), 5),
            Shape::new(8, 9, 9),
            rt::conv2d_depthwise,
        ),
    ];
    for (n, (conv, in_shape, kernel)) in cases.into_iter().enumerate() {
        let input = tensor(in_shape, 100 + n as u64);
        let op = Op::Conv(conv.clone());
        let expected = reference(&op, &[&input]);
        let p = rt::Conv2d {
            input: rt_shape(in_shape),
            output: rt_shape(expected.shape),
            window: rt_window(&conv.window),
            groups: conv.groups,
            clamp: rt_clamp(conv.activation),
        };
        // Pointwise weights `[in][out]` are the general layout with one group and a 1x1 window.
        let weights = if conv.is_depthwise() {
            depthwise_weights(&conv)
        } else {
            general_weights(&conv)
        };
        let mut out = vec![f32::NAN; expected.shape.len()];
        kernel(&p, &input.to_hwc(), &weights, &conv.bias, &mut out).unwrap();
        let error = max_error(&out, &expected.to_hwc());
        assert!(
            error <= 1e-5,
            "case {n} ({}): error {error}",
            conv.flavour()
        );
        // The general kernel computes the specialised cases too.
        let weights = general_weights(&conv);
        rt::conv2d(&p, &input.to_hwc(), &weights, &conv.bias, &mut out).unwrap();
        assert!(
            max_error(&out, &expected.to_hwc()) <= 1e-5,
            "case {n} general"
        );
    }
}

#[test]
fn pools_match_the_reference_pools() {
    let input = tensor(Shape::new(5, 12, 12), 7);
    let pools = [
        // PatchCore's 3x3 neighbourhood (stride 1, same padding) and GMM's 4x4 stride 2 valid.
        (window(3, 1, [1; 4]), false),
        (window(3, 1, [1; 4]), true),
        (window(4, 2, [0; 4]), false),
        (window(2, 2, [0, 0, 1, 1]), false),
    ];
    for (n, (w, count_include_pad)) in pools.into_iter().enumerate() {
        let avg = reference(
            &Op::AvgPool(AvgPool {
                window: w,
                count_include_pad,
            }),
            &[&input],
        );
        let p = rt::Pool2d {
            input: rt_shape(input.shape),
            output: rt_shape(avg.shape),
            window: rt_window(&w),
            count_include_pad,
        };
        let mut out = vec![0.0; avg.shape.len()];
        rt::avg_pool(&p, &input.to_hwc(), &mut out).unwrap();
        assert!(max_error(&out, &avg.to_hwc()) <= 1e-6, "avg pool {n}");
        let max = reference(&Op::MaxPool(MaxPool { window: w }), &[&input]);
        rt::max_pool(&p, &input.to_hwc(), &mut out).unwrap();
        assert_eq!(out, max.to_hwc(), "max pool {n}");
    }
}

#[test]
fn elementwise_kernels_match_the_reference_ops() {
    let shape = Shape::new(4, 3, 5);
    let (a, b) = (tensor(shape, 1), tensor(shape, 2));
    let (a_hwc, b_hwc) = (a.to_hwc(), b.to_hwc());
    let mut out = vec![0.0; shape.len()];

    for activation in [
        None,
        Some(Clamp::RELU6),
        Some(Clamp {
            min: -0.5,
            max: 0.5,
        }),
    ] {
        let expected = reference(&Op::Add(Add { activation }), &[&a, &b]).to_hwc();
        rt::add(rt_clamp(activation), &a_hwc, &b_hwc, &mut out).unwrap();
        assert_eq!(out, expected);
        let mut acc = a_hwc.clone();
        rt::add_in_place(rt_clamp(activation), &mut acc, &b_hwc).unwrap();
        assert_eq!(acc, expected);
    }

    let clamp = Clamp {
        min: -1.0,
        max: 0.25,
    };
    let expected = reference(&Op::Clamp(clamp), &[&a]).to_hwc();
    rt::clamp(rt_clamp(Some(clamp)), &a_hwc, &mut out).unwrap();
    assert_eq!(out, expected);

    let affine = ChannelAffine {
        scale: values(4, 3, 2.0),
        bias: values(4, 4, 1.0),
    };
    let expected = reference(&Op::ChannelAffine(affine.clone()), &[&a]).to_hwc();
    rt::channel_affine(&a_hwc, &affine.scale, &affine.bias, &mut out).unwrap();
    assert_eq!(out, expected);

    let pads = [1, 0, 2, 3];
    let padded = reference(&Op::Pad(Pad { pads }), &[&a]);
    let mut out = vec![f32::NAN; padded.shape.len()];
    rt::pad(rt_shape(shape), pads, &a_hwc, &mut out).unwrap();
    assert_eq!(out, padded.to_hwc());
}

#[test]
fn copy_channels_concatenates_like_the_reference_concat() {
    let (a, b) = (
        tensor(Shape::new(3, 4, 4), 5),
        tensor(Shape::new(5, 4, 4), 6),
    );
    let expected = reference(&Op::Concat(Concat), &[&a, &b]);
    let mut out = vec![f32::NAN; expected.shape.len()];
    rt::copy_channels(&a.to_hwc(), 3, 8, 0, &mut out).unwrap();
    rt::copy_channels(&b.to_hwc(), 5, 8, 3, &mut out).unwrap();
    assert_eq!(out, expected.to_hwc());
}

/// Upper-triangular precision factors with a positive diagonal (scikit-learn's form).
fn upper_factors(components: usize, dim: usize, seed: u64) -> Vec<f32> {
    let noise = values(components * dim * dim, seed, 0.3);
    (0..components * dim * dim)
        .map(|n| {
            let (i, j) = ((n / dim) % dim, n % dim);
            match i.cmp(&j) {
                std::cmp::Ordering::Less => noise[n],
                std::cmp::Ordering::Equal => 0.5 + noise[n].abs(),
                std::cmp::Ordering::Greater => 0.0,
            }
        })
        .collect()
}

#[test]
fn patchcore_kernel_matches_the_reference_scorer() {
    use fomo_ad::codegen::program::PatchCoreSearch;
    use fomo_ad::scorer::PatchCore;
    let (dim, entries, cells) = (24, 50, 9);
    for neighbors in [1, 3] {
        let reference = PatchCore {
            pool_size: 1,
            neighbors,
            memory_bank: values(entries * dim, 20, 3.0),
            dim,
            sampling_ratio: 1.0,
        };
        // The search constants exactly as the compiler derives them from the bank.
        let search = PatchCoreSearch::of(&reference.memory_bank, dim);
        // Cells near bank entries as well as far from them.
        let mut features = values(cells * dim, 21, 3.0);
        features[..dim].copy_from_slice(&reference.memory_bank[5 * dim..6 * dim]);
        features[dim] += 1e-3;
        let p = rt::PatchCore {
            dims: dim,
            bank: &reference.memory_bank,
            mean: &search.mean,
            basis: &search.basis,
            basis_mean: &search.basis_mean,
            projected: &search.projected,
            residuals: &search.residuals,
            radius: search.radius,
        };
        // The compiler plans the scratch the runtime (and the C kernel) expect.
        assert_eq!(
            rt::PATCHCORE_GROUP,
            fomo_ad::codegen::program::PATCHCORE_GROUP
        );
        let mut scratch = vec![0.0; rt::PATCHCORE_GROUP * entries + neighbors];
        let mut scores = vec![0.0; cells];
        rt::patchcore_scores(&p, &features, &mut scratch, &mut scores).unwrap();
        let expected: Vec<f32> = features
            .chunks(dim)
            .map(|cell| reference.cell_score(cell))
            .collect();
        assert!(
            max_error(&scores, &expected) <= 1e-6,
            "k={neighbors}: {scores:?} vs {expected:?}"
        );
    }
}

#[test]
fn gmm_kernels_match_the_reference_scorer() {
    use fomo_ad::scorer::{Covariance, Gmm, GmmScore};
    let (channels, dim, components) = (12, 7, 3);
    for covariance in [Covariance::Full, Covariance::Diag] {
        let full = upper_factors(components, dim, 30);
        let precisions_cholesky = match covariance {
            Covariance::Full => full.clone(),
            Covariance::Diag => (0..components * dim)
                .map(|n| full[n * dim + n % dim])
                .collect(),
        };
        let reference = Gmm {
            pool_kernel: 1,
            pool_stride: 1,
            projection: Some(values(dim * channels, 31, 0.5)),
            covariance,
            components,
            dim,
            means: values(components * dim, 32, 1.0),
            precisions_cholesky: precisions_cholesky.clone(),
            log_weights: [0.2f32, 0.3, 0.5].iter().map(|w| w.ln()).collect(),
            score_mode: GmmScore::Standardized {
                mean: -12.0,
                std: 4.0,
            },
        };
        // The compiler's canonical form: packed rows of U^T (full), log constants per component.
        let precision: Vec<f32> = match covariance {
            Covariance::Full => (0..components)
                .flat_map(|k| {
                    let u = &full[k * dim * dim..(k + 1) * dim * dim];
                    (0..dim).flat_map(move |j| (0..=j).map(move |i| u[i * dim + j]))
                })
                .collect(),
            Covariance::Diag => precisions_cholesky,
        };
        let log_constants: Vec<f32> = reference
            .component_log_constants()
            .iter()
            .map(|&c| c as f32)
            .collect();
        let mixture = rt::GaussianMixture {
            dims: dim,
            covariance: match covariance {
                Covariance::Full => rt::Covariance::Full,
                Covariance::Diag => rt::Covariance::Diag,
            },
            means: &reference.means,
            precision: &precision,
            log_constants: &log_constants,
        };
        let cells = 5;
        let pooled = values(cells * channels, 33, 2.0);
        let mut projected = vec![0.0; cells * dim];
        rt::project(
            &pooled,
            channels,
            reference.projection.as_ref().unwrap(),
            &mut projected,
        )
        .unwrap();
        let expected_projection: Vec<f32> = pooled
            .chunks(channels)
            .flat_map(|cell| reference.project(cell))
            .collect();
        assert!(max_error(&projected, &expected_projection) <= 1e-6);
        let mut scratch = vec![0.0; dim];
        let mut scores = vec![0.0; cells];
        let score = rt::GmmScore::Standardized {
            mean: -12.0,
            std: 4.0,
        };
        rt::gmm_scores(&mixture, score, &projected, &mut scratch, &mut scores).unwrap();
        for (cell, (x, &got)) in projected.chunks(dim).zip(&scores).enumerate() {
            let ll = reference.log_likelihood(x);
            let ll_rt = rt::gmm_log_likelihood(&mixture, x, &mut scratch).unwrap();
            assert!(
                (ll_rt - ll).abs() <= 1e-5 * ll.abs().max(1.0),
                "{covariance:?} cell {cell}: {ll_rt} vs {ll}"
            );
            let expected = reference.score_from_log_likelihood(ll);
            assert!(
                (got - expected).abs() <= 1e-5 * expected.abs().max(1.0),
                "{covariance:?} cell {cell}: {got} vs {expected}"
            );
        }
    }
}

#[test]
fn weight_statics_are_aligned_as_the_compiler_counts_them() {
    // The emitter declares every weight as `kernels::Aligned<[f32; N]>` and reports the flash
    // they take assuming this alignment; both must be the runtime type's.
    assert_eq!(
        std::mem::align_of::<rt::Aligned<[f32; 3]>>(),
        fomo_ad::codegen::rust::WEIGHT_ALIGNMENT
    );
    assert_eq!(
        std::mem::size_of::<rt::Aligned<[f32; 17]>>(),
        (17 * 4usize).next_multiple_of(fomo_ad::codegen::rust::WEIGHT_ALIGNMENT)
    );
}
