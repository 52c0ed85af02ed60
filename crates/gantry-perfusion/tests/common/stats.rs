//! Order statistics shared by the tile tests and `examples/tiles.rs`.
#![allow(dead_code)]

/// Median of the non-NaN values (NaN if none).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| !x.is_nan());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// 90th percentile (nearest rank).
pub fn p90(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 * 0.9).ceil() as usize).clamp(1, v.len()) - 1]
}
