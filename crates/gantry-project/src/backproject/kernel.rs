//! The column kernel of the voxel-driven backprojection (and of Joseph's fast path): along a
//! voxel column, the row index on the detector is linear in the voxel index, so one view adds
//! `w0·col0(r) + w1·col1(r)`, linearly interpolated at `r(k) = r0 + rk·k`, to every voxel.
//! Detector columns are stored transposed and padded with zero rows, so every read is in
//! bounds. Portable scalar code, and AVX2 + FMA code that looks rows up with lane permutes.

/// Zero rows before and after each padded detector column.
pub(crate) const PAD_LO: usize = 2;
pub(crate) const PAD_HI: usize = 10;

/// One view's walk along a voxel column: padded row index r(k) = r0 + rk·k and the weights of
/// its two detector columns (bilinear in u, times the distance weight and view factor).
#[derive(Clone, Copy, Debug)]
pub struct Lane {
    pub r0: f32,
    pub rk: f32,
    pub w0: f32,
    pub w1: f32,
}

impl Lane {
    /// The same walk started `dk` voxels later.
    pub fn advanced(&self, dk: f32) -> Lane {
        Lane { r0: self.r0 + self.rk * dk, ..*self }
    }
}

/// The column kernel: AVX2 + FMA code, or portable scalar code. The AVX2 kernel can only be
/// obtained on a CPU that has both ([`ColumnKernel::avx2`] is `None` elsewhere), so no safe
/// call can run an instruction the CPU lacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColumnKernel(Isa);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Isa {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl ColumnKernel {
    /// The portable kernel (any CPU).
    pub fn portable() -> Self {
        ColumnKernel(Isa::Scalar)
    }

    /// The AVX2 + FMA kernel, when this CPU has both.
    pub fn avx2() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return Some(ColumnKernel(Isa::Avx2));
        }
        None
    }

    /// The fastest kernel this CPU runs.
    pub fn detect() -> Self {
        Self::avx2().unwrap_or_else(Self::portable)
    }

    /// "avx2" or "portable".
    pub fn name(self) -> &'static str {
        match self.0 {
            Isa::Scalar => "portable",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => "avx2",
        }
    }

    /// Adds `w0·col0(r) + w1·col1(r)`, linearly interpolated at r(k), to every `acc[k]`.
    /// Indices are clamped into the padded columns (whose ends are zero), so any input is
    /// memory-safe.
    pub fn run(self, acc: &mut [f32], col0: &[f32], col1: &[f32], l: &Lane) {
        match self.0 {
            Isa::Scalar => column_scalar(acc, col0, col1, l, 0),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: Isa::Avx2 is only constructed (in `avx2`) when the CPU has AVX2 and FMA.
            Isa::Avx2 => unsafe { column_avx2(acc, col0, col1, l) },
        }
    }

    /// As [`ColumnKernel::run`], with voxel k's contribution times `weights[k]` (the cone
    /// weighting's fading shares). `weights` must be as long as `acc`.
    pub fn run_weighted(self, acc: &mut [f32], col0: &[f32], col1: &[f32], l: &Lane, weights: &[f32]) {
        assert_eq!(acc.len(), weights.len(), "one weight per voxel");
        match self.0 {
            Isa::Scalar => column_weighted_scalar(acc, col0, col1, l, weights, 0),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: Isa::Avx2 is only constructed (in `avx2`) when the CPU has AVX2 and FMA.
            Isa::Avx2 => unsafe { column_weighted_avx2(acc, col0, col1, l, weights) },
        }
    }

    /// N views over the same voxels: the same as `run` for each, in one pass.
    pub fn run_n<const N: usize>(self, acc: &mut [f32], views: [(&[f32], &[f32], &Lane); N]) {
        match self.0 {
            Isa::Scalar => {
                for v in views {
                    column_scalar(acc, v.0, v.1, v.2, 0);
                }
            }
            #[cfg(target_arch = "x86_64")]
            // SAFETY: Isa::Avx2 is only constructed (in `avx2`) when the CPU has AVX2 and FMA.
            Isa::Avx2 => unsafe { column_n_avx2(acc, views) },
        }
    }
}

/// The portable inner loop, from `acc[start]` on.
#[inline(always)]
pub(crate) fn column_scalar(acc: &mut [f32], col0: &[f32], col1: &[f32], l: &Lane, start: usize) {
    let n = col0.len().min(col1.len());
    if n < 2 {
        return;
    }
    let top = (n - 2) as f32;
    for (k, a) in acc.iter_mut().enumerate().skip(start) {
        let r = (l.r0 + l.rk * k as i32 as f32).max(0.0).min(top);
        // SAFETY: r is finite and in [0, n − 2], so the truncation is in range.
        let ri = unsafe { r.to_int_unchecked::<i32>() } as usize;
        let fr = r - ri as i32 as f32;
        // SAFETY: ri + 1 <= n − 1 < col0.len(), col1.len().
        let (p0, p1, q0, q1) = unsafe {
            (*col0.get_unchecked(ri), *col0.get_unchecked(ri + 1), *col1.get_unchecked(ri), *col1.get_unchecked(ri + 1))
        };
        let lo = l.w0 * p0 + l.w1 * q0;
        let hi = l.w0 * p1 + l.w1 * q1;
        *a += lo + fr * (hi - lo);
    }
}

/// The portable weighted inner loop, from `acc[start]` on.
#[inline(always)]
fn column_weighted_scalar(acc: &mut [f32], col0: &[f32], col1: &[f32], l: &Lane, weights: &[f32], start: usize) {
    let n = col0.len().min(col1.len());
    if n < 2 {
        return;
    }
    let top = (n - 2) as f32;
    for (k, (a, &w)) in acc.iter_mut().zip(weights).enumerate().skip(start) {
        let r = (l.r0 + l.rk * k as i32 as f32).max(0.0).min(top);
        let ri = r as usize;
        let fr = r - ri as f32;
        let lo = l.w0 * col0[ri] + l.w1 * col1[ri];
        let hi = l.w0 * col0[ri + 1] + l.w1 * col1[ri + 1];
        *a += w * (lo + fr * (hi - lo));
    }
}

/// How a vector step of eight voxels looks its rows up, by row slope `rk`: while the row index
/// advances by less than one row per voxel, eight consecutive voxels read at most nine
/// consecutive rows (two unaligned loads per detector column and a lane permute replace eight
/// gathers); up to 8/7 rows per voxel the first voxel's row and a window one row on hold the
/// rest (`contribution8_shifted`); up to 7/3, each half of the vector has a window of its own
/// (`contribution8_split`); steeper slopes go scalar.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Lookup {
    Window,
    Shifted,
    Split,
    Scalar,
}

fn lookup(rk: f32) -> Lookup {
    if (0.0..0.999).contains(&rk) {
        Lookup::Window
    } else if (0.0..1.14).contains(&rk) {
        Lookup::Shifted
    } else if (0.0..2.33).contains(&rk) {
        Lookup::Split
    } else {
        Lookup::Scalar
    }
}

/// One view's contribution to eight voxels, by the lookup its slope takes (not `Scalar`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
fn contribution(
    kind: Lookup,
    col0: &[f32],
    col1: &[f32],
    r: std::arch::x86_64::__m256,
    w0: std::arch::x86_64::__m256,
    w1: std::arch::x86_64::__m256,
) -> std::arch::x86_64::__m256 {
    // SAFETY: AVX2 and FMA are enabled here; the callers check the column lengths (>= 12).
    unsafe {
        match kind {
            Lookup::Window | Lookup::Scalar => contribution8(col0, col1, r, w0, w1),
            Lookup::Shifted => contribution8_shifted(col0, col1, r, w0, w1),
            Lookup::Split => contribution8_split(col0, col1, r, w0, w1),
        }
    }
}

/// As `contribution8`, for row slopes from 1 to 8/7: voxel j ≥ 1 is at least j rows and at
/// most eight past voxel 0's row, so voxel 0 takes row `base` (and `base + 1`) directly and the
/// others are looked up one row on, in the window `base + 1 .. base + 10`. Bases are clamped to
/// `n − 11`, so any `r` is memory-safe.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn contribution8_shifted(
    col0: &[f32],
    col1: &[f32],
    r: std::arch::x86_64::__m256,
    w0: std::arch::x86_64::__m256,
    w1: std::arch::x86_64::__m256,
) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    let n = col0.len().min(col1.len());
    let ri = _mm256_cvttps_epi32(r);
    let fr = _mm256_sub_ps(r, _mm256_cvtepi32_ps(ri));
    let base = _mm256_cvtsi256_si32(ri).clamp(0, n as i32 - 11);
    let idx = _mm256_sub_epi32(ri, _mm256_set1_epi32(base + 1));
    let b = base as usize;
    // SAFETY: n >= 12 (checked by the callers) and b + 11 <= n <= both lengths.
    let [c0, c1, c2] = unsafe {
        let (p0, p1) = (col0.as_ptr().add(b), col1.as_ptr().add(b));
        let comb =
            |o: usize| _mm256_fmadd_ps(w1, _mm256_loadu_ps(p1.add(o)), _mm256_mul_ps(w0, _mm256_loadu_ps(p0.add(o))));
        [comb(0), comb(1), comb(2)]
    };
    let lo = _mm256_blend_ps::<0x01>(_mm256_permutevar8x32_ps(c1, idx), c0);
    let hi = _mm256_blend_ps::<0x01>(_mm256_permutevar8x32_ps(c2, idx), c1);
    _mm256_fmadd_ps(fr, _mm256_sub_ps(hi, lo), lo)
}

/// The contribution of one view to eight voxels whose padded row positions are `r` (all
/// within the column, spanning at most eight rows from lane 0's): bilinear in the two detector
/// columns, weights `w0`, `w1`. The two columns are combined first over the nine rows the
/// voxels reach (rows `base..base + 8` and `base + 1..base + 9`), and only then are the rows
/// looked up, so each voxel group costs two lane permutes, not four (a memory-operand permute
/// is two µops on Zen 3, and the permutes bound this loop). Loads stay within
/// `col[base..base + 9]` with `base` clamped to `n − 9`, so any `r` is memory-safe (the
/// permute uses only the index's low bits).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn contribution8(
    col0: &[f32],
    col1: &[f32],
    r: std::arch::x86_64::__m256,
    w0: std::arch::x86_64::__m256,
    w1: std::arch::x86_64::__m256,
) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    let n = col0.len().min(col1.len());
    let ri = _mm256_cvttps_epi32(r);
    let fr = _mm256_sub_ps(r, _mm256_cvtepi32_ps(ri));
    let base = _mm256_cvtsi256_si32(ri).clamp(0, n as i32 - 9);
    let idx = _mm256_sub_epi32(ri, _mm256_set1_epi32(base));
    let b = base as usize;
    // SAFETY: n >= 10 (checked by the callers) and b + 9 <= n <= both lengths.
    let (c_lo, c_hi) = unsafe {
        let p0 = col0.as_ptr().add(b);
        let p1 = col1.as_ptr().add(b);
        (
            _mm256_fmadd_ps(w1, _mm256_loadu_ps(p1), _mm256_mul_ps(w0, _mm256_loadu_ps(p0))),
            _mm256_fmadd_ps(w1, _mm256_loadu_ps(p1.add(1)), _mm256_mul_ps(w0, _mm256_loadu_ps(p0.add(1)))),
        )
    };
    let lo = _mm256_permutevar8x32_ps(c_lo, idx);
    let hi = _mm256_permutevar8x32_ps(c_hi, idx);
    _mm256_fmadd_ps(fr, _mm256_sub_ps(hi, lo), lo)
}

/// As `contribution8`, for row slopes from 1 to 7/3: each half of the vector (four voxels, at
/// most eight rows apart) looks up its own eight-row window of the combined columns, and a
/// blend joins the halves, so eight voxels share one pass of the arithmetic. Bases are clamped
/// to `n − 9`, so any `r` is memory-safe.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn contribution8_split(
    col0: &[f32],
    col1: &[f32],
    r: std::arch::x86_64::__m256,
    w0: std::arch::x86_64::__m256,
    w1: std::arch::x86_64::__m256,
) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    let n = col0.len().min(col1.len());
    let ri = _mm256_cvttps_epi32(r);
    let fr = _mm256_sub_ps(r, _mm256_cvtepi32_ps(ri));
    let top = n as i32 - 9;
    let ba = _mm256_cvtsi256_si32(ri).clamp(0, top);
    let bb = _mm256_extract_epi32::<4>(ri).clamp(0, top);
    let idx = _mm256_sub_epi32(ri, _mm256_setr_epi32(ba, ba, ba, ba, bb, bb, bb, bb));
    let (pa, pb) = (ba as usize, bb as usize);
    // SAFETY: n >= 10 (checked by the callers) and both bases + 9 <= n <= both lengths.
    let combined = |b: usize, off: usize| unsafe {
        let (p0, p1) = (col0.as_ptr().add(b + off), col1.as_ptr().add(b + off));
        _mm256_fmadd_ps(w1, _mm256_loadu_ps(p1), _mm256_mul_ps(w0, _mm256_loadu_ps(p0)))
    };
    let look = |off: usize| {
        let lo = _mm256_permutevar8x32_ps(combined(pa, off), idx);
        let hi = _mm256_permutevar8x32_ps(combined(pb, off), idx);
        _mm256_blend_ps::<0xF0>(lo, hi)
    };
    let (lo, hi) = (look(0), look(1));
    _mm256_fmadd_ps(fr, _mm256_sub_ps(hi, lo), lo)
}

/// Adds `v` (8 lanes, of which the first `group` count) to `acc[k..]`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn add_group(acc: &mut [f32], k: usize, group: usize, v: std::arch::x86_64::__m256) {
    use std::arch::x86_64::*;
    assert!(k + group <= acc.len());
    // SAFETY: k + group <= acc.len() (asserted), group is 4 or 8.
    unsafe {
        let dst = acc.as_mut_ptr().add(k);
        if group == 8 {
            _mm256_storeu_ps(dst, _mm256_add_ps(_mm256_loadu_ps(dst), v));
        } else {
            _mm_storeu_ps(dst, _mm_add_ps(_mm_loadu_ps(dst), _mm256_castps256_ps128(v)));
        }
    }
}

/// The AVX2 inner loop for one view; the walk must stay on the detector (as the k range
/// computed by the caller ensures), the last few voxels go scalar.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn column_avx2(acc: &mut [f32], col0: &[f32], col1: &[f32], l: &Lane) {
    use std::arch::x86_64::*;
    let kind = lookup(l.rk);
    if kind == Lookup::Scalar || col0.len().min(col1.len()) < 12 {
        return column_scalar(acc, col0, col1, l, 0);
    }
    let group = 8;
    let (w0, w1) = (_mm256_set1_ps(l.w0), _mm256_set1_ps(l.w1));
    let step = _mm256_set1_ps(l.rk * group as f32);
    let mut r = _mm256_fmadd_ps(
        _mm256_set1_ps(l.rk),
        _mm256_setr_ps(0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0),
        _mm256_set1_ps(l.r0),
    );
    let mut k = 0usize;
    while k + group <= acc.len() {
        let c = contribution(kind, col0, col1, r, w0, w1);
        // SAFETY: AVX2 and FMA are enabled for this function; k + group <= acc.len().
        unsafe { add_group(acc, k, group, c) };
        r = _mm256_add_ps(r, step);
        k += group;
    }
    column_scalar(acc, col0, col1, l, k);
}

/// The AVX2 weighted inner loop for one view (see `column_avx2`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn column_weighted_avx2(acc: &mut [f32], col0: &[f32], col1: &[f32], l: &Lane, weights: &[f32]) {
    use std::arch::x86_64::*;
    let kind = lookup(l.rk);
    if kind == Lookup::Scalar || col0.len().min(col1.len()) < 12 || weights.len() < acc.len() {
        return column_weighted_scalar(acc, col0, col1, l, weights, 0);
    }
    let group = 8;
    let (w0, w1) = (_mm256_set1_ps(l.w0), _mm256_set1_ps(l.w1));
    let step = _mm256_set1_ps(l.rk * group as f32);
    let mut r = _mm256_fmadd_ps(
        _mm256_set1_ps(l.rk),
        _mm256_setr_ps(0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0),
        _mm256_set1_ps(l.r0),
    );
    let mut k = 0usize;
    while k + group <= acc.len() {
        let c = contribution(kind, col0, col1, r, w0, w1);
        // SAFETY: AVX2 and FMA are enabled for this function; k + group <= acc.len() <= weights.len().
        unsafe {
            let c = _mm256_mul_ps(c, _mm256_loadu_ps(weights.as_ptr().add(k)));
            add_group(acc, k, group, c)
        };
        r = _mm256_add_ps(r, step);
        k += group;
    }
    column_weighted_scalar(acc, col0, col1, l, weights, k);
}

/// The AVX2 inner loop for N views over the same voxels, sharing the loads and stores of the
/// voxel column.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn column_n_avx2<const N: usize>(acc: &mut [f32], views: [(&[f32], &[f32], &Lane); N]) {
    use std::arch::x86_64::*;
    let scalar = views.iter().any(|v| lookup(v.2.rk) == Lookup::Scalar);
    let short = views.iter().any(|v| v.0.len().min(v.1.len()) < 12);
    if scalar || short {
        for v in views {
            // SAFETY: AVX2 and FMA are enabled for this function.
            unsafe { column_avx2(acc, v.0, v.1, v.2) };
        }
        return;
    }
    let kinds: [Lookup; N] = std::array::from_fn(|i| lookup(views[i].2.rk));
    let group = 8;
    let lanes = _mm256_setr_ps(0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0);
    let w0: [__m256; N] = std::array::from_fn(|i| _mm256_set1_ps(views[i].2.w0));
    let w1: [__m256; N] = std::array::from_fn(|i| _mm256_set1_ps(views[i].2.w1));
    let step: [__m256; N] = std::array::from_fn(|i| _mm256_set1_ps(views[i].2.rk * group as f32));
    let mut r: [__m256; N] =
        std::array::from_fn(|i| _mm256_fmadd_ps(_mm256_set1_ps(views[i].2.rk), lanes, _mm256_set1_ps(views[i].2.r0)));
    let mut k = 0usize;
    while k + group <= acc.len() {
        let mut v: Option<__m256> = None;
        for i in 0..N {
            let (c0, c1) = (views[i].0, views[i].1);
            let c = contribution(kinds[i], c0, c1, r[i], w0[i], w1[i]);
            v = Some(v.map_or(c, |v| _mm256_add_ps(v, c)));
            r[i] = _mm256_add_ps(r[i], step[i]);
        }
        if let Some(v) = v {
            // SAFETY: AVX2 and FMA are enabled; k + group <= acc.len().
            unsafe { add_group(acc, k, group, v) };
        }
        k += group;
    }
    for vw in views {
        column_scalar(acc, vw.0, vw.1, vw.2, k);
    }
}

/// ⌈x⌉ for x clamped to [−1, n + 1] (inline: without SSE4.1, `f64::ceil` is a library call,
/// and this runs once per voxel column and view).
#[inline(always)]
fn ceil_clamped(x: f64, n: usize) -> f64 {
    let x = x.clamp(-1.0, n as f64 + 1.0);
    let t = x as i64 as f64;
    if t < x {
        t + 1.0
    } else {
        t
    }
}

/// The k in [0, n) for which `0 <= r0 + rk·k < limit`.
#[inline]
pub(crate) fn k_range(r0: f64, rk: f64, limit: f64, n: usize) -> (usize, usize) {
    if rk.abs() < 1e-12 {
        return if r0 >= 0.0 && r0 < limit { (0, n) } else { (0, 0) };
    }
    let inv = 1.0 / rk;
    let (a, b) = (-r0 * inv, (limit - r0) * inv);
    let (lo, hi) = (a.min(b), a.max(b));
    let k_lo = ceil_clamped(lo, n).max(0.0);
    let k_hi = ceil_clamped(hi, n).min(n as f64);
    if k_hi <= k_lo {
        (0, 0)
    } else {
        (k_lo as usize, k_hi as usize)
    }
}
