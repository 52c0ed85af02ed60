//! ECG as CSV: a header row, the first column `time_s` (uniformly spaced, seconds), every other
//! column a lead in mV named by its header. Blank lines and `#` comments are skipped.

use crate::error::{IoError, Result};
use gantry_core::{Ecg, EcgLead};
use std::path::Path;

/// Reads an ECG CSV; an error names the line and column of anything that is not as above.
pub fn read_ecg_csv(path: &Path) -> Result<Ecg> {
    let text = std::fs::read_to_string(path).map_err(|e| IoError::io(path, e))?;
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    let (_, header) =
        lines.next().ok_or_else(|| IoError::format(path, "header", "(empty file)", "needs a header row"))?;
    let names: Vec<String> = header.split(',').map(|s| s.trim().trim_matches('"').to_string()).collect();
    if names.first().map(String::as_str) != Some("time_s") || names.len() < 2 {
        return Err(IoError::format(
            path,
            "header",
            header,
            "must be `time_s` then one column per lead (mV), comma-separated",
        ));
    }
    let mut times = Vec::new();
    let mut leads: Vec<Vec<f32>> = vec![Vec::new(); names.len() - 1];
    for (i, line) in lines {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != names.len() {
            return Err(IoError::format(
                path,
                format!("line {}", i + 1),
                fields.len(),
                format!("fields, where the header has {}", names.len()),
            ));
        }
        let number = |c: usize| -> Result<f64> {
            fields[c].parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(|| {
                IoError::format(
                    path,
                    format!("line {}, column {} ({})", i + 1, c + 1, names[c]),
                    fields[c],
                    "not a finite number",
                )
            })
        };
        times.push(number(0)?);
        for (c, lead) in leads.iter_mut().enumerate() {
            lead.push(number(c + 1)? as f32);
        }
    }
    if times.len() < 2 {
        return Err(IoError::format(path, "rows", times.len(), "an ECG needs at least two samples"));
    }
    let dt = (times[times.len() - 1] - times[0]) / (times.len() - 1) as f64;
    if dt.is_nan() || dt <= 0.0 {
        return Err(IoError::format(path, "time_s", dt, "must increase"));
    }
    if let Some(k) = times.windows(2).position(|w| ((w[1] - w[0]) - dt).abs() > 0.01 * dt) {
        return Err(IoError::format(
            path,
            format!("time_s at row {}", k + 2),
            times[k + 1],
            format!("samples must be evenly spaced ({dt} s apart)"),
        ));
    }
    let leads = names[1..].iter().zip(leads).map(|(n, samples_mv)| EcgLead { name: n.clone(), samples_mv }).collect();
    Ecg::new(1.0 / dt, leads).map_err(|e| IoError::core(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_leads_and_rate_and_names_bad_fields() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("e.csv");
        std::fs::write(&p, "# a comment\ntime_s,II,V1\n0.000,0.1,0.2\n0.002,0.3,0.4\n0.004,0.5,0.6\n").unwrap();
        let e = read_ecg_csv(&p).unwrap();
        assert!((e.sampling_hz - 500.0).abs() < 1e-9);
        assert_eq!(e.leads[1].name, "V1");
        assert_eq!(e.leads[0].samples_mv, vec![0.1, 0.3, 0.5]);
        std::fs::write(&p, "time_s,II\n0,0.1\n0.002,x\n").unwrap();
        let msg = read_ecg_csv(&p).unwrap_err().to_string();
        assert!(msg.contains("line 3, column 2 (II)") && msg.contains("x"), "{msg}");
        std::fs::write(&p, "t,II\n0,0.1\n").unwrap();
        assert!(read_ecg_csv(&p).unwrap_err().to_string().contains("time_s"));
        std::fs::write(&p, "time_s,II\n0,0.1\n0.002,0.1\n0.010,0.1\n").unwrap();
        assert!(read_ecg_csv(&p).unwrap_err().to_string().contains("evenly spaced"));
    }
}
