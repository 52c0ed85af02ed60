//! An ECG recording: leads sampled at one rate, in millivolts (for gating cardiac scans).

use crate::error::{CoreError, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct EcgLead {
    /// As the source names it: "Lead I", "Lead II", "V1", …
    pub name: String,
    pub samples_mv: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ecg {
    pub sampling_hz: f64,
    pub leads: Vec<EcgLead>,
}

impl Ecg {
    /// Checks the rate (finite, positive), that every lead has the same number of samples, and
    /// that all samples are finite.
    pub fn new(sampling_hz: f64, leads: Vec<EcgLead>) -> Result<Self> {
        if !(sampling_hz.is_finite() && sampling_hz > 0.0) {
            return Err(CoreError::invalid("ecg sampling_hz", sampling_hz, "must be finite and positive"));
        }
        if let Some(first) = leads.first() {
            for l in &leads {
                if l.samples_mv.len() != first.samples_mv.len() {
                    return Err(CoreError::size_mismatch(
                        format!("ecg lead {:?} samples", l.name),
                        first.samples_mv.len(),
                        l.samples_mv.len(),
                    ));
                }
                if let Some(bad) = l.samples_mv.iter().find(|v| !v.is_finite()) {
                    return Err(CoreError::invalid(format!("ecg lead {:?} sample", l.name), bad, "must be finite"));
                }
            }
        }
        Ok(Ecg { sampling_hz, leads })
    }

    /// The lead with this name (case-insensitive, "Lead " prefix optional).
    pub fn lead(&self, name: &str) -> Option<&EcgLead> {
        let norm = |s: &str| s.trim().to_ascii_lowercase().trim_start_matches("lead").trim().to_string();
        self.leads.iter().find(|l| norm(&l.name) == norm(name))
    }

    pub fn duration_s(&self) -> f64 {
        self.leads.first().map(|l| l.samples_mv.len() as f64 / self.sampling_hz).unwrap_or(0.0)
    }
}
