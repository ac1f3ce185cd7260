//! Temporary files and directories for atomic writes: created beside their target (so the final
//! rename stays on one file system) with the permissions a plain `create` would give, not the
//! owner-only ones temporary files usually get.

use std::path::Path;

use crate::error::{Error, Result};

/// A hidden temporary directory in `parent`, mode 0777 minus the umask (as `mkdir` gives).
pub fn staging_dir(parent: &Path, prefix: &str) -> Result<tempfile::TempDir> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o777));
    }
    builder
        .tempdir_in(parent)
        .map_err(|e| cannot_write(parent, e))
}

/// tempfile's errors carry the random name it tried; the folder and the reason are what matter.
fn cannot_write(dir: &Path, e: std::io::Error) -> Error {
    Error::input(dir, format!("cannot write here: {}", e.kind()))
}

/// Checks that a file can be written at `path` (it is not a folder, its folder exists), so a
/// command can refuse a bad output path before its work rather than after; returns the folder.
pub fn check_file_target(path: &Path) -> Result<&Path> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if path.is_dir() {
        return Err(Error::input(path, "is a directory; give a file name"));
    }
    if !dir.is_dir() {
        let why = if dir.exists() {
            "is not a directory"
        } else {
            "does not exist"
        };
        return Err(Error::input(
            path,
            format!("cannot write here: {} {why}", dir.display()),
        ));
    }
    Ok(dir)
}

/// A hidden temporary file in `dir` that will replace `target`: it gets `target`'s permissions
/// if it exists, else mode 0666 minus the umask (as `open` gives).
pub fn temp_file_for(target: &Path, dir: &Path) -> Result<tempfile::NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(".fomo-ad-");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let file = builder.tempfile_in(dir).map_err(|e| cannot_write(dir, e))?;
    if let Ok(existing) = std::fs::metadata(target) {
        file.as_file()
            .set_permissions(existing.permissions())
            .map_err(|e| Error::io(target, e))?;
    }
    Ok(file)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn temporaries_are_not_private_and_keep_the_target_mode() {
        let dir = tempfile::tempdir().unwrap();
        let staged = staging_dir(dir.path(), ".x-").unwrap();
        let mode = std::fs::metadata(staged.path())
            .unwrap()
            .permissions()
            .mode();
        assert_ne!(mode & 0o055, 0, "directory mode {mode:o} is owner-only");
        let target = dir.path().join("model.safetensors");
        let file = temp_file_for(&target, dir.path()).unwrap();
        let mode = file.as_file().metadata().unwrap().permissions().mode();
        assert_ne!(mode & 0o044, 0, "file mode {mode:o} is owner-only");
        std::fs::write(&target, "old").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).unwrap();
        let file = temp_file_for(&target, dir.path()).unwrap();
        let mode = file.as_file().metadata().unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
    }
}
