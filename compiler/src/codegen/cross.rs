//! The footprint of generated C on a microcontroller, measured with its cross compiler
//! (`fomo-ad compile --target`): the library is compiled exactly as a firmware build would, then
//! `arm-none-eabi-size` gives flash (code, constants) and RAM (the static arena), and GCC's call
//! graph with stack usage (`-fcallgraph-info=su`) gives the deepest stack below `NAME_run`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use super::GeneratedFile;
use crate::error::{Error, Result};

/// Microcontrollers the footprint can be measured for (hard-float, single-precision FPU).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Arm Cortex-M4F (FPv4-SP), e.g. STM32F4, nRF52; QEMU's mps2-an386.
    CortexM4,
    /// Arm Cortex-M7 with its single-precision FPv5 subset, e.g. STM32F7/H7; QEMU's mps2-an500.
    CortexM7,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::CortexM4 => "cortex-m4",
            Target::CortexM7 => "cortex-m7",
        }
    }

    /// The code generation flags of a firmware build for this core.
    pub fn flags(self) -> &'static [&'static str] {
        match self {
            Target::CortexM4 => &[
                "-mcpu=cortex-m4",
                "-mthumb",
                "-mfloat-abi=hard",
                "-mfpu=fpv4-sp-d16",
            ],
            Target::CortexM7 => &[
                "-mcpu=cortex-m7",
                "-mthumb",
                "-mfloat-abi=hard",
                "-mfpu=fpv5-sp-d16",
            ],
        }
    }
}

/// The cross compiler and its size tool (Debian: gcc-arm-none-eabi, libnewlib-arm-none-eabi).
const GCC: &str = "arm-none-eabi-gcc";
const SIZE: &str = "arm-none-eabi-size";

/// What a generated library costs on a target, in bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Footprint {
    pub target: Target,
    /// `arm-none-eabi-gcc (...) 12.2.1 ...`: the first line of `--version`.
    pub compiler: String,
    /// Every flag the library was compiled with.
    pub flags: Vec<String>,
    /// Flash for machine code (`.text`) of the library itself.
    pub code_bytes: u64,
    /// Flash for constants: weights, scorer parameters, window descriptors (`.rodata`, `.data`).
    pub constant_bytes: u64,
    /// RAM the library reserves statically: the arena (`.bss`, `.data`).
    pub arena_bytes: u64,
    /// The deepest chain of the library's own stack frames below `NAME_run`, that frame included.
    pub stack_bytes: u64,
    /// Functions outside the library that `NAME_run` reaches (`memcpy`, `expf`, ...): their code
    /// and stack come from the C library and are not counted above.
    pub external_calls: Vec<String>,
}

/// Compiles the generated C library `name` (from `files`) for `target` and measures it.
pub fn measure(files: &[GeneratedFile], name: &str, target: Target) -> Result<Footprint> {
    let work = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let dir = work.path();
    for file in files {
        let path = dir.join(&file.path);
        std::fs::write(&path, &file.contents).map_err(|e| Error::io(&path, e))?;
    }
    let compiler = tool_output(Command::new(GCC).arg("--version"), dir)?
        .lines()
        .next()
        .unwrap_or(GCC)
        .to_string();
    let mut flags: Vec<String> = target.flags().iter().map(|f| f.to_string()).collect();
    flags.extend(super::harness::C_FLAGS.iter().map(|f| f.to_string()));
    let mut sizes = BTreeMap::new();
    let mut call_graph = String::new();
    for unit in [name.to_string(), format!("{name}_weights")] {
        let object = dir.join(format!("{unit}.o"));
        tool_output(
            Command::new(GCC)
                .current_dir(dir)
                .args(&flags)
                .args(["-fstack-usage", "-fcallgraph-info=su", "-c"])
                .arg(format!("{unit}.c"))
                .arg("-o")
                .arg(&object),
            dir,
        )?;
        let size_report = tool_output(Command::new(SIZE).arg("-A").arg(&object), dir)?;
        for (section, bytes) in parse_section_sizes(&size_report) {
            *sizes.entry(section).or_insert(0) += bytes;
        }
        let graph = dir.join(format!("{unit}.ci"));
        call_graph += &std::fs::read_to_string(&graph).map_err(|e| Error::io(&graph, e))?;
    }
    let section = |prefix: &str| -> u64 {
        sizes
            .iter()
            .filter(|(s, _)| *s == prefix || s.starts_with(&format!("{prefix}.")))
            .map(|(_, b)| b)
            .sum()
    };
    let entry = format!("{name}_run");
    let stack = deepest_stack(&call_graph, &entry).map_err(|e| Error::input(dir, e))?;
    Ok(Footprint {
        target,
        compiler,
        flags,
        code_bytes: section(".text"),
        constant_bytes: section(".rodata") + section(".data"),
        arena_bytes: section(".bss") + section(".data"),
        stack_bytes: stack.bytes,
        external_calls: stack.external,
    })
}

/// Runs a tool and returns its stdout; a missing tool or a failure is one line.
fn tool_output(command: &mut Command, dir: &Path) -> Result<String> {
    let program = command.get_program().to_string_lossy().into_owned();
    let output = command.output().map_err(|e| {
        Error::usage(format!(
            "cannot run {program} ({e}): measuring a Cortex-M footprint needs the GNU Arm toolchain on PATH (Debian: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi)"
        ))
    })?;
    if !output.status.success() {
        let first = crate::codegen::first_error_line(&output.stderr);
        return Err(Error::input(dir, format!("{program} failed: {first}")));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The `section size` rows of `size -A` output (System V format).
fn parse_section_sizes(report: &str) -> Vec<(String, u64)> {
    report
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let section = fields.next()?;
            let bytes = fields.next()?.parse().ok()?;
            section
                .starts_with('.')
                .then(|| (section.to_string(), bytes))
        })
        .collect()
}

/// The deepest stack below a function, from GCC's `-fcallgraph-info=su` graphs.
#[derive(Debug, PartialEq, Eq)]
struct StackDepth {
    bytes: u64,
    /// Reachable functions the graphs hold no frame size for (the C library's).
    external: Vec<String>,
}

/// Walks the call graph (VCG text: `node: { title: "T" label: "name\nfile:line\nN bytes
/// (static)" }` and `edge: { sourcename: "A" targetname: "B" }` lines) from the node whose
/// function is `entry`. Unbounded dynamic frames (`alloca`, VLAs) and recursion are errors.
fn deepest_stack(call_graph: &str, entry: &str) -> std::result::Result<StackDepth, String> {
    let quoted = |line: &str, key: &str| -> Option<String> {
        let start = line.find(&format!("{key}: \""))? + key.len() + 3;
        let len = line[start..].find('"')?;
        Some(line[start..start + len].to_string())
    };
    // title -> (function name, frame bytes or None for functions without stack information)
    let mut nodes: BTreeMap<String, (String, Option<u64>)> = BTreeMap::new();
    let mut edges: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in call_graph.lines() {
        let line = line.trim();
        if line.starts_with("node:") {
            let title = quoted(line, "title").ok_or("a call graph node without a title")?;
            let label = quoted(line, "label").unwrap_or_default();
            let parts: Vec<&str> = label.split("\\n").collect();
            let frame = match parts.get(2) {
                Some(usage) => {
                    let (bytes, kind) = usage
                        .split_once(" bytes ")
                        .ok_or_else(|| format!("unreadable stack usage `{usage}` of {title}"))?;
                    // `dynamic,bounded` frames have their bound printed; plain `dynamic` ones none.
                    if kind != "(static)" && kind != "(dynamic,bounded)" {
                        return Err(format!(
                            "{} has a {kind} stack frame: no static bound",
                            parts[0]
                        ));
                    }
                    Some(
                        bytes
                            .parse()
                            .map_err(|_| format!("unreadable stack usage `{usage}`"))?,
                    )
                }
                None => None,
            };
            // A function without stack information is named by its title (`memcpy`), not its
            // label (`__builtin_memcpy`).
            let function = if frame.is_some() { parts[0] } else { &title }.to_string();
            nodes.insert(title, (function, frame));
        } else if line.starts_with("edge:") {
            let from = quoted(line, "sourcename").ok_or("a call graph edge without a source")?;
            let to = quoted(line, "targetname").ok_or("a call graph edge without a target")?;
            edges.entry(from).or_default().push(to);
        }
    }
    let root = nodes
        .iter()
        .find(|(_, (function, frame))| function == entry && frame.is_some())
        .map(|(title, _)| title.clone())
        .ok_or_else(|| format!("the call graph has no function {entry}"))?;
    let mut external = std::collections::BTreeSet::new();
    let mut memo = BTreeMap::new();
    let bytes = depth(
        &root,
        &nodes,
        &edges,
        &mut memo,
        &mut Vec::new(),
        &mut external,
    )?;
    Ok(StackDepth {
        bytes,
        external: external.into_iter().collect(),
    })
}

fn depth(
    title: &str,
    nodes: &BTreeMap<String, (String, Option<u64>)>,
    edges: &BTreeMap<String, Vec<String>>,
    memo: &mut BTreeMap<String, u64>,
    path: &mut Vec<String>,
    external: &mut std::collections::BTreeSet<String>,
) -> std::result::Result<u64, String> {
    if let Some(&known) = memo.get(title) {
        return Ok(known);
    }
    if path.iter().any(|t| t == title) {
        return Err(format!("recursion through {title}: no static stack bound"));
    }
    let frame = match nodes.get(title) {
        Some((_, Some(frame))) => *frame,
        other => {
            external.insert(other.map_or(title, |(f, _)| f.as_str()).to_string());
            return Ok(0);
        }
    };
    path.push(title.to_string());
    let mut deepest_callee = 0;
    for callee in edges.get(title).map(Vec::as_slice).unwrap_or(&[]) {
        deepest_callee = deepest_callee.max(depth(callee, nodes, edges, memo, path, external)?);
    }
    path.pop();
    memo.insert(title.to_string(), frame + deepest_callee);
    Ok(frame + deepest_callee)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Abridged from arm-none-eabi-gcc 12 `-fcallgraph-info=su` output for a generated GMM model.
    const GRAPH: &str = r#"graph: { title: "m.c"
node: { title: "m.c:conv_pointwise" label: "conv_pointwise\nm_kernels.h:44:13\n64 bytes (static)" }
node: { title: "memcpy" label: "__builtin_memcpy\n<built-in>" shape : ellipse }
edge: { sourcename: "m.c:conv_pointwise" targetname: "memcpy" }
node: { title: "m.c:run_scorer.constprop.0" label: "run_scorer.constprop\nm.c:135:13\n88 bytes (static)" }
node: { title: "expf" label: "expf\n/usr/include/newlib/math.h:361:14" shape : ellipse }
edge: { sourcename: "m.c:run_scorer.constprop.0" targetname: "expf" label: "m_kernels.h:208:23" }
node: { title: "m.c:run_backbone.constprop.0" label: "run_backbone.constprop\nm.c:44:13\n104 bytes (static)" }
edge: { sourcename: "m.c:run_backbone.constprop.0" targetname: "m.c:conv_pointwise" label: "m.c:59:5" }
node: { title: "m_run" label: "m_run\nm.c:175:5\n24 bytes (static)" }
edge: { sourcename: "m_run" targetname: "m.c:run_backbone.constprop.0" label: "m.c:168:5" }
edge: { sourcename: "m_run" targetname: "m.c:run_scorer.constprop.0" label: "m.c:169:5" }
node: { title: "m_run_f32" label: "m_run_f32\nm.c:184:5\n8 bytes (static)" }
}
"#;

    #[test]
    fn the_deepest_chain_of_frames_is_summed_and_library_calls_listed() {
        let depth = deepest_stack(GRAPH, "m_run").expect("a bounded graph");
        // m_run 24 + run_backbone 104 + conv_pointwise 64 beats m_run 24 + run_scorer 88.
        assert_eq!(depth.bytes, 24 + 104 + 64);
        assert_eq!(depth.external, ["expf", "memcpy"]);
        assert_eq!(deepest_stack(GRAPH, "m_run_f32").unwrap().bytes, 8);
        assert!(deepest_stack(GRAPH, "missing").is_err());
    }

    #[test]
    fn unbounded_stacks_are_errors() {
        let bounded = GRAPH.replace("64 bytes (static)", "64 bytes (dynamic,bounded)");
        assert_eq!(
            deepest_stack(&bounded, "m_run").unwrap().bytes,
            24 + 104 + 64
        );
        let dynamic = GRAPH.replace("64 bytes (static)", "64 bytes (dynamic)");
        let err = deepest_stack(&dynamic, "m_run").unwrap_err();
        assert!(err.contains("conv_pointwise"), "{err}");
        let recursive = GRAPH.replace(
            "targetname: \"memcpy\" }",
            "targetname: \"m.c:run_backbone.constprop.0\" }",
        );
        let err = deepest_stack(&recursive, "m_run").unwrap_err();
        assert!(err.contains("recursion"), "{err}");
    }

    #[test]
    fn section_sizes_come_from_size_dash_a() {
        let report = "m.o  :\nsection             size   addr\n.text               2836      0\n.data                  0      0\n.bss              552960      0\n.rodata              192      0\n.comment              39      0\nTotal             556079\n\n\n";
        assert_eq!(
            parse_section_sizes(report),
            [
                (".text".to_string(), 2836),
                (".data".to_string(), 0),
                (".bss".to_string(), 552960),
                (".rodata".to_string(), 192),
                (".comment".to_string(), 39),
            ]
        );
    }
}
