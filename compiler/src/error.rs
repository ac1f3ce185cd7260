//! The error type every fallible entry point returns. Each variant renders as one line that names
//! the file (and the node, tensor or key) at fault; the CLI prints it and exits with code 2.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Input { path: PathBuf, message: String },
    #[error("{}: node `{node}` has op `{op}`, which fomo-ad does not support{detail}", path.display())]
    Unsupported {
        path: PathBuf,
        node: String,
        op: String,
        detail: String,
    },
    #[error("{0}")]
    Usage(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }
    pub fn input(path: impl AsRef<Path>, message: impl Into<String>) -> Error {
        Error::Input {
            path: path.as_ref().to_path_buf(),
            message: one_line(&message.into()),
        }
    }
    pub fn unsupported(
        path: impl AsRef<Path>,
        node: &str,
        op: &str,
        detail: impl Into<String>,
    ) -> Error {
        let detail = detail.into();
        let detail = if detail.is_empty() {
            detail
        } else {
            format!(": {}", one_line(&detail))
        };
        Error::Unsupported {
            path: path.as_ref().to_path_buf(),
            node: one_line(node),
            op: one_line(op),
            detail,
        }
    }
    pub fn usage(message: impl Into<String>) -> Error {
        Error::Usage(one_line(&message.into()))
    }
}

/// Folds multi-line messages from libraries into one line, so every error stays a single line.
pub fn one_line(text: &str) -> String {
    text.split(['\n', '\r'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}
