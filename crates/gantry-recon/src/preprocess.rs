//! From detector readings to line integrals, and from μ to HU.

use gantry_core::units::mu_to_hu;
use gantry_core::{CoreError, ProjectionStack, Quantity, Result, Volume};
use ndarray::Zip;

/// Line integrals `−ln(max(counts, floor) / unattenuated_counts)`. Counts at or below zero
/// (photon starvation, electronic noise) are clamped to `floor_counts` so the logarithm stays
/// finite. Non-finite counts are an error naming their index.
pub fn counts_to_line_integrals(
    counts: &ProjectionStack,
    unattenuated_counts: f64,
    floor_counts: f64,
) -> Result<ProjectionStack> {
    if !(unattenuated_counts.is_finite() && unattenuated_counts > 0.0) {
        return Err(CoreError::invalid("unattenuated_counts", unattenuated_counts, "must be finite and positive"));
    }
    if !(floor_counts.is_finite() && floor_counts > 0.0) {
        return Err(CoreError::invalid("floor_counts", floor_counts, "must be finite and positive"));
    }
    gantry_core::check_finite("counts", counts.data.view())?;
    let mut out = counts.clone();
    let (i0, floor) = (unattenuated_counts as f32, floor_counts as f32);
    Zip::from(&mut out.data).par_for_each(|c| *c = -(c.max(floor) / i0).ln());
    Ok(out)
}

/// The volume converted from μ (1/mm) to HU against water's μ at the same energy. A volume
/// that states another quantity is an error (HU converted twice, a map taken for μ); one that
/// states none is taken as μ.
pub fn mu_to_hu_volume(volume: &Volume, mu_water_per_mm: f64) -> Result<Volume> {
    if !matches!(volume.quantity, Quantity::LinearAttenuation | Quantity::Unspecified) {
        return Err(CoreError::invalid(
            "volume quantity",
            volume.quantity.describe(),
            "only linear attenuation μ (1/mm) converts to HU",
        ));
    }
    if !(mu_water_per_mm.is_finite() && mu_water_per_mm > 0.0) {
        return Err(CoreError::invalid("mu_water_per_mm", mu_water_per_mm, "must be finite and positive"));
    }
    Ok(volume.map(|m| mu_to_hu(m as f64, mu_water_per_mm) as f32).with_quantity(Quantity::Hounsfield))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gantry_core::ScanProtocol;

    #[test]
    fn log_conversion_inverts_beer_lambert() {
        let g = ScanProtocol::circular_flat(500.0, 1000.0, 2, 3, 2, 1.0).build().unwrap();
        let mut c = ProjectionStack::zeros(g);
        c.data.fill(1000.0 * (-2.5f32).exp());
        c.data[[1, 1, 1]] = -3.0;
        let p = counts_to_line_integrals(&c, 1000.0, 0.5).unwrap();
        assert!((p.data[[0, 0, 0]] - 2.5).abs() < 1e-5);
        assert!((p.data[[1, 1, 1]] - (2000.0f32).ln()).abs() < 1e-5);
        c.data[[0, 1, 2]] = f32::NAN;
        let e = counts_to_line_integrals(&c, 1000.0, 0.5).unwrap_err().to_string();
        assert!(e.contains("counts") && e.contains("(0, 1, 2)"), "{e}");
        assert!(counts_to_line_integrals(&c, 0.0, 0.5).unwrap_err().to_string().contains("unattenuated_counts"));
    }
}
