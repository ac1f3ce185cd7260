use core::fmt;

/// Why a kernel refused to run. Every kernel checks its slices against the shapes it is given and
/// returns one of these instead of indexing out of bounds, so valid-looking calls never panic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// A slice is not as long as its shape requires.
    Length {
        /// Which argument (`"input"`, `"weights"`, ...).
        what: &'static str,
        expected: usize,
        actual: usize,
    },
    /// Shapes or parameters that do not describe a valid operation.
    Shape(&'static str),
    /// An arena region that lies outside the arena or overlaps the region being written.
    Region { offset: usize, len: usize },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Length {
                what,
                expected,
                actual,
            } => write!(f, "{what} holds {actual} values, expected {expected}"),
            Error::Shape(why) => write!(f, "invalid shape: {why}"),
            Error::Region { offset, len } => write!(
                f,
                "arena region at {offset} of {len} values is out of bounds or overlaps the output"
            ),
        }
    }
}

/// `Ok` when `actual == expected`, else the [`Error::Length`] naming `what`.
#[inline]
pub fn check_len(what: &'static str, actual: usize, expected: usize) -> Result<(), Error> {
    if actual == expected {
        Ok(())
    } else {
        Err(Error::Length {
            what,
            expected,
            actual,
        })
    }
}
