use super::error::Error;

/// A value aligned to a 64-byte cache line. The generated weights are `static`s of this type:
/// an `[f32; N]` alone is only 4-byte aligned, so a 32- or 64-byte vector load of its rows can
/// straddle two cache lines, which measured 8-11 % of the backbone's time on an AVX-512 core.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Aligned<T>(pub T);

/// A slice of the arena, in f32 values (not bytes): `offset .. offset + len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub offset: usize,
    pub len: usize,
}

impl Region {
    pub const fn new(offset: usize, len: usize) -> Region {
        Region { offset, len }
    }

    /// One past the last value, or the error if that overflows or passes `limit`.
    fn end_within(self, limit: usize) -> Result<usize, Error> {
        self.offset
            .checked_add(self.len)
            .filter(|&end| end <= limit)
            .ok_or(Error::Region {
                offset: self.offset,
                len: self.len,
            })
    }
}

/// The values of `region`, checked against the arena's bounds.
pub fn region(arena: &[f32], region: Region) -> Result<&[f32], Error> {
    let end = region.end_within(arena.len())?;
    Ok(&arena[region.offset..end])
}

/// The values of `region` for writing (or updating in place).
pub fn region_mut(arena: &mut [f32], region: Region) -> Result<&mut [f32], Error> {
    let end = region.end_within(arena.len())?;
    Ok(&mut arena[region.offset..end])
}

/// Borrows `N` input regions for reading and one output region for writing from the same arena,
/// without `unsafe`: the arena is split around the output, and each input must lie entirely
/// before or after it (inputs may overlap each other). An input that overlaps the output, or any
/// region outside the arena, is an [`Error::Region`].
pub fn split<const N: usize>(
    arena: &mut [f32],
    inputs: [Region; N],
    output: Region,
) -> Result<([&[f32]; N], &mut [f32]), Error> {
    let out_end = output.end_within(arena.len())?;
    let (head, rest) = arena.split_at_mut(output.offset);
    let (out, tail) = rest.split_at_mut(output.len);
    let (head, tail): (&[f32], &[f32]) = (head, tail);
    let mut slices: [&[f32]; N] = [&[]; N];
    for (slot, input) in slices.iter_mut().zip(inputs) {
        let end = input.end_within(out_end + tail.len())?;
        *slot = if input.len == 0 {
            &[]
        } else if end <= output.offset {
            &head[input.offset..end]
        } else if input.offset >= out_end {
            &tail[input.offset - out_end..end - out_end]
        } else {
            return Err(Error::Region {
                offset: input.offset,
                len: input.len,
            });
        };
    }
    Ok((slices, out))
}
