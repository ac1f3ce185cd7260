//! The static memory planner: buffer sizes and lifetimes in, offsets in one arena out.
//!
//! It knows nothing of graphs or ops (the lowering in `codegen::program` turns tensors into
//! [`Buffer`]s), so it is easy to test and to reuse for scorer scratch space. Two buffers may
//! share bytes only if their lifetimes (inclusive step ranges) are disjoint, or if one is marked
//! to run in place of the other and the other dies at the very step the first is born.
//!
//! Placement is greedy first-fit (each buffer goes into the lowest gap left by the buffers already
//! placed that are live at the same time); several orders are tried and the smallest arena wins.
//! [`lower_bound`] (the largest sum of simultaneously live sizes) is what no planner that keeps
//! whole tensors can beat; [`Plan`] reports both so the gap is visible.

/// One buffer to place: `size` bytes, live from `first_step` to `last_step` inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buffer {
    pub size: usize,
    pub first_step: usize,
    pub last_step: usize,
    /// The buffer this one may overwrite (an elementwise op writing its result over an input).
    /// Honoured when that buffer's last step is this one's first step and it is at least as large;
    /// ignored otherwise.
    pub in_place_of: Option<usize>,
}

impl Buffer {
    pub fn new(size: usize, first_step: usize, last_step: usize) -> Buffer {
        Buffer {
            size,
            first_step,
            last_step,
            in_place_of: None,
        }
    }
    pub fn in_place_of(self, input: usize) -> Buffer {
        Buffer {
            in_place_of: Some(input),
            ..self
        }
    }
}

/// Where every buffer lives in the arena.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Byte offset of each buffer, in the order given; each a multiple of the alignment.
    pub offsets: Vec<usize>,
    /// Bytes the arena needs (a multiple of the alignment).
    pub arena_size: usize,
    /// [`lower_bound`] of the same buffers, for reporting.
    pub lower_bound: usize,
    /// Which buffers share memory with the buffer they run in place of.
    pub in_place: Vec<bool>,
}

fn align_up(n: usize, alignment: usize) -> usize {
    n.div_ceil(alignment) * alignment
}

/// A set of buffers that occupy the same bytes (a chain of in-place ops), planned as one.
#[derive(Clone, Copy, Debug)]
struct Group {
    size: usize,
    first: usize,
    last: usize,
}

impl Group {
    fn overlaps(&self, other: &Group) -> bool {
        self.first <= other.last && other.first <= self.last
    }
}

/// Resolves in-place requests: returns each buffer's group, the groups, and which requests held.
fn groups(buffers: &[Buffer], alignment: usize) -> (Vec<usize>, Vec<Group>, Vec<bool>) {
    let mut group_of = Vec::with_capacity(buffers.len());
    let mut groups: Vec<Group> = Vec::new();
    let mut honoured = vec![false; buffers.len()];
    for (i, b) in buffers.iter().enumerate() {
        assert!(
            b.first_step <= b.last_step,
            "buffer {i} dies before it is born"
        );
        let size = align_up(b.size.max(1), alignment);
        let target = b.in_place_of.filter(|&j| {
            j < i
                && buffers[j].last_step == b.first_step
                && buffers[j].size >= b.size
                // Two buffers born from the same input cannot both take its place.
                && !buffers[..i].iter().enumerate().any(|(k, other)| {
                    honoured[k] && other.in_place_of == Some(j)
                })
        });
        match target {
            Some(j) => {
                let g = group_of[j];
                let group: &mut Group = &mut groups[g];
                group.size = group.size.max(size);
                group.last = group.last.max(b.last_step);
                group_of.push(g);
                honoured[i] = true;
            }
            None => {
                group_of.push(groups.len());
                groups.push(Group {
                    size,
                    first: b.first_step,
                    last: b.last_step,
                });
            }
        }
    }
    (group_of, groups, honoured)
}

fn peak(groups: &[Group]) -> usize {
    // The live set only grows at a birth, so checking every first step is enough.
    groups
        .iter()
        .map(|g| {
            groups
                .iter()
                .filter(|o| o.first <= g.first && g.first <= o.last)
                .map(|o| o.size)
                .sum::<usize>()
        })
        .max()
        .unwrap_or(0)
}

/// The largest total size of buffers live at one step (after in-place sharing and alignment):
/// no placement of whole buffers can use less.
pub fn lower_bound(buffers: &[Buffer], alignment: usize) -> usize {
    let (_, groups, _) = groups(buffers, alignment);
    peak(&groups)
}

/// First-fit placement of groups in the given order; returns offsets and the arena size.
fn place(groups: &[Group], order: &[usize], alignment: usize) -> (Vec<usize>, usize) {
    let mut offsets = vec![usize::MAX; groups.len()];
    let mut placed: Vec<usize> = Vec::with_capacity(groups.len());
    let mut arena = 0;
    for &g in order {
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&p| groups[p].overlaps(&groups[g]))
            .map(|&p| (offsets[p], offsets[p] + groups[p].size))
            .collect();
        busy.sort_unstable();
        let mut offset = 0;
        for (start, end) in busy {
            if offset + groups[g].size <= start {
                break;
            }
            offset = offset.max(align_up(end, alignment));
        }
        offsets[g] = offset;
        arena = arena.max(offset + groups[g].size);
        placed.push(g);
    }
    (offsets, arena)
}

/// Places every buffer; offsets and the arena size are multiples of `alignment` (bytes, > 0).
pub fn plan(buffers: &[Buffer], alignment: usize) -> Plan {
    assert!(alignment > 0, "alignment must be positive");
    let (group_of, groups, in_place) = groups(buffers, alignment);
    let lower_bound = peak(&groups);
    let by = |key: &dyn Fn(&Group) -> (usize, usize, usize)| {
        let mut order: Vec<usize> = (0..groups.len()).collect();
        // Stable sort on a key, ties keep index order: deterministic.
        order.sort_by_key(|&g| key(&groups[g]));
        order
    };
    let orders = [
        by(&|g| (usize::MAX - g.size, g.first, 0)),
        by(&|g| {
            (
                usize::MAX - (g.last - g.first),
                usize::MAX - g.size,
                g.first,
            )
        }),
        by(&|g| (g.first, usize::MAX - g.size, 0)),
        by(&|g| (usize::MAX - g.size * (g.last - g.first + 1), g.first, 0)),
    ];
    let (offsets, arena_size) = orders
        .iter()
        .map(|order| place(&groups, order, alignment))
        .min_by_key(|(_, arena)| *arena)
        .expect("there is at least one order");
    Plan {
        offsets: group_of.iter().map(|&g| offsets[g]).collect(),
        arena_size,
        lower_bound,
        in_place,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The buffer at the start of `i`'s chain of honoured in-place requests.
    fn root(buffers: &[Buffer], plan: &Plan, i: usize) -> usize {
        match buffers[i].in_place_of {
            Some(j) if plan.in_place[i] => root(buffers, plan, j),
            _ => i,
        }
    }

    fn assert_disjoint_when_live_together(buffers: &[Buffer], plan: &Plan) {
        for i in 0..buffers.len() {
            for j in 0..i {
                let (a, b) = (&buffers[i], &buffers[j]);
                let together = a.first_step <= b.last_step && b.first_step <= a.last_step;
                if together && root(buffers, plan, i) != root(buffers, plan, j) {
                    let (ra, rb) = (
                        plan.offsets[i]..plan.offsets[i] + a.size,
                        plan.offsets[j]..plan.offsets[j] + b.size,
                    );
                    assert!(
                        ra.end <= rb.start || rb.end <= ra.start,
                        "buffers {i} {ra:?} and {j} {rb:?} are live together and overlap"
                    );
                }
            }
        }
    }

    #[test]
    fn random_schedules_never_overlap_and_stay_above_the_bound() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for _ in 0..200 {
            let n = rng.random_range(1..40);
            let mut buffers: Vec<Buffer> = Vec::new();
            for i in 0..n {
                let mut first = rng.random_range(0..30);
                let mut size = rng.random_range(1..5000);
                let mut source = None;
                if i > 0 && rng.random_bool(0.3) {
                    // An elementwise op reading an earlier buffer where it dies (usually).
                    let j = rng.random_range(0..i);
                    first = buffers[j].last_step;
                    size = size.min(buffers[j].size);
                    source = Some(j);
                }
                let mut b = Buffer::new(size, first, first + rng.random_range(0..6));
                if let Some(j) = source {
                    b = b.in_place_of(j);
                }
                buffers.push(b);
            }
            let plan = plan(&buffers, 16);
            assert_disjoint_when_live_together(&buffers, &plan);
            assert!(plan.arena_size >= plan.lower_bound);
            assert_eq!(plan.lower_bound, lower_bound(&buffers, 16));
            for (offset, b) in plan.offsets.iter().zip(&buffers) {
                assert_eq!(offset % 16, 0);
                assert!(offset + b.size <= plan.arena_size);
            }
        }
    }

    #[test]
    fn a_chain_of_layers_reaches_the_lower_bound() {
        // Each step reads the previous buffer and writes the next (a plain CNN).
        let sizes = [1000, 4000, 4000, 1000, 3000, 500];
        let buffers: Vec<Buffer> = sizes
            .iter()
            .enumerate()
            .map(|(i, &s)| Buffer::new(s, i, i + 1))
            .collect();
        let plan = plan(&buffers, 4);
        assert_eq!(plan.lower_bound, 8000);
        assert_eq!(plan.arena_size, plan.lower_bound);
        assert_disjoint_when_live_together(&buffers, &plan);
    }

    #[test]
    fn a_residual_block_reaches_the_lower_bound() {
        // x(0..3) -> expand(1..2) -> project(2..3) -> add(3..4) reading x and project.
        let buffers = [
            Buffer::new(100, 0, 3),
            Buffer::new(600, 1, 2),
            Buffer::new(100, 2, 3),
            Buffer::new(100, 3, 4),
        ];
        let plan = plan(&buffers, 4);
        assert_eq!(plan.lower_bound, 800);
        assert_eq!(plan.arena_size, 800);
        assert_disjoint_when_live_together(&buffers, &plan);
    }

    #[test]
    fn in_place_is_honoured_when_the_input_dies_there() {
        let buffers = [
            Buffer::new(400, 0, 1),
            Buffer::new(400, 1, 2).in_place_of(0),
            Buffer::new(400, 2, 3).in_place_of(1),
        ];
        let plan = plan(&buffers, 16);
        assert_eq!(plan.in_place, vec![false, true, true]);
        assert_eq!(plan.offsets, vec![0, 0, 0]);
        assert_eq!(plan.arena_size, 400);
        assert_eq!(plan.lower_bound, 400);
    }

    #[test]
    fn in_place_is_refused_when_the_input_is_read_later() {
        let buffers = [
            Buffer::new(400, 0, 2),
            Buffer::new(400, 1, 2).in_place_of(0),
        ];
        let plan = plan(&buffers, 16);
        assert_eq!(plan.in_place, vec![false, false]);
        assert_ne!(plan.offsets[0], plan.offsets[1]);
        assert_eq!(plan.arena_size, 800);
    }

    #[test]
    fn only_one_buffer_takes_an_input_s_place() {
        let buffers = [
            Buffer::new(64, 0, 1),
            Buffer::new(64, 1, 2).in_place_of(0),
            Buffer::new(64, 1, 2).in_place_of(0),
        ];
        let plan = plan(&buffers, 16);
        assert_eq!(plan.in_place, vec![false, true, false]);
        assert_ne!(plan.offsets[1], plan.offsets[2]);
        assert_disjoint_when_live_together(&buffers, &plan);
    }

    #[test]
    fn sizes_are_rounded_to_the_alignment() {
        let buffers = [Buffer::new(5, 0, 1), Buffer::new(5, 0, 1)];
        let plan = plan(&buffers, 64);
        assert_eq!(plan.arena_size, 128);
        assert_eq!(plan.lower_bound, 128);
    }
}
