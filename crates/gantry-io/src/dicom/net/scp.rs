//! The service provider: C-ECHO and C-STORE, each instance checked and stored whole or not
//! at all, each association bounded.

use super::dimse::*;
use super::*;
use crate::atomic::write_atomically;
use crate::dicom::uid::{is_valid_uid, IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME};
use crate::dicom::{tag_name, text};
use crate::error::{IoError, Result};
use dicom_dictionary_std::tags;
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_object::mem::InMemDicomObject;
use dicom_object::FileMetaTableBuilder;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use dicom_ul::association::server::AccessControl;
use dicom_ul::pdu::{AssociationRJServiceUserReason, PDataValueType, UserIdentity};
use dicom_ul::{Pdu, ServerAssociation, ServerAssociationOptions};
use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How `gantry serve` answers.
#[derive(Debug, Clone)]
pub struct ScpConfig {
    /// This node's AE title; associations calling another title are rejected.
    pub ae_title: String,
    /// Calling AE titles allowed in; empty: any.
    pub accepted_callers: Vec<String>,
    /// Where instances are stored.
    pub storage: PathBuf,
    /// Maximum PDU length offered (bytes).
    pub max_pdu_length: u32,
    /// A peer silent this long loses its association.
    pub timeout: Duration,
    /// Associations served at once; a connection beyond them is closed at once (counted as
    /// rejected, with a log line).
    pub max_associations: usize,
    /// An association open longer than this is aborted, however busy.
    pub association_limit: Duration,
    /// A data set larger than this (bytes, as received) aborts its association.
    pub max_instance_bytes: usize,
    /// The transfer syntaxes accepted; None: every one this build decodes.
    pub transfer_syntaxes: Option<Vec<String>>,
}

impl ScpConfig {
    pub fn new(ae_title: &str, storage: &Path) -> ScpConfig {
        ScpConfig {
            ae_title: ae_title.to_string(),
            accepted_callers: Vec::new(),
            storage: storage.to_owned(),
            max_pdu_length: 65_536,
            timeout: Duration::from_secs(60),
            max_associations: 32,
            association_limit: Duration::from_secs(3600),
            max_instance_bytes: 1 << 30,
            transfer_syntaxes: None,
        }
    }
}

/// Counters of a running provider.
#[derive(Debug, Default)]
pub struct ScpStats {
    pub associations: AtomicU64,
    pub rejected: AtomicU64,
    pub aborted: AtomicU64,
    pub stored: AtomicU64,
    pub duplicates: AtomicU64,
    pub refused_instances: AtomicU64,
}

/// One stored instance, as the provider reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredInstance {
    pub path: PathBuf,
    pub study_uid: String,
    pub series_uid: String,
    pub sop_instance_uid: String,
    pub modality: String,
    pub series_description: String,
    pub calling_ae: String,
    /// A copy of this instance was already stored and has been replaced.
    pub replaced: bool,
}

type OnStored = dyn Fn(&StoredInstance) + Send + Sync;

struct Callers {
    ae: String,
    allowed: Vec<String>,
}

impl AccessControl for Callers {
    fn check_access(
        &self,
        _this_ae_title: &str,
        calling_ae_title: &str,
        called_ae_title: &str,
        _user_identity: Option<&UserIdentity>,
    ) -> std::result::Result<(), AssociationRJServiceUserReason> {
        if called_ae_title.trim() != self.ae.trim() {
            return Err(AssociationRJServiceUserReason::CalledAETitleNotRecognized);
        }
        if !self.allowed.is_empty() && !self.allowed.iter().any(|a| a.trim() == calling_ae_title.trim()) {
            return Err(AssociationRJServiceUserReason::CallingAETitleNotRecognized);
        }
        Ok(())
    }
}

/// A C-ECHO / C-STORE provider on a bound socket.
pub struct StoreScp {
    listener: TcpListener,
    config: Arc<ScpConfig>,
    stop: Arc<AtomicBool>,
    pub stats: Arc<ScpStats>,
    on_stored: Option<Arc<OnStored>>,
}

/// A provider running on its own thread; dropping it stops it.
pub struct ScpHandle {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    pub stats: Arc<ScpStats>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ScpHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets running associations finish, and returns.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)); // wake accept()
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ScpHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl StoreScp {
    /// Binds `addr` (port 0: any free port). The storage folder is made if missing.
    pub fn bind(addr: &str, config: ScpConfig) -> Result<StoreScp> {
        if config.ae_title.is_empty() || config.ae_title.len() > 16 {
            return Err(IoError::network(addr, format!("AE title {:?} must be 1–16 characters", config.ae_title)));
        }
        std::fs::create_dir_all(&config.storage).map_err(|e| IoError::io(&config.storage, e))?;
        let listener = TcpListener::bind(addr).map_err(|e| IoError::network(addr, format!("cannot listen: {e}")))?;
        Ok(StoreScp {
            listener,
            config: Arc::new(config),
            stop: Arc::new(AtomicBool::new(false)),
            stats: Arc::new(ScpStats::default()),
            on_stored: None,
        })
    }

    /// Calls `f` after each instance is stored (from the association's thread).
    pub fn on_stored(mut self, f: impl Fn(&StoredInstance) + Send + Sync + 'static) -> Self {
        self.on_stored = Some(Arc::new(f));
        self
    }

    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener.local_addr().map_err(|e| IoError::network("listener", e))
    }

    /// Serves until stopped: each association on its own thread.
    pub fn serve(&self) {
        let mut workers: Vec<std::thread::JoinHandle<()>> = Vec::new();
        for conn in self.listener.incoming() {
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            let Ok(socket) = conn else { continue };
            let (config, stats, on_stored) = (self.config.clone(), self.stats.clone(), self.on_stored.clone());
            workers.retain(|w| !w.is_finished());
            if workers.len() >= self.config.max_associations {
                self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                let peer = socket.peer_addr().map(|a| a.to_string()).unwrap_or_else(|_| "?".into());
                tracing::warn!(
                    "connection from {peer} closed: {} associations already open (max_associations)",
                    workers.len()
                );
                drop(socket);
                continue;
            }
            workers.push(std::thread::spawn(move || serve_association(socket, &config, &stats, on_stored.as_deref())));
        }
        for w in workers {
            let _ = w.join();
        }
    }

    /// Serves on a thread of its own.
    pub fn spawn(self) -> Result<ScpHandle> {
        let addr = self.local_addr()?;
        let (stop, stats) = (self.stop.clone(), self.stats.clone());
        let thread = std::thread::spawn(move || self.serve());
        Ok(ScpHandle { addr, stop, stats, thread: Some(thread) })
    }
}

/// Ends an association that misbehaved or broke off: counted, answered with an A-ABORT;
/// whatever it had half-sent is dropped with it.
fn abort_association(assoc: ServerAssociation<TcpStream>, stats: &ScpStats) {
    stats.aborted.fetch_add(1, Ordering::Relaxed);
    let _ = assoc.abort();
}

fn serve_association(socket: TcpStream, config: &ScpConfig, stats: &ScpStats, on_stored: Option<&OnStored>) {
    // Each C-STORE response is one small PDU: send it at once (no Nagle wait).
    let _ = socket.set_nodelay(true);
    let peer = socket.peer_addr().map(|a| a.to_string()).unwrap_or_else(|_| "?".into());
    let mut options = ServerAssociationOptions::new()
        .ae_access_control(Callers { ae: config.ae_title.clone(), allowed: config.accepted_callers.clone() })
        .ae_title(config.ae_title.as_str())
        .max_pdu_length(config.max_pdu_length)
        .read_timeout(config.timeout)
        .write_timeout(config.timeout)
        .with_abstract_syntax(VERIFICATION);
    for class in storage_sop_classes() {
        options = options.with_abstract_syntax(*class);
    }
    for ts in TransferSyntaxRegistry.iter() {
        let allowed = config.transfer_syntaxes.as_ref().is_none_or(|list| list.iter().any(|t| t == ts.uid()));
        if !ts.is_unsupported() && allowed {
            options = options.with_transfer_syntax(ts.uid());
        }
    }
    let mut assoc = match options.establish(socket) {
        Ok(a) => a,
        Err(e) => {
            stats.rejected.fetch_add(1, Ordering::Relaxed);
            tracing::info!("association from {peer} refused: {e}");
            return;
        }
    };
    stats.associations.fetch_add(1, Ordering::Relaxed);
    let calling = dicom_ul::association::Association::peer_ae_title(&assoc).trim().to_string();
    let contexts: HashMap<u8, (String, String)> = assoc
        .presentation_contexts()
        .iter()
        .map(|p| {
            (
                p.id,
                (
                    p.abstract_syntax.trim_end_matches('\0').to_string(),
                    p.transfer_syntax.trim_end_matches('\0').to_string(),
                ),
            )
        })
        .collect();
    // The command and data set being received, per presentation context.
    let mut pending_command: Option<(u8, InMemDicomObject)> = None;
    let mut cmd_buf: Vec<u8> = Vec::new();
    let mut data_buf: Vec<u8> = Vec::new();
    let started = std::time::Instant::now();
    loop {
        if started.elapsed() > config.association_limit {
            tracing::info!(
                "association with {calling} ({peer}) aborted: open longer than {:?}",
                config.association_limit
            );
            return abort_association(assoc, stats);
        }
        let pdu = match assoc.receive() {
            Ok(p) => p,
            Err(e) => {
                // Malformed PDU, timeout or dropped connection: whatever was half-received is
                // dropped, nothing is stored, and only this association ends.
                tracing::info!("association with {calling} ({peer}) ended abnormally: {e}");
                return abort_association(assoc, stats);
            }
        };
        match pdu {
            Pdu::PData { data } => {
                for v in data {
                    let Some((class, ts)) = contexts.get(&v.presentation_context_id) else {
                        return abort_association(assoc, stats);
                    };
                    match v.value_type {
                        PDataValueType::Command => {
                            cmd_buf.extend_from_slice(&v.data);
                            if !v.is_last {
                                continue;
                            }
                            let cmd = match parse_command(&cmd_buf) {
                                Ok(c) => c,
                                Err(e) => {
                                    tracing::info!("{calling} ({peer}): {e}");
                                    return abort_association(assoc, stats);
                                }
                            };
                            cmd_buf.clear();
                            match command_u16(&cmd, tags::COMMAND_FIELD) {
                                Some(0x0030) => {
                                    let id = command_u16(&cmd, tags::MESSAGE_ID).unwrap_or(0);
                                    if assoc.send(&command_pdu(v.presentation_context_id, echo_rsp(id))).is_err() {
                                        return;
                                    }
                                }
                                Some(0x0001) => {
                                    data_buf.clear();
                                    pending_command = Some((v.presentation_context_id, cmd));
                                }
                                other => {
                                    tracing::info!("{calling} ({peer}): unsupported command {other:?}");
                                    return abort_association(assoc, stats);
                                }
                            }
                        }
                        PDataValueType::Data => {
                            if data_buf.len() + v.data.len() > config.max_instance_bytes {
                                tracing::info!(
                                    "association with {calling} ({peer}) aborted: a data set over {} bytes",
                                    config.max_instance_bytes
                                );
                                return abort_association(assoc, stats);
                            }
                            data_buf.extend_from_slice(&v.data);
                            if !v.is_last {
                                continue;
                            }
                            let Some((pc, cmd)) = pending_command.take() else {
                                return abort_association(assoc, stats);
                            };
                            let id = command_u16(&cmd, tags::MESSAGE_ID).unwrap_or(0);
                            let cmd_class = text(&cmd, tags::AFFECTED_SOP_CLASS_UID);
                            let cmd_instance = text(&cmd, tags::AFFECTED_SOP_INSTANCE_UID);
                            let status = if &cmd_class != class {
                                status::DATASET_DOES_NOT_MATCH
                            } else {
                                let received =
                                    Received { ts, class: &cmd_class, instance: &cmd_instance, data: &data_buf };
                                receive_instance(config, stats, on_stored, &received, &calling, &peer)
                            };
                            data_buf.clear();
                            let rsp = store_rsp(id, &cmd_class, &cmd_instance, status);
                            if assoc.send(&command_pdu(pc, rsp)).is_err() {
                                return;
                            }
                        }
                    }
                }
            }
            Pdu::ReleaseRQ => {
                let _ = assoc.send(&Pdu::ReleaseRP);
                return;
            }
            Pdu::AbortRQ { .. } => {
                stats.aborted.fetch_add(1, Ordering::Relaxed);
                return;
            }
            _ => {
                return abort_association(assoc, stats);
            }
        }
    }
}

/// A complete C-STORE request: the data set as received and what its command says.
struct Received<'a> {
    ts: &'a str,
    class: &'a str,
    instance: &'a str,
    data: &'a [u8],
}

/// Stores a received instance, counts it and tells `on_stored`; returns the DIMSE status.
fn receive_instance(
    config: &ScpConfig,
    stats: &ScpStats,
    on_stored: Option<&OnStored>,
    r: &Received,
    calling: &str,
    peer: &str,
) -> u16 {
    match store_instance(config, r, calling) {
        Ok(stored) => {
            stats.stored.fetch_add(1, Ordering::Relaxed);
            if stored.replaced {
                stats.duplicates.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(f) = on_stored {
                f(&stored);
            }
            status::SUCCESS
        }
        Err((code, why)) => {
            stats.refused_instances.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("{calling} ({peer}): instance {} not stored: {why}", r.instance);
            code
        }
    }
}

/// Why native pixel data are shorter than Rows × Columns × Samples × Frames × Bits Allocated
/// say (a copy that would replace a good instance with a cut one), or None.
fn short_native_pixels(obj: &InMemDicomObject, ts_uid: &str) -> Option<String> {
    if !crate::dicom::pixels::is_native(ts_uid) {
        return None;
    }
    let pixels = obj.get(tags::PIXEL_DATA)?;
    let have = pixels.value().to_bytes().ok()?.len();
    let number = |tag| text(obj, tag).parse::<u64>().ok();
    let (rows, cols) = (number(tags::ROWS)?, number(tags::COLUMNS)?);
    let samples = number(tags::SAMPLES_PER_PIXEL).unwrap_or(1);
    let frames = number(tags::NUMBER_OF_FRAMES).unwrap_or(1);
    let bits = number(tags::BITS_ALLOCATED)?;
    let need = (rows * cols * samples * frames * bits).div_ceil(8);
    (need > have as u64).then(|| {
        format!(
            "{} has {have} bytes where {} × {} × {samples} × {frames} samples of {bits} bits need {need}",
            tag_name(tags::PIXEL_DATA),
            rows,
            cols
        )
    })
}

/// Checks a received data set and stores it atomically; Err gives the DIMSE status and why.
fn store_instance(
    config: &ScpConfig,
    r: &Received,
    calling: &str,
) -> std::result::Result<StoredInstance, (u16, String)> {
    let Received { ts: ts_uid, class, instance, data } = *r;
    let ts =
        TransferSyntaxRegistry.get(ts_uid).ok_or((status::CANNOT_UNDERSTAND, format!("transfer syntax {ts_uid}")))?;
    crate::dicom::guard::check_data_set(Path::new(instance), data, ts_uid)
        .map_err(|e| (status::CANNOT_UNDERSTAND, format!("data set is damaged: {e}")))?;
    let obj = InMemDicomObject::read_dataset_with_ts(data, ts)
        .map_err(|e| (status::CANNOT_UNDERSTAND, format!("data set does not parse: {e}")))?;
    let ds_instance = text(&obj, tags::SOP_INSTANCE_UID);
    let ds_class = text(&obj, tags::SOP_CLASS_UID);
    if ds_instance != instance || ds_class != class {
        return Err((
            status::DATASET_DOES_NOT_MATCH,
            format!(
                "{} = {ds_instance}, {} = {ds_class} against the command's {instance}, {class}",
                tag_name(tags::SOP_INSTANCE_UID),
                tag_name(tags::SOP_CLASS_UID)
            ),
        ));
    }
    if let Some(why) = short_native_pixels(&obj, ts_uid) {
        return Err((status::CANNOT_UNDERSTAND, why));
    }
    let study = text(&obj, tags::STUDY_INSTANCE_UID);
    let series = text(&obj, tags::SERIES_INSTANCE_UID);
    for (what, uid) in
        [("SOP Instance UID", instance), ("Study Instance UID", &study), ("Series Instance UID", &series)]
    {
        if !is_valid_uid(uid) {
            return Err((status::CANNOT_UNDERSTAND, format!("{what} {uid:?} is not a valid UID")));
        }
    }
    let folder = config.storage.join(&study).join(&series);
    std::fs::create_dir_all(&folder).map_err(|e| (status::OUT_OF_RESOURCES, format!("{}: {e}", folder.display())))?;
    let path = folder.join(format!("{instance}.dcm"));
    let duplicate = path.exists();
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(class)
        .media_storage_sop_instance_uid(instance)
        .transfer_syntax(ts_uid)
        .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
        .implementation_version_name(IMPLEMENTATION_VERSION_NAME)
        .build()
        .map_err(|e| (status::CANNOT_UNDERSTAND, format!("file meta: {e}")))?;
    write_atomically(&path, |tmp| {
        let mut f = std::io::BufWriter::new(std::fs::File::create(tmp).map_err(|e| IoError::io(tmp, e))?);
        f.write_all(&[0u8; 128]).and_then(|_| f.write_all(b"DICM")).map_err(|e| IoError::io(tmp, e))?;
        meta.write(&mut f).map_err(|e| IoError::format(tmp, "file meta", "", e.to_string()))?;
        // The data set exactly as received.
        f.write_all(data).map_err(|e| IoError::io(tmp, e))?;
        f.flush().map_err(|e| IoError::io(tmp, e))
    })
    .map_err(|e| (status::OUT_OF_RESOURCES, e.to_string()))?;
    // The rename is durable once the folder is synced.
    if let Ok(dir) = std::fs::File::open(&folder) {
        let _ = dir.sync_all();
    }
    Ok(StoredInstance {
        path,
        study_uid: study,
        series_uid: series,
        sop_instance_uid: instance.to_string(),
        modality: text(&obj, tags::MODALITY),
        series_description: text(&obj, tags::SERIES_DESCRIPTION),
        calling_ae: calling.to_string(),
        replaced: duplicate,
    })
}
