//! The DICOM node's rules: when a series that matches a rule is complete (no new instance for
//! the quiet period), run the rule's pipeline on it and C-STORE the results to the rule's
//! destination. The node keeps an index of what it holds (`STORAGE/index.json`, rewritten
//! atomically after each change of state).

use anyhow::{bail, Context, Result};
use gantry_io::dicom::net::{store_files, PeerAddress, ScpConfig, StoreScp, StoredInstance};
use gantry_io::dicom::{read_series_volume, scan_folder, write_ct_series, SeriesMeta};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `gantry serve --config node.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    #[serde(default = "default_ae")]
    pub ae: String,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default = "default_bind")]
    pub bind: String,
    #[serde(default = "default_storage")]
    pub storage: PathBuf,
    /// Calling AE titles allowed in; empty: any.
    #[serde(default)]
    pub allow: Vec<String>,
    /// A series is complete when no instance of it arrived for this long.
    #[serde(default = "default_quiet")]
    pub quiet_period_s: f64,
    /// Named peers results go to: name → AE@host:port.
    #[serde(default)]
    pub destinations: BTreeMap<String, String>,
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Associations served at once; more connections are closed at once.
    #[serde(default = "default_max_associations")]
    pub max_associations: usize,
    /// A peer silent this long (s) loses its association.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_s: f64,
    /// An association open longer than this (s) is aborted.
    #[serde(default = "default_association_limit")]
    pub association_limit_s: f64,
    /// A data set larger than this (MB) aborts its association.
    #[serde(default = "default_max_instance_mb")]
    pub max_instance_mb: f64,
}

pub(crate) fn default_max_associations() -> usize {
    32
}
pub(crate) fn default_idle_timeout() -> f64 {
    60.0
}
pub(crate) fn default_association_limit() -> f64 {
    3600.0
}
pub(crate) fn default_max_instance_mb() -> f64 {
    1024.0
}

fn default_ae() -> String {
    "GANTRY".into()
}
fn default_port() -> u16 {
    11112
}
fn default_bind() -> String {
    "127.0.0.1".into()
}
fn default_storage() -> PathBuf {
    "gantry-storage".into()
}
fn default_quiet() -> f64 {
    10.0
}

/// Which series a rule takes and what it does with them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    /// Only series of this modality (CT, PT, …).
    #[serde(default)]
    pub modality: Option<String>,
    /// Only series whose description contains this (case-insensitive).
    #[serde(default)]
    pub series_description: Option<String>,
    /// Only series of at least this many instances.
    #[serde(default)]
    pub min_instances: usize,
    /// The pipeline to run: `copy` (the series read into a volume and written back as a
    /// derived series; a check of the whole chain), `stroke` (CT perfusion: map series and
    /// the summary Secondary Capture) or `anonymise` (the series de-identified by the PS3.15
    /// basic profile, with `key`).
    pub pipeline: String,
    /// A key of `destinations`.
    pub send_to: String,
    /// For `anonymise`: the secret the new UIDs and pseudonyms derive from (required there, so
    /// that every series of a study maps the same way).
    #[serde(default)]
    pub key: Option<String>,
    /// For `anonymise`: keep dates and times (the Retain Full Dates option).
    #[serde(default)]
    pub keep_dates: bool,
}

const PIPELINES: &[&str] = &["copy", "stroke", "anonymise"];

impl NodeConfig {
    pub fn read(path: &Path) -> Result<NodeConfig> {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
        let c: NodeConfig = gantry_io::parse_toml(path, &text, "node configuration")?;
        c.validate().with_context(|| format!("{}", path.display()))?;
        Ok(c)
    }

    pub fn validate(&self) -> Result<()> {
        if !(self.quiet_period_s.is_finite() && self.quiet_period_s >= 0.0) {
            bail!("quiet_period_s = {}: must be a finite number of seconds, 0 or more", self.quiet_period_s);
        }
        for (name, addr) in &self.destinations {
            PeerAddress::parse(addr).with_context(|| format!("destinations.{name}"))?;
        }
        for r in &self.rules {
            if !PIPELINES.contains(&r.pipeline.as_str()) {
                bail!("rule {:?}: pipeline = {:?}: choose one of {PIPELINES:?}", r.name, r.pipeline);
            }
            if r.pipeline == "anonymise" && r.key.as_deref().is_none_or(|k| k.trim().is_empty()) {
                bail!(
                    "rule {:?}: pipeline \"anonymise\" needs key = \"…\" (the secret UIDs are remapped with)",
                    r.name
                );
            }
            if !self.destinations.contains_key(&r.send_to) {
                bail!(
                    "rule {:?}: send_to = {:?}: not among the destinations {:?}",
                    r.name,
                    r.send_to,
                    self.destinations.keys()
                );
            }
        }
        Ok(())
    }
}

/// What the node knows of one series.
#[derive(Debug, Clone, Serialize)]
struct SeriesState {
    study_uid: String,
    modality: String,
    description: String,
    folder: PathBuf,
    instances: usize,
    #[serde(skip)]
    last_received: Option<Instant>,
    /// Instances received since the rules last ran on it.
    #[serde(skip)]
    pending: bool,
    /// Rule name → what happened the last time it ran.
    results: BTreeMap<String, String>,
}

#[derive(Default)]
struct Index {
    series: BTreeMap<String, SeriesState>,
}

fn write_index(storage: &Path, index: &Index) -> Result<()> {
    let json = serde_json::to_string_pretty(&index.series)?;
    gantry_io::atomic::write_bytes(&storage.join("index.json"), json.as_bytes())?;
    Ok(())
}

impl Rule {
    fn matches(&self, s: &SeriesState) -> bool {
        self.modality.as_ref().is_none_or(|m| m.eq_ignore_ascii_case(&s.modality))
            && self.series_description.as_ref().is_none_or(|d| s.description.to_lowercase().contains(&d.to_lowercase()))
            && s.instances >= self.min_instances
    }
}

/// Runs a rule's pipeline on the series in `input`, writing its results into `output`.
fn run_pipeline(r: &Rule, input: &Path, output: &Path) -> Result<()> {
    let (name, rule) = (r.pipeline.as_str(), r.name.as_str());
    match name {
        "anonymise" => {
            let key = r.key.clone().context("anonymise needs a key")?;
            let options = gantry_io::dicom::anonymise::Options { key, keep_dates: r.keep_dates };
            gantry_io::dicom::anonymise::anonymise_folder(input, output, &options)?;
            Ok(())
        }
        "copy" => {
            let scan = scan_folder(input)?;
            let series = scan.series.first().context("no series in the folder")?;
            let vol = read_series_volume(series)?;
            let meta = SeriesMeta::derived_from(series, &format!("{rule}: copy"));
            write_ct_series(output, &vol, &meta)?;
            Ok(())
        }
        "stroke" => {
            let (dynamic, series) = crate::stroke::read_perfusion_folder(input)?;
            let t = std::time::Instant::now();
            let result = gantry_perfusion::run_stroke(dynamic, &gantry_perfusion::StrokeOptions::default())?;
            let label = format!("{rule}: {} ({})", series.description, series.uid);
            crate::stroke::write_outputs(output, &result, Some(&series), None, &label, t.elapsed().as_secs_f64())?;
            Ok(())
        }
        other => bail!("unknown pipeline {other:?}"),
    }
}

/// Runs the node until the process ends.
pub fn run(config: NodeConfig) -> Result<()> {
    let mut scp_config = ScpConfig::new(&config.ae, &config.storage);
    scp_config.accepted_callers = config.allow.clone();
    let positive = |name: &str, v: f64| -> Result<f64> {
        if v.is_finite() && v > 0.0 {
            Ok(v)
        } else {
            bail!("node config: {name} = {v}: must be a positive number")
        }
    };
    if config.max_associations == 0 {
        bail!("node config: max_associations = 0: must be at least 1");
    }
    scp_config.max_associations = config.max_associations;
    scp_config.timeout = std::time::Duration::from_secs_f64(positive("idle_timeout_s", config.idle_timeout_s)?);
    scp_config.association_limit =
        std::time::Duration::from_secs_f64(positive("association_limit_s", config.association_limit_s)?);
    scp_config.max_instance_bytes = (positive("max_instance_mb", config.max_instance_mb)? * 1e6) as usize;
    let index = Arc::new(Mutex::new(Index::default()));
    // What is already on disk.
    if config.storage.is_dir() {
        let scan = scan_folder(&config.storage)?;
        let mut idx = index.lock().expect("index lock");
        for s in scan.series {
            let folder = s.files[0].parent().map(Path::to_path_buf).unwrap_or_default();
            if folder.starts_with(config.storage.join("results")) {
                continue;
            }
            idx.series.insert(
                s.uid.clone(),
                SeriesState {
                    study_uid: s.patient_study.study_instance_uid.clone(),
                    modality: s.modality.clone(),
                    description: s.description.clone(),
                    folder,
                    instances: s.files.len(),
                    last_received: None,
                    pending: false,
                    results: BTreeMap::new(),
                },
            );
        }
    }
    let addr = format!("{}:{}", config.bind, config.port);
    let idx = index.clone();
    let scp = StoreScp::bind(&addr, scp_config)?.on_stored(move |s: &StoredInstance| {
        eprintln!("stored {} from {}", s.path.display(), s.calling_ae);
        let mut idx = idx.lock().expect("index lock");
        let e = idx.series.entry(s.series_uid.clone()).or_insert_with(|| SeriesState {
            study_uid: s.study_uid.clone(),
            modality: s.modality.clone(),
            description: s.series_description.clone(),
            folder: s.path.parent().map(Path::to_path_buf).unwrap_or_default(),
            instances: 0,
            last_received: None,
            pending: false,
            results: BTreeMap::new(),
        });
        // A resent instance replaces its copy, it does not add one.
        if !s.replaced {
            e.instances += 1;
        }
        e.last_received = Some(Instant::now());
        e.pending = true;
    });
    eprintln!("{}@{} serving, storing into {}", config.ae, scp.local_addr()?, config.storage.display());
    write_index(&config.storage, &index.lock().expect("index lock"))?;
    let _running = scp.spawn()?; // dropping it would stop the server
    let quiet = Duration::from_secs_f64(config.quiet_period_s);
    loop {
        std::thread::sleep(Duration::from_millis(100).min(quiet.max(Duration::from_millis(10))));
        let ready: Vec<(String, SeriesState)> = {
            let mut idx = index.lock().expect("index lock");
            let ready: Vec<_> = idx
                .series
                .iter_mut()
                .filter(|(_, s)| s.pending && s.last_received.is_some_and(|t| t.elapsed() >= quiet))
                .map(|(uid, s)| {
                    s.pending = false;
                    (uid.clone(), s.clone())
                })
                .collect();
            if !ready.is_empty() {
                write_index(&config.storage, &idx)?;
            }
            ready
        };
        for (uid, state) in ready {
            eprintln!("series {uid} complete ({} instances)", state.instances);
            for rule in config.rules.iter().filter(|r| r.matches(&state)) {
                let out = config.storage.join("results").join(&uid).join(&rule.name);
                let outcome = (|| -> Result<String> {
                    if out.exists() {
                        std::fs::remove_dir_all(&out)?;
                    }
                    run_pipeline(rule, &state.folder, &out)?;
                    let files: Vec<PathBuf> = scan_folder(&out)?.series.into_iter().flat_map(|s| s.files).collect();
                    let dest = PeerAddress::parse(&config.destinations[&rule.send_to])?;
                    let report = store_files(&dest, &config.ae, &files)?;
                    if !report.failed.is_empty() {
                        bail!(
                            "{} of {} results not stored by {dest}: {}",
                            report.failed.len(),
                            files.len(),
                            report.failed[0].1
                        );
                    }
                    Ok(format!("sent {} instances to {dest}", report.stored))
                })();
                let line = match outcome {
                    Ok(s) => s,
                    Err(e) => format!("failed: {e:#}"),
                };
                eprintln!("rule {}: series {uid}: {line}", rule.name);
                let mut idx = index.lock().expect("index lock");
                if let Some(s) = idx.series.get_mut(&uid) {
                    s.results.insert(rule.name.clone(), line);
                }
                write_index(&config.storage, &idx)?;
            }
        }
    }
}
