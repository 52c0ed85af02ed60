//! The DICOM network: C-ECHO and C-STORE as service user ([`echo`], [`store_files`]) and as
//! service provider ([`StoreScp`]), on dicom-ul's associations with a small DIMSE layer of our
//! own (dicom-ul has none).
//!
//! The provider stores every instance whole or not at all: the data set is checked (it must
//! parse in the negotiated transfer syntax and carry the SOP Instance UID of its command), then
//! written under `STORAGE/<study>/<series>/<instance>.dcm` through a temporary name, synced and
//! renamed, the folder synced after. A second copy of an instance replaces the first the same
//! way. A peer that misbehaves (malformed PDU, dropped connection, wrong called AE title,
//! unknown SOP class) costs its own association only.
//!
//! One module per side: [`scu`] (the service user: echo, store with conversion), [`scp`] (the
//! provider: association limits, checks, atomic storage), on a small DIMSE command encoding (`dimse`).

mod dimse;
pub mod scp;
pub mod scu;

pub use scp::{ScpConfig, ScpHandle, ScpStats, StoreScp, StoredInstance};
pub use scu::{echo, store_files, PeerAddress, StoreReport};

/// The Verification SOP Class (C-ECHO).
pub const VERIFICATION: &str = "1.2.840.10008.1.1";

/// The storage SOP classes the provider accepts: every one of the standard's, retired included
/// (see [`super::storage_classes`]).
pub fn storage_sop_classes() -> &'static [&'static str] {
    super::storage_classes::STORAGE_SOP_CLASSES
}

/// DIMSE status codes used here.
pub mod status {
    pub const SUCCESS: u16 = 0x0000;
    pub const OUT_OF_RESOURCES: u16 = 0xA700;
    pub const DATASET_DOES_NOT_MATCH: u16 = 0xA900;
    pub const CANNOT_UNDERSTAND: u16 = 0xC000;
}

const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

#[cfg(test)]
mod tests {
    use super::dimse::*;
    use super::*;
    use crate::dicom::text;
    use dicom_dictionary_std::tags;

    #[test]
    fn every_storage_class_of_the_standard_is_accepted() {
        let classes = storage_sop_classes();
        assert!(classes.len() > 150, "{}", classes.len());
        for uid in [
            "1.2.840.10008.5.1.4.1.1.2",     // CT Image
            "1.2.840.10008.5.1.4.1.1.481.1", // RT Image
            "1.2.840.10008.5.1.4.1.1.481.2", // RT Dose
            "1.2.840.10008.5.1.4.1.1.88.67", // X-Ray Radiation Dose SR
            "1.2.840.10008.5.1.4.1.1.88.59", // Key Object Selection Document
            "1.2.840.10008.5.1.4.1.1.1.2",   // Digital Mammography X-Ray Image - For Presentation
        ] {
            assert!(classes.contains(&uid), "{uid}");
        }
        assert!(!classes.contains(&"1.2.840.10008.1.3.10"));
        assert!(!classes.contains(&"1.2.840.10008.1.20.1"), "storage commitment is a service, not storage");
    }

    #[test]
    fn commands_carry_their_group_length() {
        let c = store_rq(7, "1.2.840.10008.5.1.4.1.1.2", "1.2.3.4");
        let len = u32::from_le_bytes([c[8], c[9], c[10], c[11]]) as usize;
        assert_eq!(len, c.len() - 12);
        let obj = parse_command(&c).unwrap();
        assert_eq!(command_u16(&obj, tags::COMMAND_FIELD), Some(1));
        assert_eq!(command_u16(&obj, tags::MESSAGE_ID), Some(7));
        assert_eq!(text(&obj, tags::AFFECTED_SOP_INSTANCE_UID), "1.2.3.4");
    }

    #[test]
    fn peer_addresses_parse_or_explain() {
        let p = PeerAddress::parse("ORTHANC@127.0.0.1:4242").unwrap();
        assert_eq!((p.ae_title.as_str(), p.address.as_str()), ("ORTHANC", "127.0.0.1:4242"));
        assert!(PeerAddress::parse("127.0.0.1:4242").unwrap_err().to_string().contains("AE@host:port"));
        assert!(PeerAddress::parse("A@host").unwrap_err().to_string().contains("port"));
        assert!(PeerAddress::parse("WAY_TOO_LONG_AE_TITLE@h:1").is_err());
    }
}
