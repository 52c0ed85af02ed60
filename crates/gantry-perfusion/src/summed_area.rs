//! Summed-area tables: the sum over any axis-aligned box of one slice in four look-ups, what
//! every wide in-plane window here is built on.

use std::ops::{Add, Sub};

/// Prefix sums of one `ny × nx` slice, with a zero row and column in front.
pub(crate) struct SummedArea<T> {
    w: usize,
    table: Vec<T>,
}

impl<T: Copy + Default + Add<Output = T> + Sub<Output = T>> SummedArea<T> {
    /// The table of `value(j · nx + i)` over the slice.
    pub(crate) fn new(ny: usize, nx: usize, value: impl Fn(usize) -> T) -> Self {
        let w = nx + 1;
        let mut table = vec![T::default(); (ny + 1) * w];
        for j in 0..ny {
            for i in 0..nx {
                table[(j + 1) * w + i + 1] =
                    table[j * w + i + 1] + table[(j + 1) * w + i] - table[j * w + i] + value(j * nx + i);
            }
        }
        SummedArea { w, table }
    }

    /// The sum over rows `j0..j1` and columns `i0..i1`.
    pub(crate) fn sum(&self, j0: usize, j1: usize, i0: usize, i1: usize) -> T {
        let (t, w) = (&self.table, self.w);
        t[j1 * w + i1] + t[j0 * w + i0] - t[j0 * w + i1] - t[j1 * w + i0]
    }
}

/// The `[j0, j1) × [i0, i1)` box of half-width `r` about (j, i), clipped to `ny × nx`.
pub(crate) fn box_around(j: usize, i: usize, r: usize, ny: usize, nx: usize) -> (usize, usize, usize, usize) {
    (j.saturating_sub(r), (j + r + 1).min(ny), i.saturating_sub(r), (i + r + 1).min(nx))
}
