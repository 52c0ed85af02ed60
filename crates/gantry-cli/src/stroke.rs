//! `gantry stroke`: a CT perfusion series (DICOM folder or 4D NIfTI, or the synthetic brain with
//! `--demo`) → maps, core and hypoperfusion volumes, mismatch and the trial criteria, written as
//! NIfTI, DICOM (derived map series + Secondary Capture summary), PNG and a JSON report.

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use gantry_core::{Volume, VolumeSeries};
use gantry_io::dicom::net::{store_files, PeerAddress};
use gantry_io::dicom::{
    read_dynamic_series, scan_folder, write_ct_series, write_rgb_secondary_capture, DicomSeries, RgbImage, SeriesMeta,
    ValueUnits,
};
use gantry_perfusion::{run_stroke, Estimator, FitGrid, Method, StrokeOptions, StrokeResult};
use gantry_phantom::perfusion_brain::{BrainConfig, BrainPhantom, BrainTruth, Lesion, Motion};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Case {
    /// Left MCA occlusion, core ≈ 26 mL, Tmax > 6 s ≈ 120 mL.
    Typical,
    /// Large core ≈ 97 mL.
    Large,
    /// No lesion (a stroke mimic).
    Mimic,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum EstimatorArg {
    /// The indicator-dilution model fit (unbiased CBF and Tmax; the default).
    Fit,
    /// Block-circulant SVD, truncation per voxel by oscillation index (Wu 2003).
    Bsvd,
    /// Standard truncated SVD (20 % threshold; delay-sensitive).
    Svd,
    /// Tikhonov on the block-circulant form (λ = 0.1).
    Tikhonov,
}

#[derive(Debug, Args)]
pub struct StrokeArgs {
    /// A folder of DICOM files holding the perfusion series, or a 4D NIfTI (.nii, .nii.gz).
    pub input: Option<PathBuf>,
    /// Run on the synthetic brain phantom (512 × 512 × 32 × 30) and compare with its truth.
    #[arg(long)]
    pub demo: bool,
    /// With --demo: the phantom on 256 × 256 pixels (same as --matrix 256).
    #[arg(long)]
    pub quick: bool,
    /// With --demo: in-plane matrix of the phantom, 512, 256 or 128 (same anatomy; the noise
    /// is scaled so it stays the given noise per 0.45 mm voxel).
    #[arg(long, default_value_t = 512)]
    pub matrix: usize,
    /// With --demo: also save the simulated series, as a 4D NIfTI (.nii, .nii.gz) or else as a
    /// folder of DICOM CT images (one per slice and frame).
    #[arg(long)]
    pub save_input: Option<PathBuf>,
    /// With --demo: which patient.
    #[arg(long, value_enum, default_value = "typical")]
    pub case: Case,
    /// With --demo: noise per 0.45 mm voxel and frame (HU).
    #[arg(long, default_value_t = 5.0)]
    pub noise: f64,
    /// With --demo: no head motion (by default 10 % of the frames move 3 mm / 3°).
    #[arg(long)]
    pub still: bool,
    /// With --demo: seed of the noise and motion.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Frame times of a NIfTI input (s, comma-separated), instead of its header's interval.
    #[arg(long, value_delimiter = ',')]
    pub frame_times: Option<Vec<f64>>,
    /// How CBF, MTT and Tmax are estimated per voxel.
    #[arg(long, value_enum, default_value = "fit")]
    pub estimator: EstimatorArg,
    /// Output folder.
    #[arg(short, long, default_value = "stroke")]
    pub out: PathBuf,
    /// Send the DICOM results to this peer (AE@host:port).
    #[arg(long)]
    pub send: Option<String>,
    /// Calling AE title when sending.
    #[arg(long, default_value = "GANTRY")]
    pub aet: String,
}

/// What was read, with where it came from.
struct Input {
    series: VolumeSeries,
    source: Option<DicomSeries>,
    truth: Option<BrainTruth>,
    label: String,
}

fn load(args: &StrokeArgs) -> Result<Input> {
    if args.demo {
        if args.input.is_some() {
            bail!("give either an input or --demo, not both");
        }
        if !(args.noise.is_finite() && args.noise >= 0.0) {
            bail!("--noise {}: must be a finite number of HU, 0 or more", args.noise);
        }
        let lesion = match args.case {
            Case::Typical => Some(Lesion::typical()),
            Case::Large => Some(Lesion::large_core()),
            Case::Mimic => None,
        };
        let mut config = BrainConfig {
            noise_hu: args.noise,
            lesion,
            motion: (!args.still).then_some(Motion { fraction: 0.1, translation_mm: 3.0, rotation_deg: 3.0 }),
            seed: args.seed,
            ..BrainConfig::clinical()
        };
        let matrix = if args.quick { 256 } else { args.matrix };
        let factor = match matrix {
            512 => 1,
            256 => 2,
            128 => 4,
            other => bail!("--matrix {other}: choose 512, 256 or 128"),
        };
        // A pixel f times wider averages f² voxels of 0.45 mm: noise σ/f per pixel is the same
        // noise σ per 0.45 mm voxel.
        config = config.downsampled(factor);
        config.noise_hu /= factor as f64;
        let p = BrainPhantom::new(&config);
        if let Some(path) = &args.save_input {
            let name = path.to_string_lossy().to_lowercase();
            if name.ends_with(".nii") || name.ends_with(".nii.gz") {
                gantry_io::write_nifti_series(path, &p.series, "Gantry synthetic brain CT perfusion (HU)")?;
            } else {
                let meta = SeriesMeta {
                    series_description: "CT perfusion (synthetic brain)".into(),
                    uid_seed: Some(args.seed),
                    ..SeriesMeta::default()
                };
                gantry_io::dicom::write_ct_dynamic_series(path, &p.series, &meta)?;
            }
            eprintln!("simulated series saved to {}", path.display());
        }
        return Ok(Input {
            series: p.series,
            source: None,
            truth: Some(p.truth),
            label: format!("synthetic brain ({:?}, {} HU)", args.case, args.noise),
        });
    }
    let Some(input) = &args.input else { bail!("give a DICOM folder or a 4D NIfTI, or --demo") };
    if args.save_input.is_some() {
        bail!("--save-input is for --demo");
    }
    let name = input.to_string_lossy().to_lowercase();
    if input.is_file() && (name.ends_with(".nii") || name.ends_with(".nii.gz")) {
        let series = gantry_io::read_nifti_series(input, args.frame_times.clone())?;
        return Ok(Input { series, source: None, truth: None, label: input.display().to_string() });
    }
    if args.frame_times.is_some() {
        bail!("--frame-times is for NIfTI input; DICOM images carry their acquisition times");
    }
    if !input.is_dir() {
        bail!("{}: neither a folder of DICOM files nor a .nii/.nii.gz file", input.display());
    }
    let (series, source) = read_perfusion_folder(input)?;
    let label = format!("{} ({})", source.description, source.uid);
    Ok(Input { series, source: Some(source), truth: None, label })
}

/// The perfusion series of a DICOM folder: the one with the most images among those that read
/// as a dynamic series of 6 or more frames.
pub fn read_perfusion_folder(dir: &Path) -> Result<(VolumeSeries, DicomSeries)> {
    let scan = scan_folder(dir)?;
    let mut candidates: Vec<&DicomSeries> = scan.series.iter().collect();
    candidates.sort_by_key(|s| std::cmp::Reverse(s.files.len()));
    let mut errors = Vec::new();
    for s in candidates {
        match read_dynamic_series(s) {
            Ok(series) if series.n_frames() >= 6 => return Ok((series, s.clone())),
            Ok(series) => errors.push(format!("series {}: only {} frames", s.uid, series.n_frames())),
            Err(e) => errors.push(format!("series {}: {e}", s.uid)),
        }
    }
    bail!("{}: no perfusion series (6 or more frames over time): {}", dir.display(), errors.join("; "))
}

pub fn run(args: StrokeArgs) -> Result<()> {
    let t0 = Instant::now();
    let input = load(&args)?;
    eprintln!(
        "{}: {} frames of {:?} voxels, read in {:.1} s",
        input.label,
        input.series.n_frames(),
        input.series.geometry.dims,
        t0.elapsed().as_secs_f64()
    );
    let spinner = crate::progress::spinner("stroke pipeline");
    let t1 = Instant::now();
    let estimator = match args.estimator {
        EstimatorArg::Fit => Estimator::ModelFit(FitGrid::default()),
        EstimatorArg::Bsvd => Estimator::Deconvolution(Method::default()),
        EstimatorArg::Svd => Estimator::Deconvolution(Method::Standard { threshold: 0.2 }),
        EstimatorArg::Tikhonov => Estimator::Deconvolution(Method::Tikhonov { lambda: 0.1 }),
    };
    let options = StrokeOptions { estimator, ..StrokeOptions::default() };
    let result = run_stroke(input.series, &options);
    spinner.finish_and_clear();
    let result = result?;
    let pipeline_s = t1.elapsed().as_secs_f64();
    let files =
        write_outputs(&args.out, &result, input.source.as_ref(), input.truth.as_ref(), &input.label, pipeline_s)?;
    let d = &result.decision;
    println!(
        "core {:.1} mL, Tmax > 6 s {:.1} mL, mismatch {:.1} mL (ratio {}), affected side {}",
        d.core_ml,
        d.hypoperfused_ml,
        d.mismatch_ml,
        d.mismatch_ratio.map(|r| format!("{r:.2}")).unwrap_or("not defined (no core)".into()),
        d.affected_side.map(|s| format!("{s:?}").to_lowercase()).unwrap_or("none".into())
    );
    let p = &result.precision;
    println!(
        "95 % intervals: core {:.1}–{:.1} mL, Tmax > 6 s {:.1}–{:.1} mL, mismatch {:.1}–{:.1} mL",
        p.core_ml.low,
        p.core_ml.high,
        p.hypoperfused_ml.low,
        p.hypoperfused_ml.high,
        p.mismatch_ml.low,
        p.mismatch_ml.high
    );
    println!(
        "DEFUSE-3 imaging criteria {}; EXTEND imaging criteria {} (decision support, not a treatment decision)",
        criterion(d.defuse3, p.defuse3_uncertain).to_lowercase(),
        criterion(d.extend, p.extend_uncertain).to_lowercase()
    );
    if let Some(t) = &input.truth {
        println!("truth: core {:.1} mL, Tmax > 6 s {:.1} mL", t.core_ml, t.tmax6_ml);
    }
    for q in &result.quality {
        println!("quality: {q}");
    }
    println!("pipeline {pipeline_s:.1} s; results in {}", args.out.display());
    if let Some(peer) = &args.send {
        let peer = PeerAddress::parse(peer)?;
        let report = store_files(&peer, &args.aet, &files)?;
        println!("sent {} of {} objects to {peer:?}", report.stored, files.len());
        if report.stored != files.len() {
            bail!("{} objects were not stored by the peer", files.len() - report.stored);
        }
    }
    Ok(())
}

/// Map NaN (outside tissue) to 0 for formats without a missing value.
fn zero_nan(v: &Volume) -> Volume {
    v.map(|x| if x.is_finite() { x } else { 0.0 })
}

fn mask_volume(template: &Volume, mask: &[bool]) -> Volume {
    let mut v = template.clone().with_quantity(gantry_core::Quantity::Unitless);
    for (d, &m) in v.data.iter_mut().zip(mask) {
        *d = if m { 1.0 } else { 0.0 };
    }
    v
}

/// Writes every output; returns the DICOM files (to send).
/// Who and what the summary shows: patient name and ID, study date, the source series.
fn identity_line(meta: &SeriesMeta, source: Option<&DicomSeries>) -> String {
    let p = &meta.patient_study;
    let or_dash = |s: &str| if s.trim().is_empty() { "-".to_string() } else { s.trim().replace('^', " ") };
    let date = &p.study_date;
    let date = if date.len() == 8 { format!("{}-{}-{}", &date[..4], &date[4..6], &date[6..]) } else { or_dash(date) };
    let series = source.map(|s| or_dash(&s.description)).unwrap_or_else(|| "synthetic brain".into());
    format!("PATIENT {}  ID {}  STUDY {date}  SERIES {series}", or_dash(&p.patient_name), or_dash(&p.patient_id))
}

pub fn write_outputs(
    out: &Path,
    r: &StrokeResult,
    source: Option<&DicomSeries>,
    truth: Option<&BrainTruth>,
    label: &str,
    pipeline_s: f64,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).with_context(|| format!("{}", out.display()))?;
    let maps = [
        ("cbf", &r.maps.cbf, "CBF", "mL/(100.g.min)", "mL/100 g/min", 0.01, (30.0, 60.0)),
        ("cbv", &r.maps.cbv, "CBV", "mL/(100.g)", "mL/100 g", 0.001, (3.0, 6.0)),
        ("mtt", &r.maps.mtt, "MTT", "s", "second", 0.001, (8.0, 16.0)),
        ("tmax", &r.maps.tmax, "Tmax", "s", "second", 0.001, (6.0, 12.0)),
        ("ttp", &r.maps.ttp, "TTP", "s", "second", 0.001, (25.0, 50.0)),
    ];
    for (name, v, label, ..) in &maps {
        gantry_io::write_volume(&out.join(format!("{name}.nii.gz")), v, &format!("{label} (NaN outside tissue)"))?;
    }
    gantry_io::write_volume(&out.join("core_mask.nii.gz"), &mask_volume(&r.maps.cbf, &r.core), "ischaemic core")?;
    gantry_io::write_volume(&out.join("tmax6_mask.nii.gz"), &mask_volume(&r.maps.cbf, &r.hypoperfused), "Tmax > 6 s")?;

    // DICOM: one derived series per map, then the summary as Secondary Capture.
    let base_meta = match source {
        Some(s) => SeriesMeta::derived_from(s, "perfusion"),
        None => SeriesMeta {
            derivation_description: Some("Gantry stroke pipeline on a synthetic brain".into()),
            ..SeriesMeta::default()
        },
    };
    let study_uid = if base_meta.patient_study.study_instance_uid.is_empty() {
        gantry_io::dicom::UidGenerator::random().next_uid()
    } else {
        base_meta.patient_study.study_instance_uid.clone()
    };
    let for_uid = if base_meta.frame_of_reference_uid.is_empty() {
        gantry_io::dicom::UidGenerator::random().next_uid()
    } else {
        base_meta.frame_of_reference_uid.clone()
    };
    let mut dicom_files = Vec::new();
    for (n, (name, v, label, ucum, meaning, resolution, window)) in maps.iter().enumerate() {
        let mut meta = base_meta.clone();
        meta.patient_study.study_instance_uid = study_uid.clone();
        meta.frame_of_reference_uid = for_uid.clone();
        meta.series_number = base_meta.series_number + n as i32;
        meta.series_description = format!("{label} ({meaning})");
        meta.derivation_description = Some(format!("{label} map, Gantry stroke pipeline; 0 outside brain tissue"));
        meta.window_center = window.0;
        meta.window_width = window.1;
        meta.value_units = Some(ValueUnits {
            rescale_type: "US".into(),
            ucum_code: ucum.to_string(),
            code_meaning: meaning.to_string(),
            label: label.to_string(),
            resolution: *resolution,
        });
        dicom_files.extend(write_ct_series(&out.join("dicom").join(name), &zero_nan(v), &meta)?);
    }
    let mut lines = vec![identity_line(&base_meta, source)];
    lines.extend(figure_lines(r, truth));
    let canvas = crate::summary::render(r, &lines);
    gantry_io::write_rgb_png(&out.join("summary.png"), canvas.width, canvas.height, &canvas.rgb)?;
    let mut sc_meta = base_meta.clone();
    sc_meta.patient_study.study_instance_uid = study_uid;
    sc_meta.series_number = base_meta.series_number + maps.len() as i32;
    sc_meta.series_description = "Perfusion summary (decision support)".into();
    let sc = out.join("dicom").join("summary.dcm");
    write_rgb_secondary_capture(
        &sc,
        &RgbImage { width: canvas.width, height: canvas.height, rgb: canvas.rgb },
        &sc_meta,
        1,
    )?;
    dicom_files.push(sc);

    let d = &r.decision;
    let report = json!({
        "input": label,
        "decision_support_only": "Imaging figures for a stroke team; not a treatment decision.",
        "core_ml": d.core_ml,
        "hypoperfused_tmax6_ml": d.hypoperfused_ml,
        "tmax_ml": d.tmax_ml.iter().map(|(t, v)| json!({"threshold_s": t, "volume_ml": v})).collect::<Vec<_>>(),
        "mismatch_ml": d.mismatch_ml,
        "mismatch_ratio": d.mismatch_ratio,
        "hypoperfusion_intensity_ratio": d.hypoperfusion_intensity_ratio,
        "affected_side": d.affected_side.map(|s| format!("{s:?}").to_lowercase()),
        "reference_cbf_ml_100g_min": d.reference_cbf,
        "defuse3_imaging_criteria_met": d.defuse3,
        "extend_imaging_criteria_met": d.extend,
        "unestimated_voxels": d.unestimated_voxels,
        // Low-flow tissue too weak to time voxel by voxel, timed on its region's mean curve.
        "regionally_timed_ml": r.untimeable_voxels as f64
            * r.maps.tmax.geometry.spacing_mm.iter().product::<f64>() / 1000.0,
        "quality_flags": r.quality.iter().map(|q| q.to_string()).collect::<Vec<_>>(),
        // Random error of the cleaned maps (propagated by replicates) and half a voxel at every
        // edge; a systematic bias is not in it.
        "precision": {
            "interval": "95 % of the maps' random error plus half a voxel at every region edge",
            "core_ml": [r.precision.core_ml.low, r.precision.core_ml.high],
            "hypoperfused_tmax6_ml": [r.precision.hypoperfused_ml.low, r.precision.hypoperfused_ml.high],
            "mismatch_ml": [r.precision.mismatch_ml.low, r.precision.mismatch_ml.high],
            "defuse3_uncertain": r.precision.defuse3_uncertain,
            "extend_uncertain": r.precision.extend_uncertain,
            "noise_correlation_factor": r.precision.correlation_factor,
            "effective_noise_hu_per_045mm": r.effective_noise_045_hu,
            "core_cbf_standard_error_share_of_cut": r.precision.core_cbf_se,
            "tmax_standard_error_s": r.precision.tmax_se_s,
        },
        "arterial_input": {
            "curve_delta_hu": r.aif.curve, "peak_delta_hu": r.aif.peak_hu, "voxels_zyx": r.aif.voxels,
            "venous_rescale_factor": r.aif_scale,
        },
        "venous_output": { "curve_delta_hu": r.vof.curve, "peak_delta_hu": r.vof.peak_hu, "voxels_zyx": r.vof.voxels },
        "times_s": r.times_s,
        "baseline_frames": [r.timing.baseline.start, r.timing.baseline.end],
        "bolus_arrival_frame": r.timing.arrival_frame,
        "noise_delta_hu": r.noise_hu,
        "motion": r.motion.iter().map(|m| json!({
            "displacement_mm": m.displacement_mm, "rotation_deg": m.transform.angle_deg(),
            "translation_mm": m.transform.translation_mm, "corrected": m.corrected, "excluded": m.excluded,
        })).collect::<Vec<_>>(),
        "steps_s": r.steps.iter().map(|(s, t)| json!({"step": s, "seconds": t})).collect::<Vec<_>>(),
        "pipeline_s": pipeline_s,
        "truth": truth.map(|t| json!({
            "core_ml": t.core_ml, "tmax6_ml": t.tmax6_ml, "tmax10_ml": t.tmax10_ml,
            "defuse3": t.defuse3(), "extend": t.extend(),
        })),
    });
    gantry_io::atomic::write_bytes(&out.join("report.json"), serde_json::to_string_pretty(&report)?.as_bytes())?;
    Ok(dicom_files)
}

/// A criterion as the summary prints it: uncertain when its interval straddles a cut-off.
fn criterion(met: bool, uncertain: bool) -> &'static str {
    match (met, uncertain) {
        (_, true) => "UNCERTAIN",
        (true, false) => "MET",
        (false, false) => "NOT MET",
    }
}

fn figure_lines(r: &StrokeResult, truth: Option<&BrainTruth>) -> Vec<String> {
    let d = &r.decision;
    let mut lines = vec![
        format!(
            "CORE (RCBF<30%) {:.1} ML   TMAX>6S {:.1} ML   MISMATCH {:.1} ML   RATIO {}",
            d.core_ml,
            d.hypoperfused_ml,
            d.mismatch_ml,
            d.mismatch_ratio.map(|x| format!("{x:.1}")).unwrap_or("NOT DEFINED".into())
        ),
        format!(
            "TMAX>4S {:.0} ML  >8S {:.0} ML  >10S {:.0} ML   HIR {}   SIDE {}",
            d.tmax_ml[0].1,
            d.tmax_ml[2].1,
            d.tmax_ml[3].1,
            d.hypoperfusion_intensity_ratio.map(|x| format!("{x:.2}")).unwrap_or("-".into()),
            d.affected_side.map(|s| format!("{s:?}")).unwrap_or("NONE".into())
        ),
        format!(
            "95% INTERVALS: CORE {:.0}-{:.0} ML   TMAX>6S {:.0}-{:.0} ML   MISMATCH {:.0}-{:.0} ML",
            r.precision.core_ml.low,
            r.precision.core_ml.high,
            r.precision.hypoperfused_ml.low,
            r.precision.hypoperfused_ml.high,
            r.precision.mismatch_ml.low,
            r.precision.mismatch_ml.high
        ),
        format!(
            "DEFUSE-3 CRITERIA {}   EXTEND CRITERIA {}   (DECISION SUPPORT ONLY)",
            criterion(d.defuse3, r.precision.defuse3_uncertain),
            criterion(d.extend, r.precision.extend_uncertain)
        ),
    ];
    for q in &r.quality {
        lines.push(format!("QUALITY: {}", q.to_string().replace('Δ', "D")));
    }
    if let Some(t) = truth {
        lines.push(format!("PHANTOM TRUTH: CORE {:.1} ML  TMAX>6S {:.1} ML", t.core_ml, t.tmax6_ml));
    }
    lines
}

#[cfg(test)]
mod identity_tests {
    use super::*;

    #[test]
    fn the_summary_names_patient_id_study_date_and_series() {
        let mut meta = SeriesMeta::default();
        meta.patient_study.patient_name = "Doe^Jane".into();
        meta.patient_study.patient_id = "PID-7".into();
        meta.patient_study.study_date = "20261204".into();
        let line = identity_line(&meta, None);
        assert_eq!(line, "PATIENT Doe Jane  ID PID-7  STUDY 2026-12-04  SERIES synthetic brain");
        meta.patient_study.patient_name.clear();
        assert!(identity_line(&meta, None).starts_with("PATIENT -  ID PID-7"));
    }
}
