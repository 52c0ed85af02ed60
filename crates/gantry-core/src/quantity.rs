//! What the numbers of a volume mean: the physical quantity and its unit. Every volume carries
//! one; writers record it and readers restore it, so μ is never shown as HU or exported as zeros.

use crate::error::{CoreError, Result};
use serde::{Deserialize, Serialize};

/// The quantity a volume holds, with its unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quantity {
    /// Not stated (a file from elsewhere that does not say).
    #[default]
    Unspecified,
    /// Linear attenuation coefficient μ, 1/mm.
    LinearAttenuation,
    /// CT number, HU (against water at Gantry's stated effective energy).
    Hounsfield,
    /// Mass density, g/mL.
    Density,
    /// A pure number: masks, ratios, labels.
    Unitless,
    /// Blood flow, mL/100 g/min (CBF).
    BloodFlow,
    /// Blood volume, mL/100 g (CBV).
    BloodVolume,
    /// A time in seconds (MTT, Tmax, TTP, arrival delay).
    TimeSeconds,
    /// Iodine concentration, mg/mL.
    IodineConcentration,
    /// Effective atomic number (unitless, but not a ratio).
    EffectiveAtomicNumber,
    /// Activity concentration, Bq/mL (PET).
    ActivityConcentration,
    /// Standardised uptake value, g/mL (PET).
    StandardisedUptake,
}

impl Quantity {
    /// Every quantity, for parsers and tests.
    pub const ALL: [Quantity; 12] = [
        Quantity::Unspecified,
        Quantity::LinearAttenuation,
        Quantity::Hounsfield,
        Quantity::Density,
        Quantity::Unitless,
        Quantity::BloodFlow,
        Quantity::BloodVolume,
        Quantity::TimeSeconds,
        Quantity::IodineConcentration,
        Quantity::EffectiveAtomicNumber,
        Quantity::ActivityConcentration,
        Quantity::StandardisedUptake,
    ];

    /// The short code written into files (at most 16 characters, NIfTI's `intent_name`).
    pub fn code(self) -> &'static str {
        match self {
            Quantity::Unspecified => "unspecified",
            Quantity::LinearAttenuation => "mu_per_mm",
            Quantity::Hounsfield => "hu",
            Quantity::Density => "density_g_ml",
            Quantity::Unitless => "unitless",
            Quantity::BloodFlow => "ml_100g_min",
            Quantity::BloodVolume => "ml_100g",
            Quantity::TimeSeconds => "seconds",
            Quantity::IodineConcentration => "iodine_mg_ml",
            Quantity::EffectiveAtomicNumber => "effective_z",
            Quantity::ActivityConcentration => "bq_ml",
            Quantity::StandardisedUptake => "suv_g_ml",
        }
    }

    /// The unit as a person writes it.
    pub fn unit(self) -> &'static str {
        match self {
            Quantity::Unspecified => "unspecified unit",
            Quantity::LinearAttenuation => "1/mm",
            Quantity::Hounsfield => "HU",
            Quantity::Density => "g/mL",
            Quantity::Unitless | Quantity::EffectiveAtomicNumber => "1",
            Quantity::BloodFlow => "mL/100 g/min",
            Quantity::BloodVolume => "mL/100 g",
            Quantity::TimeSeconds => "s",
            Quantity::IodineConcentration => "mg/mL",
            Quantity::ActivityConcentration => "Bq/mL",
            Quantity::StandardisedUptake => "g/mL",
        }
    }

    /// A name for messages: "linear attenuation μ (1/mm)".
    pub fn describe(self) -> String {
        let name = match self {
            Quantity::Unspecified => return "an unspecified quantity".into(),
            Quantity::LinearAttenuation => "linear attenuation μ",
            Quantity::Hounsfield => "CT number",
            Quantity::Density => "density",
            Quantity::Unitless => "a unitless value",
            Quantity::BloodFlow => "blood flow",
            Quantity::BloodVolume => "blood volume",
            Quantity::TimeSeconds => "time",
            Quantity::IodineConcentration => "iodine concentration",
            Quantity::EffectiveAtomicNumber => "effective atomic number",
            Quantity::ActivityConcentration => "activity concentration",
            Quantity::StandardisedUptake => "SUV",
        };
        format!("{name} ({})", self.unit())
    }

    /// The quantity of a code written by [`Quantity::code`].
    pub fn from_code(code: &str) -> Result<Quantity> {
        let c = code.trim();
        Quantity::ALL.into_iter().find(|q| q.code().eq_ignore_ascii_case(c)).ok_or_else(|| {
            let all: Vec<&str> = Quantity::ALL.iter().map(|q| q.code()).collect();
            CoreError::invalid("quantity", format!("{c:?}"), format!("expected one of {}", all.join(", ")))
        })
    }
}

impl std::fmt::Display for Quantity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_fit_nifti() {
        for q in Quantity::ALL {
            assert_eq!(Quantity::from_code(q.code()).unwrap(), q);
            assert!(q.code().len() <= 16, "{}", q.code());
        }
        let e = Quantity::from_code("furlongs").unwrap_err().to_string();
        assert!(e.contains("furlongs") && e.contains("mu_per_mm"), "{e}");
    }
}
