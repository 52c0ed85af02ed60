//! The service user: C-ECHO and C-STORE of files, converting where the peer lacks a syntax.

use super::dimse::*;
use super::*;
use crate::dicom::text;
use crate::error::{IoError, Result};
use dicom_dictionary_std::tags;
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_object::mem::InMemDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use dicom_ul::pdu::PDataValueType;
use dicom_ul::{ClientAssociationOptions, Pdu};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// Where a peer listens: `AE@host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAddress {
    pub ae_title: String,
    pub address: String,
}

impl PeerAddress {
    /// Parses `AE@host:port`.
    pub fn parse(s: &str) -> Result<PeerAddress> {
        let bad = |why: &str| IoError::network(s, why);
        let (ae, addr) = s.split_once('@').ok_or_else(|| bad("must be AE@host:port"))?;
        if ae.is_empty() || ae.len() > 16 || !ae.is_ascii() || ae.contains('\\') {
            return Err(bad("the AE title must be 1–16 ASCII characters without a backslash"));
        }
        if !addr.contains(':') {
            return Err(bad("the address needs a port: host:port"));
        }
        Ok(PeerAddress { ae_title: ae.to_string(), address: addr.to_string() })
    }
}

impl std::fmt::Display for PeerAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.ae_title, self.address)
    }
}

/// Waits for the response command to message `id` on an association.
fn receive_response(
    receive: &mut dyn FnMut() -> std::result::Result<Pdu, dicom_ul::association::Error>,
    peer: &PeerAddress,
) -> Result<InMemDicomObject> {
    let mut buf = Vec::new();
    loop {
        match receive().map_err(|e| IoError::network(peer, format!("no response: {e}")))? {
            Pdu::PData { data } => {
                for v in data {
                    if v.value_type == PDataValueType::Command {
                        buf.extend_from_slice(&v.data);
                        if v.is_last {
                            return parse_command(&buf).map_err(|e| IoError::network(peer, e));
                        }
                    }
                }
            }
            Pdu::AbortRQ { source } => {
                return Err(IoError::network(peer, format!("aborted the association ({source:?})")))
            }
            other => return Err(IoError::network(peer, format!("unexpected {}", other.short_description()))),
        }
    }
}

/// C-ECHO: opens an association, verifies, releases. Returns the status (0 = success).
pub fn echo(peer: &PeerAddress, calling_ae: &str) -> Result<u16> {
    let mut assoc = ClientAssociationOptions::new()
        .calling_ae_title(calling_ae)
        .called_ae_title(peer.ae_title.as_str())
        .with_abstract_syntax(VERIFICATION)
        .connection_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(30))
        .establish(peer.address.as_str())
        .map_err(|e| IoError::network(peer, format!("association refused or failed: {e}")))?;
    let pc = assoc
        .presentation_contexts()
        .first()
        .map(|p| p.id)
        .ok_or_else(|| IoError::network(peer, "accepted no presentation context for Verification"))?;
    assoc.send(&command_pdu(pc, echo_rq(1))).map_err(|e| IoError::network(peer, format!("cannot send C-ECHO: {e}")))?;
    let rsp = receive_response(&mut || assoc.receive(), peer)?;
    let status =
        command_u16(&rsp, tags::STATUS).ok_or_else(|| IoError::network(peer, "C-ECHO response without a status"))?;
    let _ = assoc.release();
    Ok(status)
}

/// What a C-STORE session did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreReport {
    pub stored: usize,
    /// Files the peer did not store, with why.
    pub failed: Vec<(PathBuf, String)>,
}

fn is_uncompressed(ts: &str) -> bool {
    matches!(ts, IMPLICIT_LE | EXPLICIT_LE | "1.2.840.10008.1.2.2")
}

const DEFLATE: &str = "1.2.840.10008.1.2.1.99";

/// The transfer syntaxes a file of syntax `ts` is offered in, best first: uncompressed and
/// deflated files in any uncompressed syntax (deflate itself is never re-encoded: its output
/// upsets peers); compressed files in their own syntax, then explicit VR little endian,
/// decompressed on the way (lossless: nothing is ever compressed anew).
fn offered(ts: &str) -> Vec<String> {
    if is_uncompressed(ts) || ts == DEFLATE {
        let mut v: Vec<String> = if is_uncompressed(ts) { vec![ts.to_string()] } else { Vec::new() };
        v.extend([EXPLICIT_LE, IMPLICIT_LE].iter().filter(|t| **t != ts).map(|t| t.to_string()));
        v
    } else {
        vec![ts.to_string(), EXPLICIT_LE.to_string()]
    }
}

/// One file to send.
struct Item {
    path: PathBuf,
    class: String,
    instance: String,
    ts: String,
}

/// The data set of `it` encoded for presentation context `pc`: re-encoded between uncompressed
/// syntaxes, decompressed when the peer took an uncompressed one for a compressed file.
fn encode_for(it: &Item, pc_ts: &str) -> std::result::Result<Vec<u8>, String> {
    // Checked structurally before it is parsed (open_object runs the guard).
    let mut obj = crate::dicom::read::open_object(&it.path, false).map_err(|e| e.to_string())?;
    let ts = TransferSyntaxRegistry
        .get(pc_ts)
        .ok_or_else(|| format!("the peer accepted unknown transfer syntax {pc_ts}"))?;
    if !(is_uncompressed(&it.ts) || it.ts == DEFLATE) && it.ts != pc_ts {
        use dicom_pixeldata::Transcode;
        obj.transcode(ts).map_err(|e| format!("cannot be decompressed from {} for the peer: {e}", it.ts))?;
    }
    let mut data = Vec::new();
    obj.write_dataset_with_ts(&mut data, ts).map_err(|e| format!("cannot be encoded in {pc_ts}: {e}"))?;
    Ok(data)
}

/// C-STORE of DICOM files over one association, presentation contexts for every SOP class and
/// transfer syntax among them (each file offered in its own syntax and, when that is
/// compressed, in explicit VR little endian too; uncompressed and deflated files in the
/// uncompressed syntaxes). A file that cannot be read or encoded, or that the
/// peer has no syntax for, is reported in [`StoreReport::failed`] with its path and why; the
/// others go on. Only a failing association is an error.
pub fn store_files(peer: &PeerAddress, calling_ae: &str, files: &[PathBuf]) -> Result<StoreReport> {
    let mut report = StoreReport::default();
    let mut items = Vec::with_capacity(files.len());
    for p in files {
        let obj = match crate::dicom::read::open_header(p) {
            Ok(o) => o,
            Err(e) => {
                report.failed.push((p.clone(), e.to_string()));
                continue;
            }
        };
        let meta = obj.meta();
        // The command names what the data set says it is (the meta group may disagree with it,
        // as in some old files; the receiver checks the data set).
        let or_meta = |tag, meta_value: &str| {
            let v = text(&obj, tag);
            if v.is_empty() {
                meta_value.trim_end_matches('\0').to_string()
            } else {
                v
            }
        };
        items.push(Item {
            path: p.clone(),
            class: or_meta(tags::SOP_CLASS_UID, meta.media_storage_sop_class_uid()),
            instance: or_meta(tags::SOP_INSTANCE_UID, meta.media_storage_sop_instance_uid()),
            ts: meta.transfer_syntax().trim_end_matches('\0').to_string(),
        });
    }
    if items.is_empty() {
        return Ok(report);
    }
    // One context per SOP class and list of offered syntaxes.
    let mut proposals: Vec<(String, Vec<String>)> = Vec::new();
    for it in &items {
        let wanted = offered(&it.ts);
        if !proposals.iter().any(|(c, t)| c == &it.class && t == &wanted) {
            proposals.push((it.class.clone(), wanted));
        }
    }
    if proposals.len() > 127 {
        return Err(IoError::network(
            peer,
            format!("{} presentation contexts needed, at most 127 fit one association", proposals.len()),
        ));
    }
    let mut opts = ClientAssociationOptions::new()
        .calling_ae_title(calling_ae)
        .called_ae_title(peer.ae_title.as_str())
        .connection_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(60));
    for (class, ts) in &proposals {
        opts = opts.with_presentation_context(class.as_str(), ts.iter().map(String::as_str).collect());
    }
    let mut assoc = opts
        .establish(peer.address.as_str())
        .map_err(|e| IoError::network(peer, format!("association refused or failed: {e}")))?;
    // One small PDU answers each C-STORE: without TCP_NODELAY every exchange waits out the
    // peer's delayed acknowledgement (≈ 40 ms per instance).
    let _ = assoc.inner_stream().set_nodelay(true);
    let accepted = assoc.presentation_contexts().to_vec();
    for (n, it) in items.iter().enumerate() {
        let wanted = offered(&it.ts);
        // The file's own syntax where the peer took it, else the first of the offered ones it took.
        let pc = wanted.iter().find_map(|t| {
            accepted.iter().find(|p| {
                p.abstract_syntax.trim_end_matches('\0') == it.class && p.transfer_syntax.trim_end_matches('\0') == t
            })
        });
        let Some(pc) = pc else {
            report.failed.push((
                it.path.clone(),
                format!(
                    "the peer accepts no transfer syntax for SOP class {} in {} (offered: {})",
                    it.class,
                    it.ts,
                    wanted.join(", ")
                ),
            ));
            continue;
        };
        let data = match encode_for(it, pc.transfer_syntax.trim_end_matches('\0')) {
            Ok(d) => d,
            Err(why) => {
                report.failed.push((it.path.clone(), why));
                continue;
            }
        };
        let id = (n % 65535 + 1) as u16;
        assoc
            .send(&command_pdu(pc.id, store_rq(id, &it.class, &it.instance)))
            .map_err(|e| IoError::network(peer, format!("cannot send C-STORE of {}: {e}", it.path.display())))?;
        {
            let mut w = assoc.send_pdata(pc.id);
            let sent = w.write_all(&data).and_then(|_| w.finish());
            sent.map_err(|e| {
                IoError::network(peer, format!("cannot send the data set of {}: {e}", it.path.display()))
            })?;
        }
        let rsp = receive_response(&mut || assoc.receive(), peer)?;
        match command_u16(&rsp, tags::STATUS) {
            Some(status::SUCCESS) | Some(0xB000) | Some(0xB007) | Some(0xB006) => report.stored += 1,
            Some(s) => report.failed.push((it.path.clone(), format!("the peer answered status 0x{s:04X}"))),
            None => report.failed.push((it.path.clone(), "the peer's response has no status".into())),
        }
    }
    let _ = assoc.release();
    Ok(report)
}
