//! `--standalone`: the runtime's kernel modules, copied into the generated crate as
//! `src/kernels/`. They are compiled into fomo-ad from the runtime crate's own files, and those
//! modules only refer to each other through `super::`, so the copy builds unchanged.

use super::{GeneratedFile, Header};

/// Every file of `runtime/src/kernels/`, by name (a test checks the list is complete).
pub(crate) const KERNEL_SOURCES: &[(&str, &str)] = &[
    (
        "mod.rs",
        include_str!("../../../../runtime/src/kernels/mod.rs"),
    ),
    (
        "arena.rs",
        include_str!("../../../../runtime/src/kernels/arena.rs"),
    ),
    (
        "conv.rs",
        include_str!("../../../../runtime/src/kernels/conv.rs"),
    ),
    (
        "elementwise.rs",
        include_str!("../../../../runtime/src/kernels/elementwise.rs"),
    ),
    (
        "error.rs",
        include_str!("../../../../runtime/src/kernels/error.rs"),
    ),
    (
        "geometry.rs",
        include_str!("../../../../runtime/src/kernels/geometry.rs"),
    ),
    (
        "gmm.rs",
        include_str!("../../../../runtime/src/kernels/gmm.rs"),
    ),
    (
        "linalg.rs",
        include_str!("../../../../runtime/src/kernels/linalg.rs"),
    ),
    (
        "math.rs",
        include_str!("../../../../runtime/src/kernels/math.rs"),
    ),
    (
        "patchcore.rs",
        include_str!("../../../../runtime/src/kernels/patchcore.rs"),
    ),
    (
        "pool.rs",
        include_str!("../../../../runtime/src/kernels/pool.rs"),
    ),
    (
        "summary.rs",
        include_str!("../../../../runtime/src/kernels/summary.rs"),
    ),
];

pub(super) fn kernel_files(header: &Header) -> Vec<GeneratedFile> {
    KERNEL_SOURCES
        .iter()
        .map(|(name, source)| GeneratedFile {
            path: format!("src/kernels/{name}"),
            contents: format!(
                "{}// A verbatim copy of fomo-ad-runtime {}'s src/kernels/{name}.\n{source}",
                header.commented("//"),
                crate::VERSION
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::KERNEL_SOURCES;

    #[test]
    fn every_runtime_kernel_file_is_copied() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../runtime/src/kernels");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .expect("the runtime sources sit beside the compiler")
            .map(|e| {
                e.expect("readable entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        on_disk.sort();
        let mut listed: Vec<String> = KERNEL_SOURCES.iter().map(|(n, _)| n.to_string()).collect();
        listed.sort();
        assert_eq!(listed, on_disk);
        for (name, source) in KERNEL_SOURCES {
            assert!(
                !source.contains("crate::"),
                "{name} must refer to its siblings through `super::` to build when copied"
            );
        }
    }
}
