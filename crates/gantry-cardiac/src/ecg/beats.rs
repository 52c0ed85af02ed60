//! Beats from R peaks: each beat classed against the running median of the preceding normal RR
//! intervals, the rhythm called, the next RR predicted for prospective triggering, and a time
//! expressed as a cardiac phase.

use serde::Serialize;

/// A premature beat's RR is under this fraction of the running normal RR.
pub const PREMATURE_BELOW: f64 = 0.8;
/// A compensatory pause's RR is over this fraction of it, and it follows a premature beat (a
/// long interval after a normal beat is sinus variability, and stays normal).
pub const PAUSE_ABOVE: f64 = 1.2;
/// Normal RR intervals the running median is taken over.
pub const RUNNING_BEATS: usize = 8;
/// Normal RR intervals the next-RR prediction is the median of.
pub const PREDICTION_BEATS: usize = 4;
/// The rhythm is called irregular above this coefficient of variation of the RR intervals.
pub const IRREGULAR_CV: f64 = 0.12;

/// What a beat is, from the interval that ends at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BeatClass {
    Normal,
    Premature,
    CompensatoryPause,
}

/// The rhythm over the whole recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rhythm {
    Regular,
    Irregular,
}

/// What the beats of an ECG are.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BeatReport {
    pub r_peaks_s: Vec<f64>,
    /// One per peak (the first, with no interval before it, is normal).
    pub classes: Vec<BeatClass>,
    /// The intervals between consecutive peaks (one fewer than the peaks).
    pub rr_s: Vec<f64>,
    /// 60 / the median RR; absent with fewer than two peaks.
    pub heart_rate_bpm: Option<f64>,
    pub rhythm: Rhythm,
    /// The coefficient of variation of the RR intervals.
    pub rr_cv: f64,
    /// The next RR expected (median of the last normal intervals), for prospective triggering.
    pub next_rr_s: Option<f64>,
}

fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    Some(if s.len() % 2 == 1 { s[m] } else { 0.5 * (s[m - 1] + s[m]) })
}

/// Classes the beats at `r_peaks_s` (sorted times, s).
pub fn classify_beats(r_peaks_s: &[f64]) -> BeatReport {
    let rr: Vec<f64> = r_peaks_s.windows(2).map(|w| w[1] - w[0]).collect();
    // Before enough normal beats are known, the median of the whole recording stands in.
    let overall = median(&rr);
    let mut normal_rr: Vec<f64> = Vec::new();
    let mut classes = Vec::with_capacity(r_peaks_s.len());
    if !r_peaks_s.is_empty() {
        classes.push(BeatClass::Normal);
    }
    for &interval in &rr {
        let reference = if normal_rr.len() >= 3 {
            median(&normal_rr[normal_rr.len().saturating_sub(RUNNING_BEATS)..])
        } else {
            overall
        }
        .unwrap_or(interval);
        let after_premature = classes.last() == Some(&BeatClass::Premature);
        let class = if interval < PREMATURE_BELOW * reference {
            BeatClass::Premature
        } else if interval > PAUSE_ABOVE * reference && after_premature {
            BeatClass::CompensatoryPause
        } else {
            normal_rr.push(interval);
            BeatClass::Normal
        };
        classes.push(class);
    }
    let mean = rr.iter().sum::<f64>() / rr.len().max(1) as f64;
    let sd = (rr.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / rr.len().max(1) as f64).sqrt();
    let rr_cv = if mean > 0.0 { sd / mean } else { 0.0 };
    let next_rr_s = median(&normal_rr[normal_rr.len().saturating_sub(PREDICTION_BEATS)..]).or(overall);
    BeatReport {
        r_peaks_s: r_peaks_s.to_vec(),
        classes,
        heart_rate_bpm: overall.map(|m| 60.0 / m),
        rhythm: if rr_cv > IRREGULAR_CV { Rhythm::Irregular } else { Rhythm::Regular },
        rr_cv,
        rr_s: rr,
        next_rr_s,
    }
}

/// Where a time falls in its cardiac cycle.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CardiacPhase {
    /// Percent of the RR interval it lies in (0 at the R peak before it).
    pub percent_rr: f64,
    /// Milliseconds after the R peak before it.
    pub ms_after_r: f64,
    /// That interval's length (s).
    pub rr_s: f64,
}

impl CardiacPhase {
    /// The phase of time `t_s` between two of the sorted `r_peaks_s`; None outside them.
    pub fn at(t_s: f64, r_peaks_s: &[f64]) -> Option<CardiacPhase> {
        let k = r_peaks_s.partition_point(|&r| r <= t_s);
        if k == 0 || k >= r_peaks_s.len() {
            return None;
        }
        let (a, b) = (r_peaks_s[k - 1], r_peaks_s[k]);
        Some(CardiacPhase { percent_rr: 100.0 * (t_s - a) / (b - a), ms_after_r: 1e3 * (t_s - a), rr_s: b - a })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_premature_beat_and_its_pause_are_classed_and_left_out_of_the_prediction() {
        let mut t = vec![0.0];
        for rr in [1.0, 1.0, 1.0, 1.0, 0.65, 1.35, 1.0, 1.0] {
            t.push(t.last().unwrap() + rr);
        }
        let r = classify_beats(&t);
        use BeatClass::*;
        assert_eq!(
            r.classes,
            vec![Normal, Normal, Normal, Normal, Normal, Premature, CompensatoryPause, Normal, Normal]
        );
        assert_eq!(r.next_rr_s, Some(1.0));
        assert!((r.heart_rate_bpm.unwrap() - 60.0).abs() < 1e-9);
        // A long interval after a normal beat is not a compensatory pause.
        let t = [0.0, 1.0, 2.0, 3.0, 4.0, 5.3, 6.3];
        assert!(classify_beats(&t).classes.iter().all(|&c| c == Normal));
    }

    #[test]
    fn phases_are_percent_of_the_interval_and_ms_after_r() {
        let p = CardiacPhase::at(1.3, &[0.2, 1.0, 2.0]).unwrap();
        assert!((p.percent_rr - 30.0).abs() < 1e-9 && (p.ms_after_r - 300.0).abs() < 1e-9 && p.rr_s == 1.0);
        assert!(CardiacPhase::at(0.1, &[0.2, 1.0]).is_none());
        assert!(CardiacPhase::at(2.5, &[0.2, 1.0, 2.0]).is_none());
    }
}
