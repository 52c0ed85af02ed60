//! De-identification by the DICOM Basic Application Level Confidentiality Profile (PS3.15
//! Annex E, Table E.1-1), for the attributes images carry:
//!
//! - names, IDs and dates that identify the patient or the visit are replaced by dummies or
//!   emptied (D, Z), the rest of the table's identifying attributes removed (X);
//! - every UID that is not one of the standard's own (1.2.840.10008.…: SOP classes, transfer
//!   syntaxes, coding schemes) is replaced by `2.25.` and the first 128 bits of SHA-256(key, UID)
//!   as a decimal number, so one key maps a UID the same way in every file — a study stays
//!   one study, references between series still point at each other — and without the key the
//!   mapping cannot be undone; the patient ID becomes a pseudonym the same way;
//! - private elements (odd groups) and overlays and curves (groups 60xx, 50xx) are removed;
//! - Patient Identity Removed = YES and De-identification Method (and its code, 113100, "Basic
//!   Application Confidentiality Profile") are set.
//!
//! Sequences are walked to the bottom. With [`Options::keep_dates`] (the Retain Longitudinal
//! Temporal Information with Full Dates Option, 113106) dates and times are kept, which
//! perfusion and cardiac timing need.

use super::tag_name;
use crate::error::{IoError, Result};
use dicom_core::value::{DataSetSequence, PrimitiveValue, Value};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemDicomObject;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// How to de-identify.
#[derive(Debug, Clone)]
pub struct Options {
    /// The secret the UIDs and the patient pseudonym are derived from: the same key maps the
    /// same UID the same way in every run.
    pub key: String,
    /// Keep dates and times (the Retain Longitudinal Temporal Information with Full Dates Option).
    pub keep_dates: bool,
}

/// What the profile does with an attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Replace with a dummy value of the same VR.
    Dummy,
    /// Keep, but empty.
    Zero,
    /// Remove.
    Remove,
    /// A date or time: emptied, or kept with the full-dates option.
    Temporal,
}

/// The identifying attributes of Table E.1-1 that images carry (UIDs are handled by their VR).
const TABLE: &[(Tag, Action)] = &[
    (tags::PATIENT_NAME, Action::Dummy),
    (tags::PATIENT_ID, Action::Dummy),
    (tags::PATIENT_BIRTH_DATE, Action::Zero),
    (tags::PATIENT_SEX, Action::Zero),
    (tags::PATIENT_AGE, Action::Remove),
    (tags::PATIENT_SIZE, Action::Remove),
    (tags::PATIENT_WEIGHT, Action::Remove),
    (tags::PATIENT_ADDRESS, Action::Remove),
    (tags::PATIENT_TELEPHONE_NUMBERS, Action::Remove),
    (tags::PATIENT_BIRTH_TIME, Action::Remove),
    (Tag(0x0010, 0x1000), Action::Remove), // Other Patient IDs (retired, still found)
    (tags::OTHER_PATIENT_I_DS_SEQUENCE, Action::Remove),
    (tags::OTHER_PATIENT_NAMES, Action::Remove),
    (tags::PATIENT_BIRTH_NAME, Action::Remove),
    (tags::PATIENT_MOTHER_BIRTH_NAME, Action::Remove),
    (Tag(0x0010, 0x1090), Action::Remove), // Medical Record Locator (retired)
    (Tag(0x0010, 0x2160), Action::Remove), // Ethnic Group (retired)
    (tags::OCCUPATION, Action::Remove),
    (tags::ADDITIONAL_PATIENT_HISTORY, Action::Remove),
    (tags::PATIENT_COMMENTS, Action::Remove),
    (tags::MILITARY_RANK, Action::Remove),
    (tags::BRANCH_OF_SERVICE, Action::Remove),
    (tags::COUNTRY_OF_RESIDENCE, Action::Remove),
    (tags::REGION_OF_RESIDENCE, Action::Remove),
    (tags::PATIENT_RELIGIOUS_PREFERENCE, Action::Remove),
    (tags::ACCESSION_NUMBER, Action::Zero),
    (tags::STUDY_ID, Action::Zero),
    (tags::REFERRING_PHYSICIAN_NAME, Action::Zero),
    (tags::REFERRING_PHYSICIAN_ADDRESS, Action::Remove),
    (tags::REFERRING_PHYSICIAN_TELEPHONE_NUMBERS, Action::Remove),
    (tags::PHYSICIANS_OF_RECORD, Action::Remove),
    (tags::PERFORMING_PHYSICIAN_NAME, Action::Remove),
    (tags::NAME_OF_PHYSICIANS_READING_STUDY, Action::Remove),
    (tags::OPERATORS_NAME, Action::Remove),
    (tags::REQUESTING_PHYSICIAN, Action::Remove),
    (tags::ADMITTING_DIAGNOSES_DESCRIPTION, Action::Remove),
    (tags::INSTITUTION_NAME, Action::Remove),
    (tags::INSTITUTION_ADDRESS, Action::Remove),
    (tags::INSTITUTIONAL_DEPARTMENT_NAME, Action::Remove),
    (tags::STATION_NAME, Action::Remove),
    (tags::DEVICE_SERIAL_NUMBER, Action::Remove),
    (tags::PROTOCOL_NAME, Action::Remove),
    (tags::REQUEST_ATTRIBUTES_SEQUENCE, Action::Remove),
    (tags::REFERENCED_PATIENT_SEQUENCE, Action::Remove),
    (tags::IMAGE_COMMENTS, Action::Remove),
    (tags::DERIVATION_DESCRIPTION, Action::Remove),
    (tags::STUDY_DESCRIPTION, Action::Remove),
    (tags::SERIES_DESCRIPTION, Action::Remove),
    (tags::STUDY_DATE, Action::Temporal),
    (tags::STUDY_TIME, Action::Temporal),
    (tags::SERIES_DATE, Action::Temporal),
    (tags::SERIES_TIME, Action::Temporal),
    (tags::ACQUISITION_DATE, Action::Temporal),
    (tags::ACQUISITION_TIME, Action::Temporal),
    (tags::ACQUISITION_DATE_TIME, Action::Temporal),
    (tags::CONTENT_DATE, Action::Temporal),
    (tags::CONTENT_TIME, Action::Temporal),
    (tags::INSTANCE_CREATION_DATE, Action::Temporal),
    (tags::INSTANCE_CREATION_TIME, Action::Temporal),
];

fn action(tag: Tag) -> Option<Action> {
    TABLE.iter().find(|(t, _)| *t == tag).map(|(_, a)| *a)
}

impl Options {
    fn digest(&self, what: &str, value: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.key.as_bytes());
        h.update([0u8]);
        h.update(what.as_bytes());
        h.update([0u8]);
        h.update(value.as_bytes());
        h.finalize().into()
    }

    /// The UID `uid` maps to: standard UIDs unchanged, others `2.25.` + 128 bits of the keyed
    /// hash.
    pub fn map_uid(&self, uid: &str) -> String {
        let uid = uid.trim_end_matches(['\0', ' ']);
        if uid.is_empty() || uid.starts_with("1.2.840.10008.") {
            return uid.to_string();
        }
        let d = self.digest("uid", uid);
        let n = u128::from_be_bytes(d[..16].try_into().expect("16 bytes"));
        format!("2.25.{n}")
    }

    /// The patient pseudonym for `id`.
    pub fn pseudonym(&self, id: &str) -> String {
        let d = self.digest("patient", id.trim());
        format!("ANON{}", d[..6].iter().map(|b| format!("{b:02X}")).collect::<String>())
    }
}

/// The de-identified copy of a data set (recursively through sequences).
pub fn anonymise_data_set(obj: &InMemDicomObject, options: &Options) -> InMemDicomObject {
    let mut out = Vec::new();
    for e in obj.iter() {
        let tag = e.header().tag;
        // Private elements, overlays (60xx) and curves (50xx) go.
        if tag.group() % 2 == 1 || (tag.group() & 0xFF00) == 0x6000 || (tag.group() & 0xFF00) == 0x5000 {
            continue;
        }
        let vr = e.header().vr;
        if let Value::Sequence(seq) = e.value() {
            if action(tag) == Some(Action::Remove) {
                continue;
            }
            let items: Vec<InMemDicomObject> = seq.items().iter().map(|i| anonymise_data_set(i, options)).collect();
            out.push(DataElement::new(tag, VR::SQ, DataSetSequence::from(items)));
            continue;
        }
        let replaced = match action(tag) {
            Some(Action::Remove) => continue,
            Some(Action::Zero) => Some(PrimitiveValue::Empty),
            Some(Action::Temporal) if !options.keep_dates => Some(PrimitiveValue::Empty),
            Some(Action::Temporal) => None,
            Some(Action::Dummy) if tag == tags::PATIENT_ID => {
                let id = e.value().to_str().map(|s| s.into_owned()).unwrap_or_default();
                Some(PrimitiveValue::from(options.pseudonym(&id)))
            }
            Some(Action::Dummy) => Some(PrimitiveValue::from("ANONYMOUS")),
            None if vr == VR::UI => {
                let v = e.value().to_str().map(|s| s.into_owned()).unwrap_or_default();
                let mapped: Vec<String> = v.split('\\').map(|u| options.map_uid(u)).collect();
                Some(PrimitiveValue::Strs(mapped.into_iter().collect()))
            }
            None => None,
        };
        match replaced {
            Some(v) => out.push(DataElement::new(tag, vr, v)),
            None => out.push(e.clone()),
        }
    }
    let mut result = InMemDicomObject::from_element_iter(out);
    result.put(DataElement::new(tags::PATIENT_IDENTITY_REMOVED, VR::CS, PrimitiveValue::from("YES")));
    let method = if options.keep_dates {
        "PS3.15 E.1 Basic Application Confidentiality Profile, Retain Full Dates (Gantry)"
    } else {
        "PS3.15 E.1 Basic Application Confidentiality Profile (Gantry)"
    };
    result.put(DataElement::new(tags::DEIDENTIFICATION_METHOD, VR::LO, PrimitiveValue::from(method)));
    let code = |value: &str, meaning: &str| {
        InMemDicomObject::from_element_iter([
            DataElement::new(tags::CODE_VALUE, VR::SH, PrimitiveValue::from(value)),
            DataElement::new(tags::CODING_SCHEME_DESIGNATOR, VR::SH, PrimitiveValue::from("DCM")),
            DataElement::new(tags::CODE_MEANING, VR::LO, PrimitiveValue::from(meaning)),
        ])
    };
    let mut codes = vec![code("113100", "Basic Application Confidentiality Profile")];
    if options.keep_dates {
        codes.push(code("113106", "Retain Longitudinal Temporal Information Full Dates Option"));
    }
    result.put(DataElement::new(tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE, VR::SQ, DataSetSequence::from(codes)));
    result
}

/// De-identifies one file into `output` (written whole or not at all); its meta group names the
/// new SOP Instance UID.
pub fn anonymise_file(input: &Path, output: &Path, options: &Options) -> Result<()> {
    let obj = super::read::open_object(input, false)?;
    let ts = obj.meta().transfer_syntax().trim_end_matches('\0').to_string();
    let class = obj.meta().media_storage_sop_class_uid().trim_end_matches('\0').to_string();
    let anonymised = anonymise_data_set(&obj, options);
    let instance = super::text(&anonymised, tags::SOP_INSTANCE_UID);
    if instance.is_empty() {
        return Err(IoError::format(
            input,
            tag_name(tags::SOP_INSTANCE_UID),
            "(absent)",
            "every instance must have a UID",
        ));
    }
    let meta = dicom_object::meta::FileMetaTableBuilder::new()
        .transfer_syntax(ts)
        .media_storage_sop_class_uid(class)
        .media_storage_sop_instance_uid(instance)
        .implementation_class_uid(super::uid::IMPLEMENTATION_CLASS_UID)
        .implementation_version_name(super::uid::IMPLEMENTATION_VERSION_NAME);
    let file = anonymised.with_meta(meta).map_err(|e| IoError::format(input, "file meta", "", e.to_string()))?;
    crate::atomic::write_atomically(output, |tmp| {
        file.write_to_file(tmp).map_err(|e| IoError::format(tmp, "DICOM file", "", e.to_string()))
    })
}

/// De-identifies every series under `input` into `output/STUDY/SERIES/INSTANCE.dcm` (the new
/// UIDs); the paths written.
pub fn anonymise_folder(input: &Path, output: &Path, options: &Options) -> Result<Vec<PathBuf>> {
    let scan = super::scan_folder(input)?;
    let mut written = Vec::new();
    for s in &scan.series {
        let study = options.map_uid(&s.patient_study.study_instance_uid);
        let folder = output.join(study).join(options.map_uid(&s.uid));
        std::fs::create_dir_all(&folder).map_err(|e| IoError::io(&folder, e))?;
        for f in &s.files {
            let header = super::read::open_header(f)?;
            let instance = options.map_uid(&super::text(&header, tags::SOP_INSTANCE_UID));
            let path = folder.join(format!("{instance}.dcm"));
            anonymise_file(f, &path, options)?;
            written.push(path);
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_map_consistently_by_key_and_standard_ones_stay() {
        let a = Options { key: "k1".into(), keep_dates: false };
        let b = Options { key: "k2".into(), keep_dates: false };
        let u = "1.2.826.0.1.3680043.8.498.1";
        assert_eq!(a.map_uid(u), a.map_uid(u));
        assert_ne!(a.map_uid(u), b.map_uid(u));
        assert!(a.map_uid(u).starts_with("2.25.") && a.map_uid(u).len() <= 64);
        assert_eq!(a.map_uid("1.2.840.10008.5.1.4.1.1.2"), "1.2.840.10008.5.1.4.1.1.2");
        assert_eq!(a.pseudonym("12345"), a.pseudonym("12345 "));
        assert_ne!(a.pseudonym("12345"), a.pseudonym("12346"));
    }
}
