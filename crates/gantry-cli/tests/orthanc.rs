//! `gantry dicom send` to a real Orthanc, checked through Orthanc's REST API. Orthanc listens
//! on every interface, so it runs in a network namespace of its own (`unshare -n`), with the
//! sender beside it. Skipped when Orthanc, curl, ip or unshare are missing, unless
//! GANTRY_REQUIRE_PEERS=1 (as in .ci/run).

use std::path::{Path, PathBuf};
use std::process::Command;

fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|p| p.join(name)).find(|p| p.is_file()))
        .or_else(|| {
            [Path::new("/usr/sbin").join(name), Path::new("/sbin").join(name)].into_iter().find(|p| p.is_file())
        });
    if found.is_none() {
        let required = std::env::var("GANTRY_REQUIRE_PEERS").is_ok_and(|v| v == "1");
        assert!(!required, "{name} is required (GANTRY_REQUIRE_PEERS=1) but not installed");
        eprintln!("skipping: {name} is not installed");
    }
    found
}

#[test]
fn gantry_sends_a_series_to_orthanc() {
    let (Some(orthanc), Some(curl), Some(ip), Some(unshare)) =
        (tool("Orthanc"), tool("curl"), tool("ip"), tool("unshare"))
    else {
        return;
    };
    let gantry = env!("CARGO_BIN_EXE_gantry");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |args: &[&str]| {
        let out = Command::new(gantry).args(args).current_dir(d).env_remove("RUST_BACKTRACE").output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(&["phantom", "--phantom", "head", "--size", "32,32,6", "--spacing", "6,6,8", "-o", "head.mha"]);
    run(&["dicom", "export", "head.mha", "-o", "dcm", "--patient-id", "ORTHANCTEST"]);
    let db = d.join("db");
    std::fs::write(
        d.join("orthanc.json"),
        format!(
            r#"{{ "Name": "GantryTest", "StorageDirectory": "{0}", "IndexDirectory": "{0}", "DicomAet": "ORTHANC",
                 "DicomPort": 4242, "HttpPort": 8042, "RemoteAccessAllowed": false, "AuthenticationEnabled": false,
                 "DicomCheckCalledAet": true, "Plugins": [] }}"#,
            db.display()
        ),
    )
    .unwrap();
    let find = r#"{"Level":"Instance","Query":{"PatientID":"ORTHANCTEST"}}"#;
    let script = format!(
        "set -e\n{ip} link set lo up\n{orthanc} {conf} > {log} 2>&1 &\nP=$!\n\
         for i in $(seq 100); do {curl} -s http://127.0.0.1:8042/system > /dev/null && break; sleep 0.2; done\n\
         {gantry} dicom send ORTHANC@127.0.0.1:4242 {dcm}\n\
         echo FOUND=$({curl} -s -X POST http://127.0.0.1:8042/tools/find -d '{find}' | grep -c '\"')\n\
         {gantry} dicom send WRONG@127.0.0.1:4242 {dcm} 2>&1 || echo REFUSED\n\
         kill $P; wait $P || true\n",
        ip = ip.display(),
        orthanc = orthanc.display(),
        conf = d.join("orthanc.json").display(),
        log = d.join("orthanc.log").display(),
        curl = curl.display(),
        dcm = d.join("dcm").display(),
    );
    std::fs::write(d.join("run.sh"), script).unwrap();
    let out =
        Command::new(unshare).args(["-n", "sh"]).arg(d.join("run.sh")).env_remove("RUST_BACKTRACE").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let log = std::fs::read_to_string(d.join("orthanc.log")).unwrap_or_default();
    assert!(out.status.success(), "{stdout}\n{}\nOrthanc log:\n{log}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("stored 6 of 6 instances"), "{stdout}");
    // /tools/find lists one quoted Orthanc ID per instance.
    assert!(stdout.contains("FOUND=6"), "{stdout}");
    assert!(stdout.contains("REFUSED"), "{stdout}");
}
