//! A structural check of DICOM bytes before they are parsed: every element's length must fit
//! in the bytes actually present (and in its sequence or item), every explicit VR must be one the
//! standard defines, sequences and items must close. A parser handed a damaged file (one byte of
//! a VR changed) can otherwise read a length of gigabytes from the value and allocate it before
//! it notices the file is short; checked first, a damaged file costs its own size in memory.
//!
//! Deflated data sets (1.2.840.10008.1.2.1.99) are checked up to the deflated stream only.

use super::tag_name;
use crate::error::{IoError, Result};
use dicom_core::Tag;
use std::path::Path;

/// Explicit VRs with a 2-byte reserved field and a 4-byte length; the other known ones have a
/// 2-byte length.
const LONG_VRS: [&[u8; 2]; 13] =
    [b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV"];
const SHORT_VRS: [&[u8; 2]; 21] = [
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"PN", b"SH", b"SL", b"SS",
    b"ST", b"TM", b"UI", b"UL", b"US",
];

const UNDEFINED: u32 = 0xFFFF_FFFF;
const ITEM: Tag = Tag(0xFFFE, 0xE000);
const ITEM_END: Tag = Tag(0xFFFE, 0xE00D);
const SEQUENCE_END: Tag = Tag(0xFFFE, 0xE0DD);
const PIXEL_DATA: Tag = Tag(0x7FE0, 0x0010);
/// Nesting deeper than this is refused (a crafted file could otherwise recurse without end).
const MAX_DEPTH: usize = 32;

/// How the data set is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Encoding {
    pub explicit: bool,
    pub little: bool,
}

impl Encoding {
    /// The encoding of a transfer syntax; None for deflate (not checked past the meta group).
    pub(crate) fn of(transfer_syntax: &str) -> Option<Encoding> {
        match transfer_syntax.trim_end_matches(['\0', ' ']) {
            "1.2.840.10008.1.2" => Some(Encoding { explicit: false, little: true }),
            "1.2.840.10008.1.2.2" => Some(Encoding { explicit: true, little: false }),
            "1.2.840.10008.1.2.1.99" => None,
            _ => Some(Encoding { explicit: true, little: true }),
        }
    }
}

#[derive(Clone, Copy)]
struct Walker<'a> {
    bytes: &'a [u8],
    path: &'a Path,
    enc: Encoding,
    /// Stop (successfully) at the top-level pixel data: a header read.
    until_pixels: bool,
}

enum Ended {
    /// The range ran out (or the pixel data were reached on a header read).
    Range,
    /// An item or sequence delimiter closed it.
    Delimiter(Tag),
}

impl Walker<'_> {
    fn error(&self, at: usize, tag: Option<Tag>, reason: String) -> IoError {
        let field = tag.map(tag_name).unwrap_or_else(|| "DICOM data set".into());
        IoError::format(self.path, field, format!("at byte {at}"), reason)
    }

    fn u16(&self, at: usize) -> u16 {
        let b = [self.bytes[at], self.bytes[at + 1]];
        if self.enc.little {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        }
    }

    fn u32(&self, at: usize) -> u32 {
        let b = [self.bytes[at], self.bytes[at + 1], self.bytes[at + 2], self.bytes[at + 3]];
        if self.enc.little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    }

    /// Walks the elements in `pos..end` at nesting `depth`; with `fragments`, items are
    /// encapsulated pixel fragments (opaque bytes), not data sets.
    fn elements(&self, mut pos: usize, end: usize, depth: usize, fragments: bool) -> Result<(usize, Ended)> {
        if depth > MAX_DEPTH {
            return Err(self.error(pos, None, format!("sequences nested deeper than {MAX_DEPTH}")));
        }
        while pos < end {
            if end - pos < 8 {
                return Err(self.error(
                    pos,
                    None,
                    format!("{} stray bytes where an element header must be", end - pos),
                ));
            }
            // Delimiters and items are always little-endian-or-as-encoded tags with a 4-byte length.
            let tag = Tag(self.u16(pos), self.u16(pos + 2));
            if tag == ITEM_END || tag == SEQUENCE_END {
                return Ok((pos + 8, Ended::Delimiter(tag)));
            }
            if depth == 0 && self.until_pixels && tag == PIXEL_DATA {
                return Ok((pos, Ended::Range));
            }
            let (vr, len, header): (Option<[u8; 2]>, u32, usize) = if self.enc.explicit && tag.0 != 0xFFFE {
                let vr = [self.bytes[pos + 4], self.bytes[pos + 5]];
                if LONG_VRS.iter().any(|v| **v == vr) {
                    if end - pos < 12 {
                        return Err(self.error(pos, Some(tag), "the element header is cut off".into()));
                    }
                    (Some(vr), self.u32(pos + 8), 12)
                } else if SHORT_VRS.iter().any(|v| **v == vr) {
                    (Some(vr), u32::from(self.u16(pos + 6)), 8)
                } else {
                    return Err(self.error(
                        pos,
                        Some(tag),
                        format!(
                            "value representation {:?} is not one the standard defines",
                            String::from_utf8_lossy(&vr)
                        ),
                    ));
                }
            } else {
                (None, self.u32(pos + 4), 8)
            };
            let start = pos + header;
            if len == UNDEFINED {
                let can_be_undefined = tag == ITEM
                    || matches!(
                        vr.as_ref().map(|v| &v[..]),
                        None | Some(b"SQ") | Some(b"UN") | Some(b"OB") | Some(b"OW")
                    );
                if !can_be_undefined {
                    return Err(self.error(
                        pos,
                        Some(tag),
                        "an undefined length on a value that cannot have one".into(),
                    ));
                }
                pos = self.undefined(tag, vr, start, end, depth)?;
                continue;
            }
            let len = len as usize;
            if len > end - start {
                return Err(self.error(
                    pos,
                    Some(tag),
                    if end == self.bytes.len() {
                        format!("its length {len} exceeds the {} bytes left in the file: truncated", end - start)
                    } else {
                        format!("its length {len} exceeds the {} bytes left in its sequence or item", end - start)
                    },
                ));
            }
            let sequence = match vr {
                Some(v) => &v == b"SQ",
                None => is_sequence_in_dictionary(tag),
            };
            if sequence || (tag == ITEM && !fragments) {
                let (_, ended) = self.elements(start, start + len, depth + 1, false)?;
                if let Ended::Delimiter(d) = ended {
                    return Err(self.error(start, Some(d), "a delimiter inside a value of defined length".into()));
                }
            }
            pos = start + len;
        }
        Ok((pos, Ended::Range))
    }

    /// Walks a value of undefined length (a sequence, an item, encapsulated pixel data, or UN
    /// holding an implicit-VR sequence) starting at `start`; the position after its delimiter.
    fn undefined(&self, tag: Tag, vr: Option<[u8; 2]>, start: usize, end: usize, depth: usize) -> Result<usize> {
        let vr = vr.as_ref().map(|v| &v[..]);
        let (closes, ended) = if tag == ITEM {
            (ITEM_END, self.elements(start, end, depth + 1, false)?)
        } else if matches!(vr, Some(b"OB") | Some(b"OW")) {
            (SEQUENCE_END, self.elements(start, end, depth + 1, true)?)
        } else if vr == Some(b"UN") {
            let implicit = Walker { enc: Encoding { explicit: false, little: true }, ..*self };
            (SEQUENCE_END, implicit.elements(start, end, depth + 1, false)?)
        } else {
            (SEQUENCE_END, self.elements(start, end, depth + 1, false)?)
        };
        match ended {
            (pos, Ended::Delimiter(d)) if d == closes => Ok(pos),
            (pos, Ended::Delimiter(d)) => {
                Err(self.error(pos - 8, Some(d), format!("the wrong delimiter for {}", tag_name(tag))))
            }
            (_, Ended::Range) => Err(self.error(start, Some(tag), "its undefined-length value is never closed".into())),
        }
    }
}

/// Whether the standard dictionary gives `tag` the VR SQ (for implicit-VR data sets).
fn is_sequence_in_dictionary(tag: Tag) -> bool {
    use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
    dicom_dictionary_std::StandardDataDictionary
        .by_tag(tag)
        .is_some_and(|e| matches!(e.vr(), VirtualVr::Exact(dicom_core::VR::SQ)))
}

/// Checks a file's bytes: the preamble and meta group (explicit little endian), then the data
/// set in the meta group's transfer syntax, up to the pixel data when `until_pixels`.
pub(crate) fn check_file(path: &Path, bytes: &[u8], until_pixels: bool) -> Result<()> {
    if bytes.len() < 132 || &bytes[128..132] != b"DICM" {
        return Err(IoError::format(path, "DICOM preamble", "", "no \"DICM\" after the 128-byte preamble"));
    }
    let meta = Walker { bytes, path, enc: Encoding { explicit: true, little: true }, until_pixels: false };
    // The meta group: elements of group 0002, in explicit little endian.
    let mut pos = 132;
    let mut transfer_syntax = String::new();
    while bytes.len() - pos >= 8 && u16::from_le_bytes([bytes[pos], bytes[pos + 1]]) == 0x0002 {
        let next = meta.elements_one(pos)?;
        let tag = Tag(0x0002, u16::from_le_bytes([bytes[pos + 2], bytes[pos + 3]]));
        if tag == Tag(0x0002, 0x0010) {
            transfer_syntax = String::from_utf8_lossy(&bytes[pos + 8..next]).into_owned();
        }
        pos = next;
    }
    let Some(enc) = Encoding::of(&transfer_syntax) else { return Ok(()) };
    let walker = Walker { bytes, path, enc, until_pixels };
    match walker.elements(pos, bytes.len(), 0, false)? {
        (_, Ended::Range) => Ok(()),
        (at, Ended::Delimiter(d)) => Err(walker.error(at - 8, Some(d), "a delimiter outside any sequence".into())),
    }
}

/// Reads a file and checks it ([`check_file`]); an error names the file.
pub(crate) fn check_path(path: &Path, until_pixels: bool) -> Result<()> {
    let bytes = std::fs::read(path).map_err(|e| IoError::io(path, e))?;
    check_file(path, &bytes, until_pixels)
}

/// Checks a data set received over the network in `transfer_syntax`.
pub(crate) fn check_data_set(what: &Path, bytes: &[u8], transfer_syntax: &str) -> Result<()> {
    let Some(enc) = Encoding::of(transfer_syntax) else { return Ok(()) };
    let walker = Walker { bytes, path: what, enc, until_pixels: false };
    match walker.elements(0, bytes.len(), 0, false)? {
        (_, Ended::Range) => Ok(()),
        (at, Ended::Delimiter(d)) => Err(walker.error(at - 8, Some(d), "a delimiter outside any sequence".into())),
    }
}

impl Walker<'_> {
    /// One meta element at `pos` (explicit little endian, short or long VR); the position after it.
    fn elements_one(&self, pos: usize) -> Result<usize> {
        let tag = Tag(self.u16(pos), self.u16(pos + 2));
        let vr = [self.bytes[pos + 4], self.bytes[pos + 5]];
        let (len, header) = if LONG_VRS.iter().any(|v| **v == vr) {
            if self.bytes.len() - pos < 12 {
                return Err(self.error(pos, Some(tag), "the element header is cut off".into()));
            }
            (self.u32(pos + 8) as usize, 12)
        } else if SHORT_VRS.iter().any(|v| **v == vr) {
            (usize::from(self.u16(pos + 6)), 8)
        } else {
            return Err(self.error(
                pos,
                Some(tag),
                format!("value representation {:?} is not one the standard defines", String::from_utf8_lossy(&vr)),
            ));
        };
        if len > self.bytes.len() - pos - header {
            return Err(self.error(
                pos,
                Some(tag),
                format!("its length {len} exceeds the bytes left in the file: truncated"),
            ));
        }
        Ok(pos + header + len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn element(tag: (u16, u16), vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&tag.0.to_le_bytes());
        out.extend_from_slice(&tag.1.to_le_bytes());
        out.extend_from_slice(vr);
        if LONG_VRS.contains(&vr) {
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        } else {
            out.extend_from_slice(&(value.len() as u16).to_le_bytes());
        }
        out.extend_from_slice(value);
        out
    }

    fn file(data_set: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 128];
        f.extend_from_slice(b"DICM");
        f.extend(element((0x0002, 0x0010), b"UI", b"1.2.840.10008.1.2.1\0"));
        f.extend_from_slice(data_set);
        f
    }

    #[test]
    fn good_data_sets_pass_and_nested_sequences_are_walked() {
        let mut ds = element((0x0008, 0x0060), b"CS", b"CT");
        // A sequence of undefined length with one item of undefined length.
        ds.extend_from_slice(&[0x08, 0x00, 0x15, 0x11, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]);
        ds.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        ds.extend(element((0x0008, 0x1150), b"UI", b"1.2\0"));
        ds.extend_from_slice(&[0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0]);
        ds.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        ds.extend(element((0x7FE0, 0x0010), b"OW", &[0u8; 8]));
        check_file(Path::new("x.dcm"), &file(&ds), false).unwrap();
    }

    #[test]
    fn a_changed_vr_or_an_oversized_length_is_an_error_naming_the_element() {
        let mut ds = element((0x0008, 0x0060), b"CS", b"CT");
        ds[4] = 0xFF;
        let e = check_file(Path::new("x.dcm"), &file(&ds), false).unwrap_err().to_string();
        assert!(e.contains("Modality") && e.contains("not one the standard defines"), "{e}");
        let mut ds = element((0x0010, 0x0010), b"PN", b"DOE^J");
        ds.extend(element((0x7FE0, 0x0010), b"OW", &[0u8; 8]));
        let n = ds.len();
        ds[n - 12] = 0xFF; // the pixel data's length now 255 + 8
        let f = file(&ds);
        let e = check_file(Path::new("x.dcm"), &f, false).unwrap_err().to_string();
        assert!(e.contains("PixelData") && e.contains("exceeds"), "{e}");
        // A header read stops before the pixel data.
        check_file(Path::new("x.dcm"), &f, true).unwrap();
    }

    #[test]
    fn unclosed_sequences_and_stray_delimiters_are_errors() {
        let mut ds = vec![0x08, 0x00, 0x15, 0x11, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF];
        ds.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        let e = check_file(Path::new("x.dcm"), &file(&ds), false).unwrap_err().to_string();
        assert!(e.contains("never closed"), "{e}");
        let ds = [0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0];
        assert!(check_file(Path::new("x.dcm"), &file(&ds), false).is_err());
    }
}
