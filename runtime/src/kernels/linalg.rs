//! Vector helpers with sixteen independent accumulators (as the generated C's): f32 additions
//! are not reassociated by the compiler, so this is what lets it vectorise, and it also keeps
//! rounding errors lower than one long running sum.

use super::error::{check_len, Error};
use super::math::mul_add;

const LANES: usize = 16;

/// `sum_i left(a[i], b[i]) * right(a[i], b[i])` over the shorter of the two, in [`LANES`]
/// partial sums.
#[inline(always)]
fn reduce(a: &[f32], b: &[f32], factors: impl Fn(f32, f32) -> (f32, f32)) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let (a_blocks, b_blocks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (a_rest, b_rest) = (a_blocks.remainder(), b_blocks.remainder());
    for (x, y) in a_blocks.zip(b_blocks) {
        for ((lane, &u), &v) in lanes.iter_mut().zip(x).zip(y) {
            let (l, r) = factors(u, v);
            *lane = mul_add(l, r, *lane);
        }
    }
    // The tail in a sum of its own: adding it into the lanes takes a masked store that the
    // reduction below then reloads in pieces, a store-forwarding stall per call (the GMM
    // scorer's short dot products ran 1.65x slower).
    let mut tail = 0.0f32;
    for (&u, &v) in a_rest.iter().zip(b_rest) {
        let (l, r) = factors(u, v);
        tail = mul_add(l, r, tail);
    }
    // The lanes added in order onto the tail, as the C kernels do. Not a pairwise tree: with
    // one, LLVM vectorised the loop above 2 lanes wide; with this, one 16-wide register (seen
    // in the assembly; the GMM scorer ran 1.27x slower with the tree).
    lanes.iter().fold(tail, |total, &lane| total + lane)
}

/// `sum a[i] * b[i]` over the shorter of the two.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    reduce(a, b, |u, v| (u, v))
}

/// `sum (a[i] - b[i])^2` over the shorter of the two.
#[inline]
pub fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
    reduce(a, b, |u, v| (u - v, u - v))
}

/// A linear map of every cell: `output[cell][j] = sum_c matrix[j][c] * input[cell][c]`, with
/// `matrix` `[out_dims][in_dims]` (`in_dims = input values per cell`).
pub fn project(
    input: &[f32],
    in_dims: usize,
    matrix: &[f32],
    output: &mut [f32],
) -> Result<(), Error> {
    if in_dims == 0 || matrix.is_empty() || !matrix.len().is_multiple_of(in_dims) {
        return Err(Error::Shape("projection matrix is not [out][in]"));
    }
    if !input.len().is_multiple_of(in_dims) {
        return Err(Error::Shape("input is not a whole number of cells"));
    }
    let out_dims = matrix.len() / in_dims;
    check_len(
        "output",
        output.len(),
        (input.len() / in_dims).saturating_mul(out_dims),
    )?;
    for (cell, out) in input
        .chunks_exact(in_dims)
        .zip(output.chunks_exact_mut(out_dims))
    {
        for (o, row) in out.iter_mut().zip(matrix.chunks_exact(in_dims)) {
            *o = dot(row, cell);
        }
    }
    Ok(())
}
