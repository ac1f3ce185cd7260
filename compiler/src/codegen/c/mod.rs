//! The C emitter: prints a [`Program`] as a C99 library (API header, straight-line model, weights,
//! the kernels it uses, CMakeLists.txt, README.md). It decides nothing numeric: offsets, layouts
//! and constants all come from the program. Templates live in `templates/c/`.

use askama::Template;

use super::program::{
    Bounds, ConstId, Covariance, GmmNormalisation, Kernel, Operand, Program, ScorerStage, Step,
};
use super::{header_lines, GeneratedFile};
use crate::error::{Error, Result};
use crate::ir::ops::Window;

/// Default library name.
pub const DEFAULT_NAME: &str = "fomo_ad";

/// C99 and C11 keywords, and C++ keywords a C header included from C++ must not use either.
const KEYWORDS: &[&str] = &[
    "auto",
    "break",
    "case",
    "char",
    "const",
    "continue",
    "default",
    "do",
    "double",
    "else",
    "enum",
    "extern",
    "float",
    "for",
    "goto",
    "if",
    "inline",
    "int",
    "long",
    "register",
    "restrict",
    "return",
    "short",
    "signed",
    "sizeof",
    "static",
    "struct",
    "switch",
    "typedef",
    "union",
    "unsigned",
    "void",
    "volatile",
    "while",
    "bool",
    "true",
    "false",
    "alignas",
    "alignof",
    "asm",
    "catch",
    "class",
    "constexpr",
    "decltype",
    "delete",
    "explicit",
    "export",
    "friend",
    "mutable",
    "namespace",
    "new",
    "noexcept",
    "nullptr",
    "operator",
    "private",
    "protected",
    "public",
    "template",
    "this",
    "throw",
    "try",
    "typeid",
    "typename",
    "using",
    "virtual",
];

/// Checks a library name: it becomes a C identifier prefix (`NAME_run`) and, upper-cased, a macro
/// prefix (`NAME_INPUT_WIDTH`), so it must be lower-case ASCII and stay clear of every name the C
/// standard reserves (leading underscore, double underscore, `str`/`mem`/`is`/`to`/`wcs` + letter
/// for functions, `E` + digit or letter, `SIG`, `LC_`, `PRI`, `SCN`, `FLT_`/`DBL_`/`LDBL_`,
/// `INT`/`UINT` for macros).
pub fn validate_name(name: &str) -> Result<()> {
    let fail = |why: &str| {
        Err(Error::usage(format!(
            "--name `{}`: {why}",
            super::sanitize_comment(name)
        )))
    };
    let mut chars = name.chars();
    match chars.next() {
        None => return fail("is empty"),
        Some(c) if !c.is_ascii_lowercase() => return fail("must start with a lower-case letter"),
        _ => {}
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return fail("may hold only lower-case ASCII letters, digits and underscores");
    }
    if name.contains("__") {
        return fail("contains a double underscore (reserved in C and C++)");
    }
    if name.len() > 40 {
        return fail("is longer than 40 characters");
    }
    if KEYWORDS.contains(&name) {
        return fail("is a C or C++ keyword");
    }
    let second_is_lower = |prefix: &str| {
        name.strip_prefix(prefix)
            .and_then(|rest| rest.chars().next())
            .is_some_and(|c| c.is_ascii_lowercase())
    };
    if ["str", "mem", "is", "to", "wcs"]
        .iter()
        .any(|p| second_is_lower(p))
    {
        return fail("starts like a name reserved for the C library (str*, mem*, is*, to*, wcs*)");
    }
    let upper = name.to_ascii_uppercase();
    let after_e = upper.strip_prefix('E').and_then(|r| r.chars().next());
    if after_e.is_some_and(|c| c.is_ascii_alphanumeric())
        || [
            "SIG", "LC_", "PRI", "SCN", "FLT_", "DBL_", "LDBL_", "INT", "UINT",
        ]
        .iter()
        .any(|p| upper.starts_with(p))
    {
        return fail("its upper-case form starts like a macro name reserved by the C standard headers (E*, SIG*, LC_*, PRI*, SCN*, FLT_*, INT*, ...)");
    }
    Ok(())
}

/// A C float literal that reads back as exactly `v` (Rust's shortest round-trip digits, which are
/// at most 9 significant ones, plus `f`). Constants are checked finite when the program is built.
pub fn float_literal(v: f32) -> String {
    assert!(v.is_finite(), "programs hold only finite constants");
    format!("{v:?}f")
}

/// Wraps header lines in a C block comment.
fn c_header(lines: &[String]) -> String {
    let mut s = String::from("/*\n");
    for line in lines {
        s += &format!(" * {line}\n");
    }
    s + " */"
}

struct ConstantView {
    symbol: String,
    len: usize,
    comment: String,
    layout: String,
    dims: String,
    body: String,
}

#[derive(Default)]
struct KernelSet {
    window: bool,
    clamp_value: bool,
    conv_pointwise: bool,
    conv_depthwise: bool,
    conv_general: bool,
    add: bool,
    clamp: bool,
    channel_affine: bool,
    avg_pool: bool,
    max_pool: bool,
    pad: bool,
    copy_channels: bool,
    patchcore: bool,
    /// Dot products in partial sums (PatchCore, projections, full covariances).
    dot: bool,
    project: bool,
    gmm: bool,
    gmm_full: bool,
    gmm_diag: bool,
}

impl KernelSet {
    fn of(program: &Program) -> KernelSet {
        let mut k = KernelSet::default();
        for step in &program.steps {
            match step.kernel {
                Kernel::ConvPointwise { .. } => k.conv_pointwise = true,
                Kernel::ConvDepthwise { .. } => k.conv_depthwise = true,
                Kernel::ConvGeneral { .. } => k.conv_general = true,
                Kernel::Add { .. } => k.add = true,
                Kernel::Clamp(_) => k.clamp = true,
                Kernel::ChannelAffine { .. } => k.channel_affine = true,
                Kernel::AvgPool { .. } => k.avg_pool = true,
                Kernel::MaxPool { .. } => k.max_pool = true,
                Kernel::Pad { .. } => k.pad = true,
                Kernel::Concat => k.copy_channels = true,
            }
        }
        match &program.scorer {
            ScorerStage::PatchCore(pc) => {
                k.patchcore = true;
                k.avg_pool |= pc.pool > 1;
            }
            ScorerStage::Gmm(g) => {
                k.avg_pool = true;
                k.project = g.projection.is_some();
                k.gmm = true;
                k.gmm_full = g.covariance == Covariance::Full;
                k.gmm_diag = g.covariance == Covariance::Diag;
            }
        }
        k.window = k.conv_depthwise || k.conv_general || k.avg_pool || k.max_pool;
        k.dot = k.patchcore || k.project || k.gmm_full;
        k.clamp_value = k.conv_pointwise || k.conv_depthwise || k.conv_general || k.add || k.clamp;
        k
    }
}

#[derive(Template)]
#[template(path = "api.h", config = "../templates/c/askama.toml", escape = "none")]
struct ApiHeader<'a> {
    header: &'a str,
    name: &'a str,
    upper: &'a str,
    scorer_summary: &'a str,
    input_w: usize,
    input_h: usize,
    input_c: usize,
    grid_w: usize,
    grid_h: usize,
    threshold: &'a str,
    arena_bytes: usize,
    alignment: usize,
    pixel_format: &'a str,
}

#[derive(Template)]
#[template(
    path = "weights.h",
    config = "../templates/c/askama.toml",
    escape = "none"
)]
struct WeightsHeader<'a> {
    header: &'a str,
    name: &'a str,
    upper: &'a str,
    alignment: usize,
    constants: &'a [ConstantView],
}

#[derive(Template)]
#[template(
    path = "weights.c",
    config = "../templates/c/askama.toml",
    escape = "none"
)]
struct WeightsSource<'a> {
    header: &'a str,
    name: &'a str,
    upper: &'a str,
    constants: &'a [ConstantView],
}

#[derive(Template)]
#[template(
    path = "kernels.h",
    config = "../templates/c/askama.toml",
    escape = "none"
)]
struct KernelsHeader<'a> {
    header: &'a str,
    name: &'a str,
    upper: &'a str,
    k: &'a KernelSet,
}

#[derive(Template)]
#[template(
    path = "model.c",
    config = "../templates/c/askama.toml",
    escape = "none"
)]
struct ModelSource<'a> {
    header: &'a str,
    name: &'a str,
    upper: &'a str,
    arena_bytes: usize,
    lower_bound_bytes: usize,
    input_scale: &'a str,
    input_offset: &'a str,
    input_offset_floats: usize,
    feature_shape: String,
    feature_offset_floats: usize,
    backbone_code: &'a str,
    scorer_summary: &'a str,
    scorer_code: &'a str,
}

#[derive(Template)]
#[template(
    path = "CMakeLists.txt",
    config = "../templates/c/askama.toml",
    escape = "none"
)]
struct CMakeLists<'a> {
    header: &'a str,
    name: &'a str,
    upper: &'a str,
}

struct RowView {
    index: String,
    label: String,
    kernel: String,
    input: String,
    output: String,
    constant_bytes: usize,
    macs: u64,
}

#[derive(Template)]
#[template(
    path = "README.md",
    config = "../templates/c/askama.toml",
    escape = "none"
)]
struct Readme<'a> {
    header: &'a str,
    name: &'a str,
    upper: &'a str,
    version: &'a str,
    backbone_name: &'a str,
    backbone_sha: &'a str,
    model_name: &'a str,
    model_sha: &'a str,
    feature_shape: String,
    scorer_summary: &'a str,
    input_w: usize,
    input_h: usize,
    input_c: usize,
    pixel_format: &'a str,
    pixel_scaling: String,
    grid_w: usize,
    grid_h: usize,
    threshold: &'a str,
    constant_bytes: usize,
    arena_bytes: usize,
    lower_bound_bytes: usize,
    backbone_macs: u64,
    scorer_macs: u64,
    /// The pruned PatchCore search's data-dependent part, or nothing.
    scorer_macs_note: &'static str,
    rows: Vec<RowView>,
    target: Option<TargetView>,
}

/// The footprint measured on a microcontroller (`fomo-ad compile --target`), for README.md.
struct TargetView {
    name: &'static str,
    compiler: String,
    flags: String,
    code_bytes: u64,
    constant_bytes: u64,
    arena_bytes: u64,
    stack_bytes: u64,
    external_note: String,
}

impl TargetView {
    fn of(f: &super::cross::Footprint, name: &str) -> TargetView {
        let external_note = if f.external_calls.is_empty() {
            String::new()
        } else {
            format!(
                "\n`{name}_run` also calls {} from the C library: their code and stack are not counted.\n",
                f.external_calls.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
            )
        };
        TargetView {
            name: f.target.name(),
            compiler: super::sanitize_comment(&f.compiler),
            flags: f.flags.join(" "),
            code_bytes: f.code_bytes,
            constant_bytes: f.constant_bytes,
            arena_bytes: f.arena_bytes,
            stack_bytes: f.stack_bytes,
            external_note,
        }
    }
}

/// Prints `program` as a C library named `name` (validated here). Files come back in a fixed
/// order; the same program and name always give the same bytes.
pub fn emit(program: &Program, name: &str) -> Result<Vec<GeneratedFile>> {
    emit_with_footprint(program, name, None)
}

/// [`emit`], with README.md also giving `footprint` (measured by [`super::cross::measure`] on
/// what [`emit`] printed: the other files are the same).
pub fn emit_with_footprint(
    program: &Program,
    name: &str,
    footprint: Option<&super::cross::Footprint>,
) -> Result<Vec<GeneratedFile>> {
    validate_name(name)?;
    let upper = name.to_ascii_uppercase();
    let lines = header_lines(program, &[("lang", "c".into()), ("name", name.into())]);
    let header = c_header(&lines);
    let symbol = |id: ConstId| format!("{name}_{}", program.constant(id).name);
    let scorer_summary = scorer_summary(program);
    let threshold = float_literal(program.threshold);
    let input = program.input.shape;
    let pixel_format = match input.c {
        1 => "grayscale".to_string(),
        3 => "RGB".to_string(),
        c => format!("{c} channels"),
    };
    let constants: Vec<ConstantView> = program
        .constants
        .iter()
        .map(|c| ConstantView {
            symbol: format!("{name}_{}", c.name),
            len: c.values.len(),
            comment: format!("{}: {}", c.name, c.comment),
            layout: c.layout.clone(),
            dims: c
                .dims
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(" x "),
            body: array_body(&c.values),
        })
        .collect();
    let kernels = KernelSet::of(program);
    let unbounded = format!("{upper}_UNBOUNDED");
    let backbone_code = program
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            format!(
                "    /* {} */\n{}",
                step_comment(i + 1, s),
                step_code(s, &symbol, &unbounded)
            )
        })
        .collect::<Vec<_>>()
        .join("\n\n");
    let scorer_code = scorer_code(program, &symbol);
    let render = |r: askama::Result<String>| -> Result<String> {
        r.map(|mut s| {
            if !s.ends_with('\n') {
                s.push('\n');
            }
            s
        })
        .map_err(|e| Error::usage(format!("internal error rendering C templates: {e}")))
    };
    let mut files = Vec::new();
    let mut add = |path: String, contents: String| files.push(GeneratedFile { path, contents });
    add(
        format!("{name}.h"),
        render(
            ApiHeader {
                header: &header,
                name,
                upper: &upper,
                scorer_summary: &scorer_summary,
                input_w: input.w,
                input_h: input.h,
                input_c: input.c,
                grid_w: program.grid.cols,
                grid_h: program.grid.rows,
                threshold: &threshold,
                arena_bytes: program.arena.bytes,
                alignment: program.arena.alignment,
                pixel_format: &pixel_format,
            }
            .render(),
        )?,
    );
    add(
        format!("{name}.c"),
        render(
            ModelSource {
                header: &header,
                name,
                upper: &upper,
                arena_bytes: program.arena.bytes,
                lower_bound_bytes: program.arena.lower_bound_bytes,
                input_scale: &symbol(program.input.scale),
                input_offset: &symbol(program.input.offset),
                input_offset_floats: program.input.output.offset,
                feature_shape: program.features.shape.to_string(),
                feature_offset_floats: program.features.offset,
                backbone_code: &backbone_code,
                scorer_summary: &scorer_summary,
                scorer_code: &scorer_code,
            }
            .render(),
        )?,
    );
    add(
        format!("{name}_kernels.h"),
        render(
            KernelsHeader {
                header: &header,
                name,
                upper: &upper,
                k: &kernels,
            }
            .render(),
        )?,
    );
    add(
        format!("{name}_weights.h"),
        render(
            WeightsHeader {
                header: &header,
                name,
                upper: &upper,
                alignment: program.arena.alignment,
                constants: &constants,
            }
            .render(),
        )?,
    );
    add(
        format!("{name}_weights.c"),
        render(
            WeightsSource {
                header: &header,
                name,
                upper: &upper,
                constants: &constants,
            }
            .render(),
        )?,
    );
    let hash_header = lines
        .iter()
        .map(|l| format!("# {l}"))
        .collect::<Vec<_>>()
        .join("\n");
    add(
        "CMakeLists.txt".into(),
        render(
            CMakeLists {
                header: &hash_header,
                name,
                upper: &upper,
            }
            .render(),
        )?,
    );
    let md_header = format!("<!--\n{}\n-->", lines.join("\n"));
    let mut readme = readme(
        program,
        name,
        &upper,
        &md_header,
        &scorer_summary,
        &threshold,
        &pixel_format,
    );
    readme.target = footprint.map(|f| TargetView::of(f, name));
    add("README.md".into(), render(readme.render())?);
    Ok(files)
}

fn readme<'a>(
    program: &'a Program,
    name: &'a str,
    upper: &'a str,
    header: &'a str,
    scorer_summary: &'a str,
    threshold: &'a str,
    pixel_format: &'a str,
) -> Readme<'a> {
    let p = &program.provenance;
    let input = program.input.shape;
    let scale = &program.constant(program.input.scale).values;
    let offset = &program.constant(program.input.offset).values;
    let pixel_scaling =
        if scale.windows(2).all(|w| w[0] == w[1]) && offset.windows(2).all(|w| w[0] == w[1]) {
            format!("pixel * {:?} + {:?}", scale[0], offset[0])
        } else {
            format!("pixel * {scale:?} + {offset:?} per channel")
        };
    let step_constant_bytes = |s: &Step| -> usize {
        let ids: Vec<ConstId> = match &s.kernel {
            Kernel::ConvPointwise { weights, bias, .. }
            | Kernel::ConvDepthwise { weights, bias, .. }
            | Kernel::ConvGeneral { weights, bias, .. } => vec![*weights, *bias],
            Kernel::ChannelAffine { scale, bias } => vec![*scale, *bias],
            _ => vec![],
        };
        ids.iter()
            .map(|id| program.constant(*id).values.len() * 4)
            .sum()
    };
    let mut rows: Vec<RowView> = program
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| RowView {
            index: (i + 1).to_string(),
            label: s.label.clone(),
            kernel: s.kernel.name().to_string(),
            input: s
                .inputs
                .iter()
                .map(|o| o.shape.to_string())
                .collect::<Vec<_>>()
                .join(" + "),
            output: s.output.shape.to_string(),
            constant_bytes: step_constant_bytes(s),
            macs: s.macs,
        })
        .collect();
    let scorer_constant_bytes = program.constant_bytes()
        - rows.iter().map(|r| r.constant_bytes).sum::<usize>()
        - (scale.len() + offset.len()) * 4;
    rows.push(RowView {
        index: "-".into(),
        label: "scorer".into(),
        kernel: program.scorer.name().into(),
        input: program.features.shape.to_string(),
        output: format!("{}x{} cells", program.grid.rows, program.grid.cols),
        constant_bytes: scorer_constant_bytes,
        macs: scorer_macs(program),
    });
    Readme {
        header,
        name,
        upper,
        version: &p.tool_version,
        backbone_name: &p.backbone.name,
        backbone_sha: &p.backbone.sha256,
        model_name: &p.model.name,
        model_sha: &p.model.sha256,
        feature_shape: program.features.shape.to_string(),
        scorer_summary,
        input_w: input.w,
        input_h: input.h,
        input_c: input.c,
        pixel_format,
        pixel_scaling,
        grid_w: program.grid.cols,
        grid_h: program.grid.rows,
        threshold,
        constant_bytes: program.constant_bytes(),
        arena_bytes: program.arena.bytes,
        lower_bound_bytes: program.arena.lower_bound_bytes,
        backbone_macs: program.backbone_macs(),
        scorer_macs: scorer_macs(program),
        scorer_macs_note: match program.scorer {
            ScorerStage::PatchCore(_) => {
                ", plus `dim` for each memory-bank row its bound cannot rule out (typically about 1 %)"
            }
            ScorerStage::Gmm(_) => "",
        },
        rows,
        target: None,
    }
}

/// Multiply-accumulates of the scorer per frame (distances / quadratic forms and projection).
/// For PatchCore, the fixed part of the pruned search (projection onto the principal axes and
/// the bound of every row) plus one exact distance per neighbour; the rows the bound cannot rule
/// out (about 1 % on MobileNetV2 features, data dependent) add `dim` each.
pub fn scorer_macs(program: &Program) -> u64 {
    let cells = program.grid.cells() as u64;
    match &program.scorer {
        ScorerStage::PatchCore(pc) => {
            let (dim, rank, rows) = (pc.dim as u64, pc.rank as u64, pc.memory_len as u64);
            cells * (rank * dim + rows * rank + pc.neighbors as u64 * dim)
        }
        ScorerStage::Gmm(g) => {
            let (d, k) = (g.dim as u64, g.components as u64);
            let per_component = match g.covariance {
                Covariance::Full => d * (d + 1) / 2 + d,
                Covariance::Diag => d,
            };
            let projection = g
                .projection
                .map_or(0, |_| d * program.features.shape.c as u64);
            cells * (k * per_component + projection)
        }
    }
}

fn scorer_summary(program: &Program) -> String {
    match &program.scorer {
        ScorerStage::PatchCore(pc) => format!(
            "PatchCore: {}x{} average pooling, mean L2 distance to the {} nearest of {} memory bank entries",
            pc.pool, pc.pool, pc.neighbors, pc.memory_len
        ),
        ScorerStage::Gmm(g) => format!(
            "GMM: {k}x{k} average pooling stride {s}{proj}, {n} {cov}-covariance components in {d} dimensions, {score}",
            k = g.pool_kernel,
            s = g.pool_stride,
            proj = if g.projection.is_some() { ", random projection" } else { "" },
            n = g.components,
            cov = match g.covariance {
                Covariance::Full => "full",
                Covariance::Diag => "diagonal",
            },
            d = g.dim,
            score = match g.normalisation {
                GmmNormalisation::Standardized { .. } => "score |loglik - mean| / std",
                GmmNormalisation::NegativeLogLikelihood => "score -loglik",
            }
        ),
    }
}

/// Array initialiser body: 8 literals a line.
fn array_body(values: &[f32]) -> String {
    values
        .chunks(8)
        .map(|chunk| {
            let literals: Vec<String> = chunk.iter().map(|v| float_literal(*v)).collect();
            format!("    {},", literals.join(", "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn arena(operand: &Operand) -> String {
    format!("arena + {}", operand.offset)
}

/// Clamp bounds as C arguments; a missing or infinite side is the `UNBOUNDED` macro.
fn bounds(b: &Option<Bounds>, unbounded: &str) -> (String, String) {
    let side = |v: f32| match v {
        v if v == f32::MAX => unbounded.to_string(),
        v if v == -f32::MAX => format!("-{unbounded}"),
        v => float_literal(v),
    };
    match b {
        Some(b) => (side(b.min), side(b.max)),
        None => (format!("-{unbounded}"), unbounded.to_string()),
    }
}

fn window_init(w: &Window) -> String {
    format!(
        "{{{}, {}, {}, {}, {}, {}, {}, {}}}",
        w.kernel[0],
        w.kernel[1],
        w.stride[0],
        w.stride[1],
        w.dilation[0],
        w.dilation[1],
        w.pads[0],
        w.pads[1]
    )
}

/// A call that needs a window: a block with the window as a local constant.
fn windowed(window: &Window, call: String) -> String {
    format!(
        "    {{\n        static const kernel_window window = {};\n        {call}\n    }}",
        window_init(window)
    )
}

fn activation_name(b: &Option<Bounds>) -> String {
    match b {
        None => String::new(),
        Some(b) if b.min == 0.0 && b.max == f32::MAX => ", relu".into(),
        Some(b) if b.min == 0.0 && b.max == 6.0 => ", relu6".into(),
        Some(b) => format!(", clamp {:?}..{:?}", b.min, b.max),
    }
}

fn step_comment(index: usize, s: &Step) -> String {
    let detail = match &s.kernel {
        Kernel::ConvPointwise {
            activation,
            residual,
            ..
        } => format!(
            "1x1{}{}",
            if *residual { ", + residual" } else { "" },
            activation_name(activation)
        ),
        Kernel::ConvDepthwise {
            window, activation, ..
        } => format!("{}{}", window.describe(), activation_name(activation)),
        Kernel::ConvGeneral {
            window,
            groups,
            activation,
            ..
        } => format!(
            "{}{}{}",
            window.describe(),
            if *groups > 1 {
                format!(" groups {groups}")
            } else {
                String::new()
            },
            activation_name(activation)
        ),
        Kernel::Add { activation } => format!("a + b{}", activation_name(activation)),
        Kernel::Clamp(b) => activation_name(&Some(*b)).trim_start_matches(", ").into(),
        Kernel::ChannelAffine { .. } => "x * scale + bias".into(),
        Kernel::AvgPool {
            window,
            count_include_pad,
        } => format!(
            "{}{}",
            window.describe(),
            if *count_include_pad {
                ", pads counted"
            } else {
                ""
            }
        ),
        Kernel::MaxPool { window } => window.describe(),
        Kernel::Pad { pads } => format!("pads {pads:?}"),
        Kernel::Concat => "channels".into(),
    };
    let inputs: Vec<String> = s.inputs.iter().map(|o| o.shape.to_string()).collect();
    let in_place = if s.inputs.iter().any(|i| i.offset == s.output.offset) {
        ", in place"
    } else {
        ""
    };
    format!(
        "{index}: {} ({} {detail}) {} -> {}{in_place}, {} MACs",
        s.label,
        s.kernel.name(),
        inputs.join(" + "),
        s.output.shape,
        s.macs
    )
}

fn step_code(s: &Step, symbol: &dyn Fn(ConstId) -> String, unbounded: &str) -> String {
    let (i, o) = (s.inputs[0], s.output);
    let (si, so) = (i.shape, o.shape);
    match &s.kernel {
        Kernel::ConvPointwise {
            weights,
            bias,
            activation,
            residual,
        } => {
            let (lo, hi) = bounds(activation, unbounded);
            format!(
                "    conv_pointwise({}, {}, {}, {}, {}, {}, {}, {}, {lo}, {hi});",
                arena(&i),
                si.h * si.w,
                si.c,
                arena(&o),
                so.c,
                symbol(*weights),
                symbol(*bias),
                u8::from(*residual)
            )
        }
        Kernel::ConvDepthwise {
            window,
            weights,
            bias,
            activation,
        } => {
            let (lo, hi) = bounds(activation, unbounded);
            windowed(
                window,
                format!(
                    "conv_depthwise({}, {}, {}, {}, {}, {}, {}, &window, {}, {}, {lo}, {hi});",
                    arena(&i),
                    si.h,
                    si.w,
                    si.c,
                    arena(&o),
                    so.h,
                    so.w,
                    symbol(*weights),
                    symbol(*bias)
                ),
            )
        }
        Kernel::ConvGeneral {
            window,
            groups,
            weights,
            bias,
            activation,
        } => {
            let (lo, hi) = bounds(activation, unbounded);
            windowed(
                window,
                format!(
                    "conv_general({}, {}, {}, {}, {}, {}, {}, {}, &window, {groups}, {}, {}, {lo}, {hi});",
                    arena(&i),
                    si.h,
                    si.w,
                    si.c,
                    arena(&o),
                    so.h,
                    so.w,
                    so.c,
                    symbol(*weights),
                    symbol(*bias)
                ),
            )
        }
        Kernel::Add { activation } => {
            let (lo, hi) = bounds(activation, unbounded);
            format!(
                "    add({}, {}, {}, {}, {lo}, {hi});",
                arena(&i),
                arena(&s.inputs[1]),
                arena(&o),
                so.len()
            )
        }
        Kernel::Clamp(b) => {
            let (lo, hi) = bounds(&Some(*b), unbounded);
            format!(
                "    clamp({}, {}, {}, {lo}, {hi});",
                arena(&i),
                arena(&o),
                so.len()
            )
        }
        Kernel::ChannelAffine { scale, bias } => format!(
            "    channel_affine({}, {}, {}, {}, {}, {});",
            arena(&i),
            arena(&o),
            si.h * si.w,
            si.c,
            symbol(*scale),
            symbol(*bias)
        ),
        Kernel::AvgPool {
            window,
            count_include_pad,
        } => windowed(
            window,
            format!(
                "avg_pool({}, {}, {}, {}, {}, {}, {}, &window, {});",
                arena(&i),
                si.h,
                si.w,
                si.c,
                arena(&o),
                so.h,
                so.w,
                i32::from(*count_include_pad)
            ),
        ),
        Kernel::MaxPool { window } => windowed(
            window,
            format!(
                "max_pool({}, {}, {}, {}, {}, {}, {}, &window);",
                arena(&i),
                si.h,
                si.w,
                si.c,
                arena(&o),
                so.h,
                so.w
            ),
        ),
        Kernel::Pad { pads } => format!(
            "    pad({}, {}, {}, {}, {}, {}, {}, {}, {});",
            arena(&i),
            si.h,
            si.w,
            si.c,
            arena(&o),
            so.h,
            so.w,
            pads[0],
            pads[1]
        ),
        Kernel::Concat => {
            let mut first = 0;
            let mut lines = Vec::new();
            for input in &s.inputs {
                lines.push(format!(
                    "    copy_channels({}, {}, {}, {}, {}, {first});",
                    arena(input),
                    input.shape.h * input.shape.w,
                    input.shape.c,
                    arena(&o),
                    so.c
                ));
                first += input.shape.c;
            }
            lines.join("\n")
        }
    }
}

fn scorer_code(program: &Program, symbol: &dyn Fn(ConstId) -> String) -> String {
    let f = program.features;
    let cells = program.grid.cells();
    let mut lines = Vec::new();
    if matches!(program.scorer, ScorerStage::Gmm(_)) {
        lines.push("    size_t cell;".to_string());
    }
    let pool =
        |lines: &mut Vec<String>, kernel: usize, stride: usize, pad: usize, out: &Operand| {
            let window = Window {
                kernel: [kernel, kernel],
                stride: [stride, stride],
                dilation: [1, 1],
                pads: [pad, pad, pad, pad],
            };
            lines.push(format!(
                "    /* {}x{} average pooling, stride {stride}{}: {} -> {} */",
                kernel,
                kernel,
                if pad > 0 {
                    ", same zero padding counted in the divisor"
                } else {
                    ", no padding"
                },
                f.shape,
                out.shape
            ));
            lines.push(windowed(
                &window,
                format!(
                    "avg_pool({}, {}, {}, {}, {}, {}, {}, &window, 1);",
                    arena(&f),
                    f.shape.h,
                    f.shape.w,
                    f.shape.c,
                    arena(out),
                    out.shape.h,
                    out.shape.w
                ),
            ));
        };
    match &program.scorer {
        ScorerStage::PatchCore(pc) => {
            if pc.pool > 1 {
                pool(&mut lines, pc.pool, 1, pc.pool / 2, &pc.pooled);
            }
            lines.push(format!(
                "    /* Mean distance to the {} nearest of {} memory bank entries, per cell. */",
                pc.neighbors, pc.memory_len
            ));
            lines.push(format!(
                "    patchcore_scores({}, {cells}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}[0], {}, result->cells);",
                arena(&pc.pooled),
                pc.dim,
                symbol(pc.bank),
                pc.memory_len,
                pc.neighbors,
                symbol(pc.mean),
                symbol(pc.basis),
                symbol(pc.basis_mean),
                pc.rank,
                symbol(pc.bank_projected),
                symbol(pc.bank_residuals),
                symbol(pc.bank_radius),
                arena(&pc.scratch)
            ));
        }
        ScorerStage::Gmm(g) => {
            pool(&mut lines, g.pool_kernel, g.pool_stride, 0, &g.pooled);
            let x = match &g.projection {
                Some((projection, projected)) => {
                    lines.push(format!(
                        "    /* Random projection of each cell: {} -> {} values. */",
                        g.pooled.shape.c, g.dim
                    ));
                    lines.push(format!(
                        "    project_cells({}, {}, {}, {}, {}, {});",
                        arena(&g.pooled),
                        program.grid.cells(),
                        g.pooled.shape.c,
                        symbol(*projection),
                        g.dim,
                        arena(projected)
                    ));
                    *projected
                }
                None => g.pooled,
            };
            lines.push(
                "    /* Log-likelihood of each cell under the mixture, then its score. */".into(),
            );
            lines.push(format!("    for (cell = 0; cell < {cells}; ++cell) {{"));
            let call = match g.covariance {
                Covariance::Full => format!(
                    "gmm_full_log_likelihood({} + cell * {}, {}, {}, {}, {}, {}, {})",
                    arena(&x),
                    g.dim,
                    g.dim,
                    g.components,
                    symbol(g.means),
                    symbol(g.precision),
                    symbol(g.log_constants),
                    arena(&g.scratch)
                ),
                Covariance::Diag => format!(
                    "gmm_diag_log_likelihood({} + cell * {}, {}, {}, {}, {}, {})",
                    arena(&x),
                    g.dim,
                    g.dim,
                    g.components,
                    symbol(g.means),
                    symbol(g.precision),
                    symbol(g.log_constants)
                ),
            };
            lines.push(format!("        const float loglik = {call};"));
            lines.push(match g.normalisation {
                GmmNormalisation::Standardized { mean, std } => format!(
                    "        result->cells[cell] = fabsf((loglik - {}[0]) / {}[0]);",
                    symbol(mean),
                    symbol(std)
                ),
                GmmNormalisation::NegativeLogLikelihood => {
                    "        result->cells[cell] = -loglik;".into()
                }
            });
            lines.push("    }".into());
        }
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codegen::program::PATCHCORE_GROUP;

    #[test]
    fn the_c_kernel_groups_as_many_cells_as_the_plan_gives_scratch_for() {
        let header = include_str!("../../../../templates/c/kernels.h");
        let define = format!("#define PATCHCORE_GROUP {PATCHCORE_GROUP}\n");
        assert!(header.contains(&define), "kernels.h lacks {define:?}");
    }

    #[test]
    fn float_literals_round_trip_exactly() {
        let values = [
            0.0f32,
            -0.0,
            1.0,
            -1.5,
            0.1,
            1e-7,
            f32::MIN_POSITIVE,
            1e-45,
            f32::MAX,
            -f32::MAX,
            std::f32::consts::PI,
            123456789.0,
        ];
        for v in values {
            let text = float_literal(v);
            assert!(text.ends_with('f'));
            assert!(
                text.contains('.') || text.contains('e'),
                "{text} is not a C float literal"
            );
            let back: f32 = text.trim_end_matches('f').parse().unwrap();
            assert_eq!(back.to_bits(), v.to_bits(), "{text}");
            let digits = text.chars().filter(|c| c.is_ascii_digit()).count();
            assert!(digits <= 12, "{text}");
        }
    }

    #[test]
    fn names_are_checked() {
        for good in ["fomo_ad", "model2", "a", "line_3_detector"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in [
            "", "_x", "Fomo", "2fast", "my-model", "a__b", "int", "class", "strange", "memo",
            "isolated", "today", "engine", "e2", "signal", "lc_x", "print", "int8", "uint_x",
            "fomo ad", "é",
        ] {
            assert!(validate_name(bad).is_err(), "{bad} was accepted");
        }
    }
}
