//! What a PET series must carry for SUV, read and checked as the QIBA vendor-neutral
//! pseudo-code does (Units BQML, Decay Correction START, Corrected Image with ATTN and DECY;
//! dose, half-life and injection time from the Radiopharmaceutical Information Sequence; scan
//! time from Series Date/Time unless that is after the acquisition).

use super::read::{date_time_value, open_header, parse_da, parse_tm, DicomSeries};
use super::{first_number, tag_name, text};
use crate::error::{IoError, Result};
use dicom_core::Tag;
use dicom_dictionary_std::tags;
use std::path::PathBuf;

/// The SUV-relevant attributes of a PET series, times in seconds since 1970 (UTC-naive).
#[derive(Debug, Clone, PartialEq)]
pub struct PetSuvInfo {
    pub file: PathBuf,
    pub units: String,
    pub decay_correction: String,
    pub corrected_image: Vec<String>,
    pub radiopharmaceutical: String,
    pub total_dose_bq: Option<f64>,
    pub half_life_s: Option<f64>,
    pub injection_time_s: Option<f64>,
    pub series_time_s: Option<f64>,
    pub acquisition_time_s: Option<f64>,
    pub patient_weight_kg: Option<f64>,
    pub patient_size_m: Option<f64>,
    pub patient_sex: String,
}

fn date_time(date: &str, time: &str) -> Option<f64> {
    Some(parse_da(date)? as f64 * 86_400.0 + parse_tm(time)?)
}

/// Reads the SUV attributes of a PET series (from its first image).
pub fn read_pet_suv_info(series: &DicomSeries) -> Result<PetSuvInfo> {
    let file = series.files.first().cloned().unwrap_or_default();
    let obj = open_header(&file)?;
    let modality = text(&obj, tags::MODALITY);
    if modality != "PT" {
        return Err(IoError::format(&file, tag_name(tags::MODALITY), modality, "SUV needs a PET (PT) series"));
    }
    let series_date = text(&obj, tags::SERIES_DATE);
    let rp =
        obj.get(tags::RADIOPHARMACEUTICAL_INFORMATION_SEQUENCE).and_then(|e| e.items()).and_then(|items| items.first());
    let (radiopharmaceutical, total_dose_bq, half_life_s, injection_time_s) = match rp {
        Some(item) => {
            let start = date_time_value(&text(item, tags::RADIOPHARMACEUTICAL_START_DATE_TIME))
                .or_else(|| date_time(&series_date, &text(item, tags::RADIOPHARMACEUTICAL_START_TIME)));
            (
                text(item, tags::RADIOPHARMACEUTICAL),
                first_number(item, tags::RADIONUCLIDE_TOTAL_DOSE),
                first_number(item, tags::RADIONUCLIDE_HALF_LIFE),
                start,
            )
        }
        None => (String::new(), None, None, None),
    };
    let corrected_image: Vec<String> =
        text(&obj, tags::CORRECTED_IMAGE).split('\\').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    Ok(PetSuvInfo {
        units: text(&obj, tags::UNITS),
        decay_correction: text(&obj, tags::DECAY_CORRECTION),
        corrected_image,
        radiopharmaceutical,
        total_dose_bq,
        half_life_s,
        injection_time_s,
        series_time_s: date_time(&series_date, &text(&obj, tags::SERIES_TIME)),
        acquisition_time_s: date_time(&text(&obj, tags::ACQUISITION_DATE), &text(&obj, tags::ACQUISITION_TIME)),
        patient_weight_kg: first_number(&obj, tags::PATIENT_WEIGHT),
        patient_size_m: first_number(&obj, tags::PATIENT_SIZE),
        patient_sex: text(&obj, tags::PATIENT_SEX),
        file,
    })
}

impl PetSuvInfo {
    /// The factor that turns Bq/mL into SUVbw (g/mL): weight (g) / decayed dose (Bq), after the
    /// QIBA checks; an error names the attribute that stops it.
    pub fn suv_bw_factor(&self) -> Result<f64> {
        let bad = |tag: Tag, value: &dyn std::fmt::Display, why: &str| {
            IoError::format(&self.file, tag_name(tag), value, why.to_string())
        };
        if self.units != "BQML" {
            return Err(bad(tags::UNITS, &self.units, "SUV needs activity concentration in BQML"));
        }
        if self.decay_correction != "START" {
            return Err(bad(
                tags::DECAY_CORRECTION,
                &self.decay_correction,
                "SUV needs images decay-corrected to the scan START",
            ));
        }
        for need in ["ATTN", "DECY"] {
            if !self.corrected_image.iter().any(|c| c == need) {
                return Err(bad(
                    tags::CORRECTED_IMAGE,
                    &self.corrected_image.join("\\"),
                    &format!("must include {need}"),
                ));
            }
        }
        let positive = |v: Option<f64>, tag: Tag| match v {
            Some(x) if x > 0.0 => Ok(x),
            Some(x) => Err(bad(tag, &x, "must be positive")),
            None => Err(bad(tag, &"(absent)", "is needed for SUV")),
        };
        let dose = positive(self.total_dose_bq, tags::RADIONUCLIDE_TOTAL_DOSE)?;
        let half_life = positive(self.half_life_s, tags::RADIONUCLIDE_HALF_LIFE)?;
        let weight_g = positive(self.patient_weight_kg, tags::PATIENT_WEIGHT)? * 1000.0;
        let mut injection = self
            .injection_time_s
            .ok_or_else(|| bad(tags::RADIOPHARMACEUTICAL_START_TIME, &"(absent)", "is needed for SUV"))?;
        // Scan start: the series time, unless it is after the acquisition (then the acquisition).
        let scan = match (self.series_time_s, self.acquisition_time_s) {
            (Some(s), Some(a)) if s > a => a,
            (Some(s), _) => s,
            (None, Some(a)) => a,
            (None, None) => return Err(bad(tags::SERIES_TIME, &"(absent)", "is needed for SUV")),
        };
        // An injection time without its own date is taken on the series date; one day earlier
        // when that puts it after the scan (injection before midnight, scan after).
        if injection > scan && injection - scan < 86_400.0 {
            injection -= 86_400.0;
        }
        let elapsed = scan - injection;
        if !(0.0..=7.0 * 86_400.0).contains(&elapsed) {
            return Err(bad(
                tags::RADIOPHARMACEUTICAL_START_DATE_TIME,
                &format!("{elapsed} s before the scan"),
                "injection must precede the scan",
            ));
        }
        let decayed = dose * (-(elapsed / half_life) * std::f64::consts::LN_2).exp();
        Ok(weight_g / decayed)
    }
}
