//! Stored pixel values by the standard (PS3.5 §8.1.1, PS3.3 C.7.6.3.1): each sample sits in a
//! word of Bits Allocated bits, its Bits Stored bits end at High Bit, the bits around them (an
//! overlay, garbage) are not part of the value, and Pixel Representation 1 makes the stored bits
//! two's complement, to be sign-extended. Compressed data decode to the stored bits at the low
//! end of the word; their signedness is the data set's, whatever the codestream says (a JPEG 2000
//! codestream marked unsigned for signed CT data, a JPEG-LS stream, which has no sign, both read
//! as dcmtk and pydicom read them).
//!
//! The modality LUT (Rescale Slope and Intercept) is checked here too: a slope of zero or a value
//! that is not a number would turn every pixel into the same number.

use super::tag_name;
use crate::error::{IoError, Result};
use dicom_dictionary_std::tags;
use std::path::Path;

/// How one sample is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SampleLayout {
    /// Bits Allocated: 8, 16 or 32.
    pub allocated: u16,
    /// Bits Stored: 1 ..= allocated.
    pub stored: u16,
    /// High Bit: stored − 1 ..= allocated − 1 for native data; compressed data sit at the low end.
    pub high_bit: u16,
    /// Pixel Representation 1: two's complement.
    pub signed: bool,
}

impl SampleLayout {
    /// Checks the attributes of `path`: an error names the attribute and its value.
    pub(crate) fn new(allocated: u16, stored: u16, high_bit: u16, signed: bool, path: &Path) -> Result<Self> {
        if ![8, 16, 32].contains(&allocated) {
            return Err(IoError::format(
                path,
                tag_name(tags::BITS_ALLOCATED),
                allocated,
                "grey-level images are read with 8, 16 or 32 bits allocated",
            ));
        }
        if stored == 0 || stored > allocated {
            return Err(IoError::format(
                path,
                tag_name(tags::BITS_STORED),
                stored,
                format!("must be 1 to Bits Allocated ({allocated})"),
            ));
        }
        if high_bit < stored - 1 || high_bit >= allocated {
            return Err(IoError::format(
                path,
                tag_name(tags::HIGH_BIT),
                high_bit,
                format!("must be Bits Stored − 1 ({}) to Bits Allocated − 1 ({})", stored - 1, allocated - 1),
            ));
        }
        Ok(SampleLayout { allocated, stored, high_bit, signed })
    }

    /// The value of one sample whose word (the low `allocated` bits of `word`) is as stored:
    /// `native` data keep their bits at High Bit, decoded compressed data at the low end.
    pub(crate) fn value(&self, word: u32, native: bool) -> i64 {
        let shift = if native { u32::from(self.high_bit + 1 - self.stored) } else { 0 };
        let bits = u64::from(word) >> shift & ((1u64 << self.stored) - 1);
        let sign = 1u64 << (self.stored - 1);
        if self.signed && bits & sign != 0 {
            bits as i64 - (1i64 << self.stored)
        } else {
            bits as i64
        }
    }

    /// The values of `n` samples from decoded pixel bytes (host byte order, `allocated` bits
    /// each); an error when fewer bytes are there.
    pub(crate) fn values(&self, bytes: &[u8], n: usize, native: bool, path: &Path) -> Result<Vec<f32>> {
        let width = usize::from(self.allocated / 8);
        if bytes.len() < n * width {
            return Err(IoError::format(
                path,
                tag_name(tags::PIXEL_DATA),
                format!("{} bytes", bytes.len()),
                format!("{n} samples of {} bits need {} bytes: truncated", self.allocated, n * width),
            ));
        }
        let bytes = &bytes[..n * width];
        let out = match width {
            1 => bytes.iter().map(|&b| self.value(u32::from(b), native) as f32).collect(),
            2 => bytes
                .chunks_exact(2)
                .map(|b| self.value(u32::from(u16::from_ne_bytes([b[0], b[1]])), native) as f32)
                .collect(),
            _ => bytes
                .chunks_exact(4)
                .map(|b| self.value(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]), native) as f32)
                .collect(),
        };
        Ok(out)
    }
}

/// Transfer syntaxes whose pixel data are native (not encapsulated): implicit and explicit VR
/// little endian, explicit big endian, deflated.
pub(crate) fn is_native(transfer_syntax: &str) -> bool {
    matches!(
        transfer_syntax,
        "1.2.840.10008.1.2" | "1.2.840.10008.1.2.1" | "1.2.840.10008.1.2.2" | "1.2.840.10008.1.2.1.99"
    )
}

/// Rescale Slope and Intercept as the modality LUT: both finite, the slope not zero.
pub(crate) fn check_rescale(slope: f64, intercept: f64, path: &Path) -> Result<()> {
    if !slope.is_finite() || slope == 0.0 {
        return Err(IoError::format(
            path,
            tag_name(tags::RESCALE_SLOPE),
            slope,
            "must be a finite number other than zero (every pixel would read the intercept)",
        ));
    }
    if !intercept.is_finite() {
        return Err(IoError::format(path, tag_name(tags::RESCALE_INTERCEPT), intercept, "must be a finite number"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(allocated: u16, stored: u16, high_bit: u16, signed: bool) -> SampleLayout {
        SampleLayout::new(allocated, stored, high_bit, signed, Path::new("x.dcm")).unwrap()
    }

    #[test]
    fn signed_twelve_bits_are_sign_extended_and_overlay_bits_dropped() {
        let l = layout(16, 12, 11, true);
        // −2024 as 12-bit two's complement, upper bits zero (not sign-extended by the writer).
        assert_eq!(l.value(0x0818, true), -2024);
        // The same with an overlay bit at 15.
        assert_eq!(l.value(0x8818, true), -2024);
        assert_eq!(l.value(0x07ff, true), 2047);
        let u = layout(16, 12, 11, false);
        assert_eq!(u.value(0x8000 | 1000, true), 1000);
    }

    #[test]
    fn high_bit_places_the_stored_bits_in_native_data_only() {
        // Bits 4..=15 hold the value (High Bit 15, 12 stored), as some old scanners wrote.
        let l = layout(16, 12, 15, false);
        assert_eq!(l.value(1000 << 4 | 0xf, true), 1000);
        assert_eq!(l.value(1000, false), 1000);
    }

    #[test]
    fn jpeg2000_sign_mismatch_reads_as_the_data_set_says() {
        // pydicom's example: 13 bits stored, signed; the codestream unsigned gives 6192, which is −2000.
        let l = layout(16, 13, 12, true);
        assert_eq!(l.value(6192, false), -2000);
        // Already sign-extended by the decoder: the same value.
        assert_eq!(l.value(u32::from(-2000i16 as u16), false), -2000);
    }

    #[test]
    fn impossible_layouts_and_modality_luts_name_the_attribute() {
        let p = Path::new("x.dcm");
        let e = SampleLayout::new(16, 17, 16, false, p).unwrap_err().to_string();
        assert!(e.contains("BitsStored") && e.contains("17"), "{e}");
        let e = SampleLayout::new(16, 12, 10, false, p).unwrap_err().to_string();
        assert!(e.contains("HighBit") && e.contains("10"), "{e}");
        let e = SampleLayout::new(12, 12, 11, false, p).unwrap_err().to_string();
        assert!(e.contains("BitsAllocated"), "{e}");
        let e = check_rescale(0.0, -1024.0, p).unwrap_err().to_string();
        assert!(e.contains("RescaleSlope") && e.contains('0'), "{e}");
        assert!(check_rescale(f64::NAN, 0.0, p).is_err());
        assert!(check_rescale(1.0, f64::INFINITY, p).unwrap_err().to_string().contains("RescaleIntercept"));
        assert!(check_rescale(-1.0, 0.0, p).is_ok());
    }

    #[test]
    fn values_check_the_byte_count() {
        let l = layout(16, 16, 15, true);
        let bytes: Vec<u8> = [-5i16, 7].iter().flat_map(|v| v.to_ne_bytes()).collect();
        assert_eq!(l.values(&bytes, 2, true, Path::new("x")).unwrap(), vec![-5.0, 7.0]);
        assert!(l.values(&bytes, 3, true, Path::new("x")).unwrap_err().to_string().contains("truncated"));
    }
}
