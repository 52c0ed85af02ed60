//! Units and conversions: linear attenuation in 1/mm inside the code, CT numbers in HU at the edge.

/// Linear attenuation coefficient of water at 60 keV in 1/mm (NIST XCOM: μ/ρ = 0.2059 cm²/g,
/// ρ = 1 g/cm³). The default effective energy at which Gantry states HU.
pub const MU_WATER_60KEV_PER_MM: f64 = 0.02059;

/// CT number in HU of a linear attenuation `mu_per_mm`, against water's `mu_water_per_mm`.
pub fn mu_to_hu(mu_per_mm: f64, mu_water_per_mm: f64) -> f64 {
    1000.0 * (mu_per_mm - mu_water_per_mm) / mu_water_per_mm
}

/// Linear attenuation in 1/mm of a CT number `hu`, against water's `mu_water_per_mm`.
pub fn hu_to_mu(hu: f64, mu_water_per_mm: f64) -> f64 {
    mu_water_per_mm * (1.0 + hu / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hu_round_trip_and_fixed_points() {
        let mw = MU_WATER_60KEV_PER_MM;
        assert_eq!(mu_to_hu(mw, mw), 0.0);
        assert!((mu_to_hu(0.0, mw) + 1000.0).abs() < 1e-12);
        for hu in [-1000.0, -500.0, 0.0, 40.0, 1200.0] {
            assert!((mu_to_hu(hu_to_mu(hu, mw), mw) - hu).abs() < 1e-9);
        }
    }
}
