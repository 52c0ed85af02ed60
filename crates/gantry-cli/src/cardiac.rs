//! `gantry cardiac …`: cardiac CT. So far `gantry cardiac ecg`, the ECG alone.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use gantry_cardiac::ecg::{classify_beats, detect_r_peaks, DetectorSettings};
use gantry_core::Ecg;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct CardiacArgs {
    #[command(subcommand)]
    command: CardiacCommand,
}

#[derive(Subcommand)]
enum CardiacCommand {
    /// Analyse an ECG: R peaks (Pan–Tompkins, refined to a fraction of a sample), each beat
    /// classed (normal, premature, compensatory_pause), RR intervals, heart rate, rhythm and the
    /// next RR predicted. INPUT: a DICOM waveform (12-lead or general ECG) or a CSV whose first
    /// column is `time_s` and whose other columns are leads in mV.
    Ecg {
        input: PathBuf,
        /// Write the analysis as JSON here (otherwise to standard output).
        #[arg(long)]
        json: Option<PathBuf>,
        /// The lead to analyse; default II when there is one, else the first.
        #[arg(long)]
        lead: Option<String>,
    },
}

fn read_ecg(path: &Path) -> Result<Ecg> {
    let is_csv = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    Ok(if is_csv { gantry_io::ecg_csv::read_ecg_csv(path)? } else { gantry_io::dicom::read_ecg(path)? })
}

pub fn run(a: CardiacArgs) -> Result<()> {
    match a.command {
        CardiacCommand::Ecg { input, json, lead } => {
            let ecg = read_ecg(&input)?;
            let chosen = match &lead {
                Some(name) => ecg.lead(name).with_context(|| {
                    let names: Vec<&str> = ecg.leads.iter().map(|l| l.name.as_str()).collect();
                    format!("{}: no lead {name:?} (leads: {})", input.display(), names.join(", "))
                })?,
                None => match ecg.lead("II").or(ecg.leads.first()) {
                    Some(l) => l,
                    None => bail!("{}: the ECG has no leads", input.display()),
                },
            };
            let peaks = detect_r_peaks(&chosen.samples_mv, ecg.sampling_hz, &DetectorSettings::default())
                .with_context(|| format!("{}: lead {}", input.display(), chosen.name))?;
            let report = classify_beats(&peaks);
            let mut value = serde_json::to_value(&report)?;
            value["lead"] = chosen.name.clone().into();
            value["sampling_hz"] = ecg.sampling_hz.into();
            value["duration_s"] = ecg.duration_s().into();
            let text = serde_json::to_string_pretty(&value)?;
            match json {
                Some(p) => {
                    gantry_io::atomic::write_bytes(&p, text.as_bytes())?;
                    let rate = report.heart_rate_bpm.map(|r| format!("{r:.0} bpm")).unwrap_or_else(|| "no rate".into());
                    let odd = report.classes.iter().filter(|c| **c != gantry_cardiac::ecg::BeatClass::Normal).count();
                    eprintln!(
                        "{}: lead {}, {} R peaks, {rate}, {:?} rhythm, {odd} beats not normal; wrote {}",
                        input.display(),
                        chosen.name,
                        report.r_peaks_s.len(),
                        report.rhythm,
                        p.display()
                    );
                }
                None => println!("{text}"),
            }
            Ok(())
        }
    }
}
