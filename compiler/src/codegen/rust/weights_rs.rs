//! `src/weights.rs`: every constant as a `static` f32 array (flash, one copy) aligned to a cache
//! line (`kernels::Aligned`, so that no vector load of it straddles two lines), written as plain
//! text rather than through prettyplease so that memory banks of half a million values stay fast
//! to print. Each array is `#[rustfmt::skip]` with our own packed layout (rustfmt would put every
//! long literal on its own line).

use std::fmt::Write as _;

use super::{float_literal, static_name, Header};
use crate::codegen::program::Program;

/// Values are packed onto lines of at most this many columns.
const LINE_WIDTH: usize = 100;

pub(super) fn weights_rs(program: &Program, header: &Header) -> String {
    let mut out = header.commented("//");
    out.push_str(
        "//! Every constant of the model, in the layouts the kernels read (see each array's comment).\n\
         //! Literals are exact: each reads back as the f32 the compiler computed.\n\
         // Some of many thousands of trained values may happen to look like `PI` or `LN_2`, and\n\
         // exact literals are what we want: these lints would only be noise here.\n\
         #![allow(clippy::approx_constant, clippy::excessive_precision)]\n\n\
         use crate::kernels::Aligned;\n",
    );
    for constant in &program.constants {
        let dims: Vec<String> = constant.dims.iter().map(usize::to_string).collect();
        let _ = write!(
            out,
            "\n/// {}\n///\n/// Layout `{}`, dims {}.\n#[rustfmt::skip]\npub static {}: Aligned<[f32; {}]> = Aligned([\n",
            constant.comment,
            constant.layout,
            dims.join(" x "),
            static_name(&constant.name),
            constant.values.len()
        );
        let mut line = String::new();
        for v in &constant.values {
            let item = float_literal(*v);
            if !line.is_empty() && 4 + line.len() + 1 + item.len() + 1 > LINE_WIDTH {
                let _ = writeln!(out, "    {}", line.trim_end());
                line.clear();
            }
            line.push_str(&item);
            line.push_str(", ");
        }
        if !line.is_empty() {
            let _ = writeln!(out, "    {}", line.trim_end());
        }
        out.push_str("]);\n");
    }
    out
}
