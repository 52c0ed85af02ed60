//! The quantity of a DICOM image: written as Rescale Type HU for CT numbers and as a Real World
//! Value Mapping with its UCUM unit for everything else; read back from the same attributes.

use super::write::ValueUnits;
use gantry_core::Quantity;

/// UCUM code, its meaning, a default label and stored-value resolution, for the quantities a
/// derived image can hold through a Real World Value Mapping.
pub fn ucum_for(q: Quantity) -> Option<(&'static str, &'static str, &'static str, f64)> {
    Some(match q {
        Quantity::BloodFlow => ("mL/(100.g.min)", "mL/100 g/min", "CBF", 0.01),
        Quantity::BloodVolume => ("mL/(100.g)", "mL/100 g", "CBV", 0.001),
        Quantity::TimeSeconds => ("s", "second", "TIME", 0.001),
        Quantity::IodineConcentration => ("mg/mL", "mg/mL", "IODINE", 0.01),
        Quantity::Density => ("g/cm3", "g/cm3", "DENSITY", 0.0001),
        Quantity::EffectiveAtomicNumber => ("1", "effective atomic number", "ZEFF", 0.001),
        Quantity::Unitless => ("1", "no units", "VALUE", 0.001),
        Quantity::ActivityConcentration => ("Bq/mL", "Bq/mL", "ACTIVITY", 1.0),
        Quantity::StandardisedUptake => ("{SUVbw}g/ml", "SUV body weight", "SUV", 0.001),
        Quantity::Unspecified | Quantity::Hounsfield | Quantity::LinearAttenuation => return None,
    })
}

impl ValueUnits {
    /// The mapping Gantry writes for `q` by default (None for HU, which is Rescale Type HU,
    /// and for μ and unspecified values, which are not written as images).
    pub fn for_quantity(q: Quantity) -> Option<ValueUnits> {
        let (ucum, meaning, label, resolution) = ucum_for(q)?;
        Some(ValueUnits {
            rescale_type: "US".into(),
            ucum_code: ucum.into(),
            code_meaning: meaning.into(),
            label: label.into(),
            resolution,
        })
    }
}

/// The quantity a UCUM code (with its code meaning) of a Real World Value Mapping names.
pub fn quantity_of_ucum(code: &str, meaning: &str) -> Quantity {
    let c = code.trim();
    if c == "1" {
        return if meaning.to_ascii_lowercase().contains("atomic") {
            Quantity::EffectiveAtomicNumber
        } else {
            Quantity::Unitless
        };
    }
    if c == "[hnsf'U]" {
        return Quantity::Hounsfield;
    }
    Quantity::ALL
        .into_iter()
        .find(|&q| ucum_for(q).is_some_and(|(u, ..)| u.eq_ignore_ascii_case(c)))
        .unwrap_or(Quantity::Unspecified)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mapped_quantity_reads_back() {
        for q in Quantity::ALL {
            if let Some((u, m, ..)) = ucum_for(q) {
                assert_eq!(quantity_of_ucum(u, m), q, "{u}");
            }
        }
        assert_eq!(quantity_of_ucum("furlong", ""), Quantity::Unspecified);
    }
}
