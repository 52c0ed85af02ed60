//! The `gantry` binary end to end: the quick demo against its truth, simulate → recon on a
//! water cylinder, and errors that name the bad field.

use std::path::Path;
use std::process::Command;

fn gantry() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gantry"));
    c.env_remove("RUST_BACKTRACE");
    c
}

/// Runs `gantry ARGS` in `dir`; its stdout, or a failure with its stderr.
fn run_ok(dir: &Path, args: &[&str]) -> String {
    let out = gantry().args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn quick_demo_reconstructs_the_head_within_its_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let out = gantry().args(["demo", "--quick", "-o"]).arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for f in
        ["head_hu.nii.gz", "truth_hu.nii.gz", "axial_brain.png", "coronal_brain.png", "summary.json", "summary.txt"]
    {
        assert!(dir.path().join(f).is_file(), "missing {f}");
    }
    let s = json(&dir.path().join("summary.json"));
    let acc = &s["accuracy"];
    let water = acc["water_vial_mean_hu"].as_f64().unwrap();
    let wm = acc["white_matter_mean_hu"].as_f64().unwrap();
    let lesion = acc["lesion_mean_hu"].as_f64().unwrap();
    let lesion_truth = acc["lesion_truth_hu"].as_f64().unwrap();
    let noise = acc["white_matter_noise_sd_hu"].as_f64().unwrap();
    // Water within ±5 HU of 0, tissue and lesion means within their noise of the truth.
    assert!(water.abs() < 5.0, "water vial {water} HU");
    assert!((wm - 28.0).abs() < 4.0, "white matter {wm} HU");
    assert!((lesion - lesion_truth).abs() < 5.0, "lesion {lesion} HU vs {lesion_truth}");
    assert!(noise > 2.0 && noise < 40.0, "noise {noise} HU");
}

#[test]
fn simulate_then_recon_gives_water_at_zero_hu() {
    let dir = tempfile::tempdir().unwrap();
    let proto = dir.path().join("p.toml");
    std::fs::write(
        &proto,
        "beam = \"cone\"\nsid_mm = 500.0\nsdd_mm = 1000.0\nviews_per_rotation = 360\n\
         [detector]\nshape = \"flat\"\nn_cols = 301\nn_rows = 5\npixel_u_mm = 1.6\npixel_v_mm = 2.0\n",
    )
    .unwrap();
    let proj = dir.path().join("w.mha");
    let st = gantry()
        .args(["simulate", "--phantom", "water", "--protocol"])
        .arg(&proto)
        .arg("-o")
        .arg(&proj)
        .status()
        .unwrap();
    assert!(st.success());
    let vol = dir.path().join("w.mha.nii");
    let timing = dir.path().join("t.json");
    let st = gantry()
        .arg("recon")
        .arg(&proj)
        .args(["--size", "120,120,1", "--spacing", "2,2,1", "-o"])
        .arg(&vol)
        .arg("--timing-json")
        .arg(&timing)
        .status()
        .unwrap();
    assert!(st.success());
    let v = gantry_io::read_volume(&vol).unwrap();
    // Voxel (60, 60) is 1.4 mm from the axis; (3, 60) is at x = −113 mm, in air between the
    // 100 mm cylinder and the 120 mm field of view.
    let c = v.data[[0, 60, 60]] as f64;
    assert!(c.abs() < 5.0, "centre {c} HU");
    let air = v.data[[0, 60, 3]] as f64;
    assert!((air + 1000.0).abs() < 20.0, "air {air} HU");
    assert!(json(&timing)["gups"].as_f64().unwrap() > 0.0);
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let proto = dir.path().join("bad.toml");
    std::fs::write(
        &proto,
        "beam = \"cone\"\nsid_mm = 500.0\nsdd_mm = 400.0\nviews_per_rotation = 36\n\
         [detector]\nshape = \"flat\"\nn_cols = 31\nn_rows = 5\npixel_u_mm = 1.6\npixel_v_mm = 2.0\n",
    )
    .unwrap();
    let out =
        gantry().args(["simulate", "--protocol"]).arg(&proto).arg("-o").arg(dir.path().join("x.mha")).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sdd_mm") && err.contains("400"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let out = gantry().args(["recon", "missing.mha", "-o"]).arg(dir.path().join("x.nii")).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing") && !err.contains("panicked"), "{err}");
}

#[test]
fn dicom_export_then_import_gives_back_the_volume() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ok = |args: &[&str]| run_ok(d, args);
    ok(&["phantom", "--phantom", "head", "--size", "48,40,6", "--spacing", "4,4,5", "-o", "head.mha"]);
    ok(&["dicom", "export", "head.mha", "-o", "a", "--patient-id", "P42", "--seed", "1"]);
    ok(&["dicom", "export", "head.mha", "-o", "b", "--from", "a", "--series-description", "copy", "--seed", "2"]);
    let ls = ok(&["dicom", "ls", "."]);
    assert_eq!(ls.lines().filter(|l| l.contains("6 images") && l.contains("patient P42")).count(), 2, "{ls}");
    // Two series: the choice is required, then made by number.
    let out = gantry().args(["dicom", "import", ".", "-o", "x.mha"]).current_dir(d).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 series found"));
    ok(&["dicom", "import", "b", "-o", "back.nii.gz"]);
    let a = gantry_io::read_volume(&d.join("head.mha")).unwrap();
    let b = gantry_io::read_volume(&d.join("back.nii.gz")).unwrap();
    assert_eq!(a.geometry.dims, b.geometry.dims);
    for i in 0..3 {
        assert!((a.geometry.origin_mm[i] - b.geometry.origin_mm[i]).abs() < 1e-3);
        assert!((a.geometry.spacing_mm[i] - b.geometry.spacing_mm[i]).abs() < 1e-6);
    }
    let max = a.data.iter().zip(b.data.iter()).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(max <= 0.5 + 1e-3, "max |ΔHU| {max}");
}

#[test]
fn serve_then_echo_and_send() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ok = |args: &[&str]| run_ok(d, args);
    ok(&["phantom", "--phantom", "head", "--size", "24,24,4", "--spacing", "8,8,8", "-o", "head.mha"]);
    ok(&["dicom", "export", "head.mha", "-o", "dcm"]);
    let mut server = gantry()
        .args(["serve", "--port", "0", "--ae", "NODE", "--storage", "store"])
        .current_dir(d)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(server.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first.split_whitespace().next().unwrap().to_string(); // NODE@127.0.0.1:PORT
    assert!(addr.starts_with("NODE@127.0.0.1:"), "{first}");
    let echo = ok(&["dicom", "echo", &addr]);
    assert!(echo.contains("C-ECHO success"), "{echo}");
    let sent = ok(&["dicom", "send", &addr, "dcm"]);
    assert!(sent.contains("stored 4 of 4"), "{sent}");
    let wrong = addr.replace("NODE@", "OTHER@");
    let out = gantry().args(["dicom", "send", &wrong, "dcm"]).current_dir(d).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("called AE title not recognized"));
    server.kill().unwrap();
    let _ = server.wait();
    let ls = ok(&["dicom", "ls", "store"]);
    assert!(ls.contains("4 images"), "{ls}");
}

/// Starts `gantry serve` with `args` in `dir`; returns the child and its AE@host:port.
fn spawn_node(dir: &Path, args: &[&str]) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child =
        gantry().arg("serve").args(args).current_dir(dir).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first.split_whitespace().next().unwrap().to_string();
    // Keep draining its log so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

#[test]
fn a_rule_runs_its_pipeline_on_a_complete_series_and_sends_the_results() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ok = |args: &[&str]| run_ok(d, args);
    ok(&["phantom", "--phantom", "head", "--size", "24,24,5", "--spacing", "8,8,8", "-o", "head.mha"]);
    ok(&["dicom", "export", "head.mha", "-o", "dcm"]);
    let (mut pacs, pacs_addr) = spawn_node(d, &["--port", "0", "--ae", "PACS", "--storage", "pacs"]);
    std::fs::write(
        d.join("node.toml"),
        format!(
            "ae = \"NODE\"\nport = 0\nstorage = \"node\"\nquiet_period_s = 0.5\n[destinations]\npacs = \"{pacs_addr}\"\n\
             [[rules]]\nname = \"check\"\nmodality = \"CT\"\npipeline = \"copy\"\nsend_to = \"pacs\"\n\
             [[rules]]\nname = \"never\"\nmodality = \"PT\"\npipeline = \"copy\"\nsend_to = \"pacs\"\n\
             [[rules]]\nname = \"anon\"\nmodality = \"CT\"\npipeline = \"anonymise\"\nkey = \"k\"\nsend_to = \"pacs\"\n"
        ),
    )
    .unwrap();
    let (mut node, node_addr) = spawn_node(d, &["--config", "node.toml"]);
    ok(&["dicom", "send", &node_addr, "dcm"]);
    // The rule fires after the quiet period; its copy arrives at the PACS.
    let t = std::time::Instant::now();
    let mut listing = String::new();
    while t.elapsed() < std::time::Duration::from_secs(30) {
        if d.join("pacs").is_dir() {
            listing = ok(&["dicom", "ls", "pacs"]);
            let recorded = std::fs::read_to_string(d.join("node/index.json"))
                .is_ok_and(|t| t.contains("\"check\": \"sent") && t.contains("\"anon\": \"sent"));
            if listing.contains("check: copy") && listing.contains("patient ANON") && recorded {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    node.kill().unwrap();
    pacs.kill().unwrap();
    let _ = (node.wait(), pacs.wait());
    assert!(listing.contains("check: copy") && listing.contains("5 images"), "{listing}");
    // The anonymise rule sent a de-identified copy: a pseudonym, not the patient's ID.
    assert!(
        listing.contains("patient ANON") && listing.lines().filter(|l| l.contains("GANTRY0001")).count() == 1,
        "{listing}"
    );
    let index = json(&d.join("node/index.json"));
    let series = index.as_object().unwrap();
    assert_eq!(series.len(), 1, "{index}");
    let s = series.values().next().unwrap();
    assert_eq!(s["instances"], 5);
    assert!(s["results"]["check"].as_str().unwrap().starts_with("sent 5 instances"), "{index}");
    assert!(s["results"].get("never").is_none(), "a PT rule must not take a CT series: {index}");
    assert!(s["results"]["anon"].as_str().unwrap().starts_with("sent 5 instances"), "{index}");
    // What came back is the series it was made from (the copy: the first series listed that
    // still names the patient).
    let n = listing.lines().find(|l| l.contains("check: copy")).and_then(|l| l.split_whitespace().next()).unwrap();
    ok(&["dicom", "import", "pacs", "--series", n, "-o", "back.mha"]);
    let a = gantry_io::read_volume(&d.join("head.mha")).unwrap();
    let b = gantry_io::read_volume(&d.join("back.mha")).unwrap();
    let max = a.data.iter().zip(b.data.iter()).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(max <= 0.5 + 1e-3, "max |ΔHU| {max}");
}

#[test]
fn a_bad_node_configuration_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("n.toml"),
        "[destinations]\npacs = \"P@127.0.0.1:1\"\n[[rules]]\nname = \"r\"\npipeline = \"nope\"\nsend_to = \"pacs\"\n",
    )
    .unwrap();
    let out = gantry().args(["serve", "--config", "n.toml"]).current_dir(dir.path()).output().unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("pipeline = \"nope\""), "{e}");
    std::fs::write(
        dir.path().join("n.toml"),
        "[destinations]\npacs = \"P@127.0.0.1:1\"\n[[rules]]\nname = \"a\"\npipeline = \"anonymise\"\nsend_to = \"pacs\"\n",
    )
    .unwrap();
    let out = gantry().args(["serve", "--config", "n.toml"]).current_dir(dir.path()).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs key"), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(dir.path().join("n.toml"), "quiet_period_s = -1\n").unwrap();
    let out = gantry().args(["serve", "--config", "n.toml"]).current_dir(dir.path()).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("quiet_period_s = -1"));
}

/// Runs `gantry ARGS` in `dir` expecting failure; its stderr.
fn run_err(dir: &Path, args: &[&str]) -> String {
    let out = gantry().args(args).current_dir(dir).output().unwrap();
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn stroke_demo_and_its_saved_nifti_give_the_lesion_and_every_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The synthetic brain on a 128 matrix (1.8 mm pixels), 5 HU per 0.45 mm voxel, with motion.
    run_ok(d, &["stroke", "--demo", "--matrix", "128", "-o", "demo", "--save-input", "ctp.nii.gz"]);
    for f in [
        "cbf.nii.gz",
        "cbv.nii.gz",
        "mtt.nii.gz",
        "tmax.nii.gz",
        "ttp.nii.gz",
        "core_mask.nii.gz",
        "tmax6_mask.nii.gz",
        "summary.png",
        "report.json",
        "dicom/summary.dcm",
        "dicom/cbf/CT00001.dcm",
    ] {
        assert!(d.join("demo").join(f).is_file(), "missing {f}");
    }
    let r = json(&d.join("demo/report.json"));
    let (core, core_truth) = (r["core_ml"].as_f64().unwrap(), r["truth"]["core_ml"].as_f64().unwrap());
    let (hypo, hypo_truth) = (r["hypoperfused_tmax6_ml"].as_f64().unwrap(), r["truth"]["tmax6_ml"].as_f64().unwrap());
    assert!((core - core_truth).abs() <= 5.0, "core {core} vs {core_truth} mL");
    assert!((hypo - hypo_truth).abs() <= 10.0_f64.max(0.1 * hypo_truth), "Tmax > 6 s {hypo} vs {hypo_truth} mL");
    assert_eq!(r["defuse3_imaging_criteria_met"], r["truth"]["defuse3"]);
    assert_eq!(r["extend_imaging_criteria_met"], r["truth"]["extend"]);
    assert_eq!(r["affected_side"], "left");
    // The CBF map reads back in mL/100 g/min: normal contralateral tissue is 25–60.
    let cbf = gantry_io::read_volume(&d.join("demo/cbf.nii.gz")).unwrap();
    let reference = r["reference_cbf_ml_100g_min"].as_f64().unwrap();
    assert!((20.0..60.0).contains(&reference), "reference CBF {reference}");
    assert!(cbf.data.iter().any(|v| v.is_finite()));
    // The same series read back from the 4D NIfTI gives the same figures.
    run_ok(d, &["stroke", "ctp.nii.gz", "-o", "nifti"]);
    let n = json(&d.join("nifti/report.json"));
    // (The voxel volume comes back through NIfTI's f32 spacing: equal to 1e-6.)
    for key in ["core_ml", "hypoperfused_tmax6_ml", "mismatch_ml"] {
        let (a, b) = (n[key].as_f64().unwrap(), r[key].as_f64().unwrap());
        assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{key}: NIfTI {a} vs demo {b}");
    }
    // Objects pass dciodvfy (the map's Rescale Type US is outside dciodvfy's CT list: the one
    // expected warning).
    if let Some(dciodvfy) = ["/usr/bin/dciodvfy"].iter().map(Path::new).find(|p| p.is_file()) {
        for f in ["demo/dicom/summary.dcm", "demo/dicom/cbf/CT00010.dcm", "demo/dicom/tmax/CT00010.dcm"] {
            let out = Command::new(dciodvfy).arg(d.join(f)).output().unwrap();
            let text = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
            let bad: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with("Error") || l.starts_with("Warning"))
                .filter(|l| !(l.contains("defined term <US>") && l.contains("Rescale Type")))
                .collect();
            assert!(bad.is_empty(), "dciodvfy {f}:\n{text}");
        }
    }
    // Bad input is named.
    assert!(run_err(d, &["stroke"]).contains("--demo"));
    assert!(run_err(d, &["stroke", "--demo", "--matrix", "300"]).contains("--matrix 300"));
    assert!(run_err(d, &["stroke", "missing.nii"]).contains("missing.nii"));
    assert!(run_err(d, &["stroke", "ctp.nii.gz", "--save-input", "y.nii"]).contains("--save-input"));
    let e = run_err(d, &["stroke", "ctp.nii.gz", "--frame-times", "0,1,2", "-o", "x"]);
    assert!(e.contains("frame times"), "{e}");
}

#[test]
fn a_stroke_rule_processes_an_arriving_perfusion_series_and_sends_the_maps() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ok = |args: &[&str]| run_ok(d, args);
    ok(&["stroke", "--demo", "--matrix", "128", "--still", "-o", "demo", "--save-input", "ctp"]);
    let truth = json(&d.join("demo/report.json"))["truth"].clone();
    let (mut pacs, pacs_addr) = spawn_node(d, &["--port", "0", "--ae", "PACS", "--storage", "pacs"]);
    std::fs::write(
        d.join("node.toml"),
        format!(
            "ae = \"NODE\"\nport = 0\nstorage = \"node\"\nquiet_period_s = 1.0\n[destinations]\npacs = \"{pacs_addr}\"\n\
             [[rules]]\nname = \"stroke\"\nmodality = \"CT\"\nseries_description = \"perfusion\"\n\
             min_instances = 192\npipeline = \"stroke\"\nsend_to = \"pacs\"\n"
        ),
    )
    .unwrap();
    let (mut node, node_addr) = spawn_node(d, &["--config", "node.toml"]);
    ok(&["dicom", "send", &node_addr, "ctp"]);
    let t = std::time::Instant::now();
    let mut listing = String::new();
    while t.elapsed() < std::time::Duration::from_secs(120) {
        if d.join("pacs").is_dir() {
            listing = ok(&["dicom", "ls", "pacs"]);
            if listing.contains("Perfusion summary") && listing.matches("32 images").count() == 5 {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    node.kill().unwrap();
    pacs.kill().unwrap();
    let _ = (node.wait(), pacs.wait());
    assert!(listing.contains("CBF (mL/100 g/min)") && listing.contains("Tmax (second)"), "{listing}");
    assert!(listing.contains("Perfusion summary") && listing.matches("32 images").count() == 5, "{listing}");
    // The node's own report of what it found, against the phantom's truth.
    let reports: Vec<_> = walk(&d.join("node/results")).into_iter().filter(|p| p.ends_with("report.json")).collect();
    assert_eq!(reports.len(), 1, "{reports:?}");
    let r = json(&reports[0]);
    let (core, want) = (r["core_ml"].as_f64().unwrap(), truth["core_ml"].as_f64().unwrap());
    assert!((core - want).abs() <= 5.0, "core {core} vs {want} mL");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn units_reach_every_file_and_mu_is_converted_not_zeroed() {
    use gantry_core::Quantity;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ok = |args: &[&str]| run_ok(d, args);
    let grid = ["--size", "40,48,5", "--spacing", "5,5,5", "--supersample", "1"];
    ok(&[&["phantom", "--phantom", "head", "-o", "hu.nii.gz"][..], &grid].concat());
    ok(&[&["phantom", "--phantom", "head", "--mu", "-o", "mu.mha"][..], &grid].concat());
    let hu = gantry_io::read_volume(&d.join("hu.nii.gz")).unwrap();
    let mu = gantry_io::read_volume(&d.join("mu.mha")).unwrap();
    assert_eq!((hu.quantity, mu.quantity), (Quantity::Hounsfield, Quantity::LinearAttenuation));
    // The phantom command writes what its help says: HU (white matter 28 HU near the centre).
    let wm = hu.geometry.index_of([0.0, 40.0, 0.0]).map(|v| v.round() as usize);
    assert!((hu.data[[wm[2], wm[1], wm[0]]] - 28.0).abs() < 0.01, "{}", hu.data[[wm[2], wm[1], wm[0]]]);
    // μ exported to DICOM is converted to HU, and comes back as the HU phantom.
    let out = gantry().args(["dicom", "export", "mu.mha", "-o", "dcm", "--seed", "3"]).current_dir(d).output().unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stderr).contains("converted to HU"));
    ok(&["dicom", "import", "dcm", "-o", "back.nii"]);
    let back = gantry_io::read_volume(&d.join("back.nii")).unwrap();
    assert_eq!(back.quantity, Quantity::Hounsfield);
    let worst = back.data.iter().zip(hu.data.iter()).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst < 0.6, "HU after μ → DICOM → HU: worst {worst}");
    // A slice of μ shows the same picture as a slice of HU.
    ok(&["slice", "mu.mha", "-o", "mu.png"]);
    ok(&["slice", "hu.nii.gz", "-o", "hu.png"]);
    assert_eq!(std::fs::read(d.join("mu.png")).unwrap(), std::fs::read(d.join("hu.png")).unwrap());
    // A file that does not say what it holds is not exported until told.
    let text = std::fs::read(d.join("mu.mha")).unwrap();
    let cut = String::from_utf8_lossy(&text).find("GantryQuantity").unwrap();
    let line_end = cut + text[cut..].iter().position(|&b| b == b'\n').unwrap() + 1;
    std::fs::write(d.join("plain.mha"), [&text[..cut], &text[line_end..]].concat()).unwrap();
    let err = run_err(d, &["dicom", "export", "plain.mha", "-o", "dcm2"]);
    assert!(err.contains("--quantity"), "{err}");
    ok(&["dicom", "export", "plain.mha", "-o", "dcm2", "--quantity", "mu_per_mm"]);
}

#[test]
fn a_misspelt_protocol_key_is_an_error_naming_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let base = "beam = \"cone\"\nsid_mm = 500.0\nsdd_mm = 1000.0\nviews_per_rotation = 36\n";
    let det = "[detector]\nshape = \"flat\"\nn_cols = 31\nn_rows = 5\npixel_u_mm = 1.6\npixel_v_mm = 2.0\n";
    std::fs::write(d.join("p.toml"), format!("{base}helical_pich = 1.0\n{det}")).unwrap();
    let err = run_err(d, &["simulate", "--protocol", "p.toml", "-o", "x.mha"]);
    assert!(err.contains("`helical_pich`") && err.contains("line 5"), "{err}");
    std::fs::write(d.join("q.toml"), format!("{}{det}", base.replace("sid_mm", "sid_m"))).unwrap();
    let err = run_err(d, &["simulate", "--protocol", "q.toml", "-o", "x.mha"]);
    assert!(err.contains("`sid_m`") && err.contains("line 2"), "{err}");
    std::fs::write(d.join("r.toml"), format!("{}{det}", base.replace("sid_mm = 500.0\n", ""))).unwrap();
    let err = run_err(d, &["simulate", "--protocol", "r.toml", "-o", "x.mha"]);
    assert!(err.contains("missing key `sid_mm`"), "{err}");
    assert!(!d.join("x.mha").exists());
}
