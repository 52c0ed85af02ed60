//! DICOM waveforms (12-lead and general ECG): the first multiplex group of the Waveform
//! Sequence → leads in millivolts.
//!
//! Each channel's value = (stored + Channel Baseline) × Channel Sensitivity × Channel
//! Sensitivity Correction Factor, in the units of the Channel Sensitivity Units Sequence (µV or
//! mV here). Samples are interleaved: all channels of sample 0, then of sample 1, …

use super::{first_number, tag_name, text};
use crate::error::{IoError, Result};
use dicom_core::Tag;
use dicom_dictionary_std::tags;
use gantry_core::{Ecg, EcgLead};
use std::path::Path;

/// Reads the ECG of a waveform file.
pub fn read_ecg(path: &Path) -> Result<Ecg> {
    super::guard::check_path(path, false)?;
    let obj = dicom_object::open_file(path)
        .map_err(|e| IoError::format(path, "DICOM data set", "", format!("cannot be read: {e}")))?;
    let missing = |tag: Tag| IoError::format(path, tag_name(tag), "(absent)", "is needed to read the waveform");
    let group = obj
        .get(tags::WAVEFORM_SEQUENCE)
        .and_then(|e| e.items())
        .and_then(|items| items.first())
        .ok_or_else(|| missing(tags::WAVEFORM_SEQUENCE))?;
    let n_ch = first_number(group, tags::NUMBER_OF_WAVEFORM_CHANNELS)
        .ok_or_else(|| missing(tags::NUMBER_OF_WAVEFORM_CHANNELS))? as usize;
    let n_s = first_number(group, tags::NUMBER_OF_WAVEFORM_SAMPLES)
        .ok_or_else(|| missing(tags::NUMBER_OF_WAVEFORM_SAMPLES))? as usize;
    let hz = first_number(group, tags::SAMPLING_FREQUENCY).ok_or_else(|| missing(tags::SAMPLING_FREQUENCY))?;
    let bits = first_number(group, tags::WAVEFORM_BITS_ALLOCATED)
        .ok_or_else(|| missing(tags::WAVEFORM_BITS_ALLOCATED))? as usize;
    let interp = text(group, tags::WAVEFORM_SAMPLE_INTERPRETATION);
    if !matches!((bits, interp.as_str()), (16, "SS") | (16, "US") | (8, "SB") | (8, "UB")) {
        return Err(IoError::format(
            path,
            tag_name(tags::WAVEFORM_SAMPLE_INTERPRETATION),
            format!("{interp} with {bits} bits"),
            "only SS/US 16-bit and SB/UB 8-bit samples are read",
        ));
    }
    let defs = group
        .get(tags::CHANNEL_DEFINITION_SEQUENCE)
        .and_then(|e| e.items())
        .ok_or_else(|| missing(tags::CHANNEL_DEFINITION_SEQUENCE))?;
    if defs.len() != n_ch {
        return Err(IoError::format(
            path,
            tag_name(tags::CHANNEL_DEFINITION_SEQUENCE),
            defs.len(),
            format!("must define every one of the {n_ch} channels"),
        ));
    }
    let data = group.get(tags::WAVEFORM_DATA).ok_or_else(|| missing(tags::WAVEFORM_DATA))?;
    // In memory the samples are in host order (dicom-rs decodes them), little-endian on every
    // target Gantry builds for.
    let bytes = data.to_bytes().map_err(|e| IoError::format(path, tag_name(tags::WAVEFORM_DATA), "", e.to_string()))?;
    let need = n_ch * n_s * bits / 8;
    if bytes.len() < need {
        return Err(IoError::format(
            path,
            tag_name(tags::WAVEFORM_DATA),
            format!("{} bytes", bytes.len()),
            format!("{n_ch} channels × {n_s} samples × {bits} bits need {need}: truncated"),
        ));
    }
    let raw = |i: usize| -> f64 {
        match (bits, interp.as_str()) {
            (16, "SS") => i16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]]) as f64,
            (16, _) => u16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]]) as f64,
            (_, "SB") => bytes[i] as i8 as f64,
            _ => bytes[i] as f64,
        }
    };
    let mut leads = Vec::with_capacity(n_ch);
    for (c, def) in defs.iter().enumerate() {
        let name = def
            .get(tags::CHANNEL_SOURCE_SEQUENCE)
            .and_then(|e| e.items())
            .and_then(|i| i.first())
            .map(|src| text(src, tags::CODE_MEANING))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| format!("channel {}", c + 1));
        let sensitivity = first_number(def, tags::CHANNEL_SENSITIVITY).unwrap_or(1.0);
        let correction = first_number(def, tags::CHANNEL_SENSITIVITY_CORRECTION_FACTOR).unwrap_or(1.0);
        let baseline = first_number(def, tags::CHANNEL_BASELINE).unwrap_or(0.0);
        let unit = def
            .get(tags::CHANNEL_SENSITIVITY_UNITS_SEQUENCE)
            .and_then(|e| e.items())
            .and_then(|i| i.first())
            .map(|u| text(u, tags::CODE_VALUE))
            .unwrap_or_else(|| "uV".into());
        let to_mv = match unit.as_str() {
            "uV" => 1e-3,
            "mV" => 1.0,
            "V" => 1e3,
            other => {
                return Err(IoError::format(
                    path,
                    tag_name(tags::CHANNEL_SENSITIVITY_UNITS_SEQUENCE),
                    other,
                    format!("unit of {name} must be uV, mV or V"),
                ))
            }
        };
        let scale = sensitivity * correction * to_mv;
        let samples_mv = (0..n_s).map(|s| ((raw(s * n_ch + c) + baseline) * scale) as f32).collect();
        leads.push(EcgLead { name, samples_mv });
    }
    Ecg::new(hz, leads).map_err(|e| IoError::core(path, e))
}
