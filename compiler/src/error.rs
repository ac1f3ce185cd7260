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

thread_local! {
    /// How many [`catch_panic`] calls the current thread is inside.
    static CATCHING: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Runs third-party code (tract, the image decoders) on untrusted input: a malformed file must
/// not crash fomo-ad even where that code panics, so a panic becomes an error naming the file.
/// Panic hooks can ask [`panic_is_caught`] to stay quiet meanwhile.
pub fn catch_panic<T>(path: &Path, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    CATCHING.with(|c| c.set(c.get() + 1));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(c.get() - 1));
    outcome.unwrap_or_else(|payload| {
        Err(Error::input(
            path,
            format!("{what} failed on this file ({})", panic_message(&*payload)),
        ))
    })
}

/// Whether the current thread runs inside [`catch_panic`], whose panics become errors.
pub fn panic_is_caught() -> bool {
    CATCHING.with(|c| c.get() > 0)
}

/// The text of a panic payload (`panic!` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_string());
    one_line(&text)
}
