//! End-to-end tests of the `fomo-ad` binary: exit codes, one-line errors, JSON reports.
//! Wired into the compiler package (see compiler/Cargo.toml) so cargo builds the binary for them.

mod inspect;
