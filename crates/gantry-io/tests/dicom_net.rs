//! The DICOM node against itself (SCU ↔ SCP on port 0) and against dcmtk's echoscu/storescu;
//! misbehaving peers cost one association, never the server, and leave nothing half-stored.

use dicom_dictionary_std::tags;
use dicom_ul::pdu::{PDataValue, PDataValueType};
use dicom_ul::{ClientAssociationOptions, Pdu};
use gantry_core::{Volume, VolumeGeometry};
use gantry_io::dicom::net::{echo, store_files, PeerAddress, ScpConfig, ScpHandle, StoreScp};
use gantry_io::dicom::{read_series_volume, scan_folder, write_ct_series, SeriesMeta};
use ndarray::Array3;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

mod common;
use common::peer;

fn volume(nx: usize, nz: usize, offset: f32) -> Volume {
    let g = VolumeGeometry::centered([nx, nx, nz], [0.8, 0.8, 1.25], [0.0; 3]).unwrap();
    let data =
        Array3::from_shape_fn((nz, nx, nx), |(k, j, i)| offset + (i * 7 + j * 3 + k * 11) as f32 % 500.0 - 100.0);
    Volume::of(gantry_core::Quantity::Hounsfield, g, data).unwrap()
}

fn series(dir: &Path, nx: usize, nz: usize, seed: u64) -> Vec<PathBuf> {
    write_ct_series(dir, &volume(nx, nz, seed as f32), &SeriesMeta { uid_seed: Some(seed), ..SeriesMeta::default() })
        .unwrap()
}

fn start(storage: &Path, config: impl FnOnce(&mut ScpConfig)) -> (ScpHandle, PeerAddress) {
    let mut c = ScpConfig::new("GANTRY", storage);
    c.timeout = Duration::from_secs(5);
    config(&mut c);
    let scp = StoreScp::bind("127.0.0.1:0", c).unwrap().spawn().unwrap();
    let peer = PeerAddress { ae_title: "GANTRY".into(), address: scp.local_addr().to_string() };
    (scp, peer)
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn echo_and_store_round_trip_and_duplicates_replace() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("store");
    let (scp, peer) = start(&storage, |_| {});
    assert_eq!(echo(&peer, "TESTSCU").unwrap(), 0);
    let src = series(&dir.path().join("src"), 24, 7, 1);
    let report = store_files(&peer, "TESTSCU", &src).unwrap();
    assert_eq!(report.stored, 7, "{report:?}");
    assert!(report.failed.is_empty());
    let stored = files(&storage);
    assert_eq!(stored.len(), 7, "{stored:?}");
    let a = read_series_volume(&scan_folder(&dir.path().join("src")).unwrap().series[0]).unwrap();
    let b = read_series_volume(&scan_folder(&storage).unwrap().series[0]).unwrap();
    assert_eq!(a, b, "the stored series reads back the same");
    // The same instances again: replaced, not doubled.
    assert_eq!(store_files(&peer, "TESTSCU", &src).unwrap().stored, 7);
    assert_eq!(files(&storage).len(), 7);
    assert_eq!(scp.stats.duplicates.load(Ordering::Relaxed), 7);
    assert_eq!(scp.stats.stored.load(Ordering::Relaxed), 14);
    // A copy of one instance whose pixel data were cut to half: refused, the good one kept.
    let cut = dir.path().join("cut.dcm");
    let mut obj = dicom_object::open_file(&src[3]).unwrap();
    let bytes = obj.element(tags::PIXEL_DATA).unwrap().value().to_bytes().unwrap().to_vec();
    obj.put(dicom_core::DataElement::new(
        tags::PIXEL_DATA,
        dicom_core::VR::OW,
        dicom_core::PrimitiveValue::from(bytes[..bytes.len() / 2].to_vec()),
    ));
    obj.write_to_file(&cut).unwrap();
    let report = store_files(&peer, "TESTSCU", &[cut]).unwrap();
    assert_eq!(report.stored, 0, "{report:?}");
    assert_eq!(scp.stats.refused_instances.load(Ordering::Relaxed), 1);
    let again = read_series_volume(&scan_folder(&storage).unwrap().series[0]).unwrap();
    assert_eq!(a, again, "the good instance is still there");
    scp.stop();
}

#[test]
fn wrong_called_ae_and_unknown_callers_are_rejected_and_the_node_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (scp, peer) = start(&dir.path().join("s"), |c| c.accepted_callers = vec!["FRIEND".into()]);
    let wrong = PeerAddress { ae_title: "NOTGANTRY".into(), ..peer.clone() };
    let e = echo(&wrong, "FRIEND").unwrap_err().to_string();
    assert!(e.contains("refused") || e.contains("rejected"), "{e}");
    let e = echo(&peer, "STRANGER").unwrap_err().to_string();
    assert!(e.contains("refused") || e.contains("rejected"), "{e}");
    assert_eq!(echo(&peer, "FRIEND").unwrap(), 0);
    assert_eq!(scp.stats.rejected.load(Ordering::Relaxed), 2);
    scp.stop();
}

#[test]
fn unknown_sop_class_is_refused_in_negotiation_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("s");
    let (scp, peer) = start(&storage, |_| {});
    let src = series(&dir.path().join("src"), 16, 2, 2);
    // Rewrite one file as a SOP class the node does not know.
    let mut obj = dicom_object::open_file(&src[0]).unwrap();
    obj.put(dicom_core::DataElement::new(
        tags::SOP_CLASS_UID,
        dicom_core::VR::UI,
        dicom_core::PrimitiveValue::from("1.2.3.4.5.6"),
    ));
    let obj = obj
        .into_inner()
        .with_meta(dicom_object::FileMetaTableBuilder::new().transfer_syntax("1.2.840.10008.1.2.1"))
        .unwrap();
    obj.write_to_file(&src[0]).unwrap();
    let report = store_files(&peer, "TESTSCU", &src).unwrap();
    assert_eq!(report.stored, 1);
    assert_eq!(report.failed.len(), 1);
    assert!(report.failed[0].1.contains("1.2.3.4.5.6"), "{report:?}");
    assert_eq!(files(&storage).len(), 1);
    scp.stop();
}

#[test]
fn malformed_pdus_and_dropped_transfers_cost_one_association_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("s");
    let (scp, peer) = start(&storage, |_| {});
    // Garbage instead of an A-ASSOCIATE-RQ.
    let mut s = std::net::TcpStream::connect(&peer.address).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    drop(s);
    // An association whose second PDU is garbage.
    let mut a = ClientAssociationOptions::new()
        .calling_ae_title("BAD")
        .called_ae_title("GANTRY")
        .with_abstract_syntax("1.2.840.10008.5.1.4.1.1.2")
        .establish(peer.address.as_str())
        .unwrap();
    a.inner_stream().write_all(&[0x09, 0, 0, 0, 0, 3, 1, 2, 3]).unwrap(); // no such PDU type
    let answer = a.receive();
    assert!(matches!(answer, Ok(Pdu::AbortRQ { .. })), "expected an A-ABORT, got {answer:?}");
    // A C-STORE that stops halfway: command, half the data set, then the connection drops.
    let src = series(&dir.path().join("src"), 32, 1, 3);
    let obj = dicom_object::open_file(&src[0]).unwrap();
    let mut a = ClientAssociationOptions::new()
        .calling_ae_title("DROPPER")
        .called_ae_title("GANTRY")
        .with_presentation_context("1.2.840.10008.5.1.4.1.1.2", vec!["1.2.840.10008.1.2.1"])
        .establish(peer.address.as_str())
        .unwrap();
    let pc = a.presentation_contexts()[0].id;
    let mut cmd = Vec::new();
    let rq = dicom_object::InMemDicomObject::from_element_iter([
        dicom_core::DataElement::new(
            tags::AFFECTED_SOP_CLASS_UID,
            dicom_core::VR::UI,
            dicom_core::PrimitiveValue::from("1.2.840.10008.5.1.4.1.1.2"),
        ),
        dicom_core::DataElement::new(tags::COMMAND_FIELD, dicom_core::VR::US, dicom_core::PrimitiveValue::from(1u16)),
        dicom_core::DataElement::new(tags::MESSAGE_ID, dicom_core::VR::US, dicom_core::PrimitiveValue::from(1u16)),
        dicom_core::DataElement::new(
            tags::COMMAND_DATA_SET_TYPE,
            dicom_core::VR::US,
            dicom_core::PrimitiveValue::from(0u16),
        ),
        dicom_core::DataElement::new(
            tags::AFFECTED_SOP_INSTANCE_UID,
            dicom_core::VR::UI,
            dicom_core::PrimitiveValue::from(obj.meta().media_storage_sop_instance_uid().trim_end_matches('\0')),
        ),
    ]);
    use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
    let implicit = dicom_transfer_syntax_registry::TransferSyntaxRegistry.get("1.2.840.10008.1.2").unwrap();
    rq.write_dataset_with_ts(&mut cmd, implicit).unwrap();
    a.send(&Pdu::PData {
        data: vec![PDataValue {
            presentation_context_id: pc,
            value_type: PDataValueType::Command,
            is_last: true,
            data: cmd,
        }],
    })
    .unwrap();
    let explicit = dicom_transfer_syntax_registry::TransferSyntaxRegistry.get("1.2.840.10008.1.2.1").unwrap();
    let mut data = Vec::new();
    obj.write_dataset_with_ts(&mut data, explicit).unwrap();
    data.truncate(data.len() / 2);
    a.send(&Pdu::PData {
        data: vec![PDataValue { presentation_context_id: pc, value_type: PDataValueType::Data, is_last: false, data }],
    })
    .unwrap();
    drop(a);
    // The node still answers, and stored nothing, not even a temporary file.
    let t = Instant::now();
    while scp.stats.aborted.load(Ordering::Relaxed) < 2 && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(echo(&peer, "TESTSCU").unwrap(), 0);
    assert!(files(&storage).is_empty(), "{:?}", files(&storage));
    assert_eq!(scp.stats.stored.load(Ordering::Relaxed), 0);
    assert!(scp.stats.aborted.load(Ordering::Relaxed) >= 2);
    // And it still stores.
    assert_eq!(store_files(&peer, "TESTSCU", &src).unwrap().stored, 1);
    scp.stop();
}

/// Beyond `max_associations` a connection is closed at once; once the idle ones time out the
/// node serves again; a data set over `max_instance_bytes` aborts its association and stores
/// nothing.
#[test]
fn connections_beyond_the_cap_are_closed_and_oversized_data_sets_abort() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("s");
    let (scp, peer) = start(&storage, |c| {
        c.max_associations = 2;
        c.timeout = Duration::from_millis(800);
        c.max_instance_bytes = 4000;
    });
    // Two idle connections hold both places.
    let idle: Vec<std::net::TcpStream> = (0..2).map(|_| std::net::TcpStream::connect(&peer.address).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(150));
    let mut third = std::net::TcpStream::connect(&peer.address).unwrap();
    third.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let t = Instant::now();
    let mut buf = [0u8; 16];
    let n = third.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the third connection should be closed, not answered");
    assert!(t.elapsed() < Duration::from_millis(700), "closed after {:?}", t.elapsed());
    assert!(scp.stats.rejected.load(Ordering::Relaxed) >= 1);
    // The idle ones time out; then the node answers again.
    std::thread::sleep(Duration::from_millis(1500));
    drop(idle);
    assert_eq!(echo(&peer, "ME").unwrap(), 0);
    // A slice of 64 × 64 16-bit pixels is over 4000 bytes: refused by aborting, nothing stored.
    let src = series(&dir.path().join("src"), 64, 1, 31);
    let report = store_files(&peer, "ME", &src);
    assert!(report.map(|r| r.stored).unwrap_or(0) == 0);
    assert!(files(&storage).iter().all(|f| f.extension().is_none_or(|e| e != "dcm")), "{:?}", files(&storage));
    scp.stop();
}

#[test]
fn eight_concurrent_associations_of_200_instances_lose_and_double_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("s");
    let (scp, peer) = start(&storage, |_| {});
    let sources: Vec<Vec<PathBuf>> =
        (0..8).map(|i| series(&dir.path().join(format!("src{i}")), 16, 200, 100 + i)).collect();
    let handles: Vec<_> = sources
        .into_iter()
        .map(|src| {
            let peer = peer.clone();
            std::thread::spawn(move || store_files(&peer, "LOAD", &src).unwrap())
        })
        .collect();
    for h in handles {
        let r = h.join().unwrap();
        assert_eq!(r.stored, 200, "{:?}", r.failed.first());
    }
    let stored = files(&storage);
    assert_eq!(stored.len(), 1600);
    assert!(stored.iter().all(|p| p.extension().is_some_and(|e| e == "dcm")));
    let scan = scan_folder(&storage).unwrap();
    assert_eq!(scan.series.len(), 8);
    assert!(scan.series.iter().all(|s| s.files.len() == 200));
    assert_eq!(scp.stats.stored.load(Ordering::Relaxed), 1600);
    assert_eq!(scp.stats.duplicates.load(Ordering::Relaxed), 0);
    scp.stop();
}

#[test]
fn dcmtk_echoscu_and_storescu_talk_to_the_node() {
    let (Some(echoscu), Some(storescu)) = (peer("echoscu"), peer("storescu")) else { return };
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("s");
    let (scp, peer) = start(&storage, |_| {});
    let port = scp.local_addr().port().to_string();
    let out = Command::new(&echoscu).args(["-aet", "DCMTK", "-aec", "GANTRY", "127.0.0.1", &port]).output().unwrap();
    assert!(out.status.success(), "echoscu: {}", String::from_utf8_lossy(&out.stderr));
    let src_dir = dir.path().join("src");
    series(&src_dir, 20, 12, 4);
    let out = Command::new(&storescu)
        .args(["-aet", "DCMTK", "-aec", "GANTRY", "+sd", "+r", "127.0.0.1", &port])
        .arg(&src_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "storescu: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(files(&storage).len(), 12);
    let a = read_series_volume(&scan_folder(&src_dir).unwrap().series[0]).unwrap();
    let b = read_series_volume(&scan_folder(&storage).unwrap().series[0]).unwrap();
    assert_eq!(a, b);
    // storescu to a wrong AE title: refused, the node lives on.
    let out = Command::new(&storescu)
        .args(["-aet", "DCMTK", "-aec", "OTHER", "127.0.0.1", &port])
        .arg(src_dir.join("CT00001.dcm"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(echo(&peer, "X").unwrap(), 0);
    scp.stop();
}

/// Conversion on send: RLE and JPEG-lossless files (made by dcmtk) sent to a node that accepts
/// only uncompressed syntaxes arrive decompressed with the same pixels; a deflated file (dcmtk
/// `dcmconv +td`) is sent uncompressed, never re-deflated; a file that cannot be read is
/// reported by name while the others go.
#[test]
fn compressed_files_are_decompressed_for_a_peer_without_their_syntax() {
    let (Some(dcmcrle), Some(dcmcjpeg), Some(dcmconv)) = (peer("dcmcrle"), peer("dcmcjpeg"), peer("dcmconv")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let src = series(&dir.path().join("src"), 32, 3, 41);
    let original = read_series_volume(&scan_folder(&dir.path().join("src")).unwrap().series[0]).unwrap();
    let conv = dir.path().join("conv");
    std::fs::create_dir(&conv).unwrap();
    let mut sent = Vec::new();
    for (i, (tool, flag)) in [(&dcmcrle, None), (&dcmcjpeg, None), (&dcmconv, Some("+td"))].into_iter().enumerate() {
        let out_path = conv.join(format!("{i}.dcm"));
        let mut c = Command::new(tool);
        if let Some(f) = flag {
            c.arg(f);
        }
        let out = c.arg(&src[i]).arg(&out_path).output().unwrap();
        assert!(out.status.success(), "{}: {}", tool.display(), String::from_utf8_lossy(&out.stderr));
        sent.push(out_path);
    }
    let broken = conv.join("broken.dcm");
    std::fs::write(&broken, &std::fs::read(&src[0]).unwrap()[..400]).unwrap();
    sent.push(broken.clone());
    let storage = dir.path().join("s");
    let (scp, peer) = start(&storage, |c| {
        c.transfer_syntaxes = Some(vec!["1.2.840.10008.1.2.1".into(), "1.2.840.10008.1.2".into()]);
    });
    let report = store_files(&peer, "ME", &sent).unwrap();
    assert_eq!(report.stored, 3, "{report:?}");
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].0, broken, "{report:?}");
    for f in files(&storage) {
        let ts = dicom_object::open_file(&f).unwrap().meta().transfer_syntax().trim_end_matches('\0').to_string();
        assert!(ts == "1.2.840.10008.1.2.1" || ts == "1.2.840.10008.1.2", "{}: {ts}", f.display());
    }
    let back = read_series_volume(&scan_folder(&storage).unwrap().series[0]).unwrap();
    assert_eq!(back, original, "decompressed pixels differ");
    scp.stop();
}

/// Every storage class is accepted: pydicom's RT Dose, RT Plan, RT Structure Set (a bare data
/// set without meta group) and SR files, whose meta groups partly disagree with their data
/// sets (the command names what the data set says), are all stored.
#[test]
fn rt_and_sr_objects_from_pydicom_are_stored() {
    let python = match gantry_testkit::python_with(&["pydicom"]) {
        Ok(p) => p,
        Err(why) => {
            assert!(!gantry_testkit::require_peers(), "{why}");
            eprintln!("skipping: {why}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let code = "import pydicom.data as d\nfor n in ['rtdose.dcm', 'rtplan.dcm', 'rtstruct.dcm', 'test-SR.dcm']: print(d.get_testdata_file(n))";
    let listed = gantry_testkit::python(&python, dir.path(), code, &[]).unwrap();
    let sent: Vec<PathBuf> = listed.lines().map(PathBuf::from).collect();
    assert_eq!(sent.len(), 4);
    let storage = dir.path().join("s");
    let (scp, peer) = start(&storage, |_| {});
    let report = store_files(&peer, "ME", &sent).unwrap();
    assert_eq!(report.stored, 4, "{report:?}");
    assert_eq!(files(&storage).len(), 4);
    scp.stop();
}
