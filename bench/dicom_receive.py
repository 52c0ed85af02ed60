#!/usr/bin/env python3
"""DICOM receive throughput: `gantry serve` against Orthanc and dcmtk's storescp, and reading a
series into a volume: Gantry against pydicom.

One CT series of 512 slices (512 × 512, 16-bit, written by `gantry dicom export` from the head
phantom) is sent by dcmtk's `storescu` to each receiver in turn, on loopback inside a network
namespace of this script's own (`unshare -n`, since Orthanc listens on every interface). Each
receiver starts with an empty store. Reported: wall time of storescu (association to release),
instances/s, MB/s (bytes of the files sent), and the receiver's peak memory (VmHWM). Gantry and
Orthanc sync what they store; storescp does not. All run with TCP_NODELAY=1 (see ENV).

Then the same files are read into a volume: `gantry dicom import --timing-json` (read step) and
pydicom (dcmread every file, sort by position, stack, apply rescale), best of three each.

Usage: bench/dicom_receive.py [--gantry target/release/gantry] [--python /opt/gantry-py/bin/python]
       [--out bench/out/dicom] [--runs 3]
Needs: root (for unshare -n), dcmtk, orthanc, curl, iproute2, a Python with pydicom + numpy.
"""
import argparse, json, os, shutil, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

PYDICOM_READ = r'''
import sys, glob, time, json, numpy as np, pydicom
best = None
for _ in range(int(sys.argv[2])):
    t = time.perf_counter()
    ds = [pydicom.dcmread(f) for f in glob.glob(sys.argv[1] + "/*.dcm")]
    n = np.cross([float(v) for v in ds[0].ImageOrientationPatient[:3]], [float(v) for v in ds[0].ImageOrientationPatient[3:]])
    ds.sort(key=lambda d: float(np.dot(n, [float(v) for v in d.ImagePositionPatient])))
    vol = np.stack([d.pixel_array.astype(np.float32) * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in ds])
    s = time.perf_counter() - t
    best = s if best is None else min(best, s)
print(json.dumps({"read_s": best, "shape": list(vol.shape)}))
'''


# dcmtk (storescu, storescp, and Orthanc, which is built on it) leaves Nagle's algorithm on unless
# TCP_NODELAY=1 is set; with it on, every small response waits for a delayed ACK (about 40 ms an
# instance). Every process here runs with it off, so each receiver is measured at its best.
ENV = dict(os.environ, TCP_NODELAY="1")


def vmhwm_kb(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def wait_port(port, timeout=30):
    import socket
    t = time.time()
    while time.time() - t < timeout:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"nothing listens on port {port}")


def receive(args, src, n_files, total_bytes):
    """Runs inside the network namespace: each receiver, one storescu run each."""
    results = []
    work = os.path.join(args.out, "recv")
    for name in ["gantry", "orthanc", "storescp"]:
        store = os.path.join(work, name)
        shutil.rmtree(store, ignore_errors=True)
        os.makedirs(store)
        port = 11200 + len(results)
        if name == "gantry":
            cmd = [args.gantry, "serve", "--port", str(port), "--ae", "GANTRY", "--storage", store]
            aec = "GANTRY"
        elif name == "orthanc":
            conf = os.path.join(work, "orthanc.json")
            json.dump({"Name": "bench", "StorageDirectory": store, "IndexDirectory": store, "DicomAet": "ORTHANC",
                       "DicomPort": port, "HttpPort": 18042, "RemoteAccessAllowed": False,
                       "AuthenticationEnabled": False, "Plugins": []}, open(conf, "w"))
            cmd = ["Orthanc", conf]
            aec = "ORTHANC"
        else:
            cmd = ["storescp", "--output-directory", store, "-aet", "STORESCP", str(port)]
            aec = "STORESCP"
        log = open(os.path.join(work, name + ".log"), "w")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=ENV)
        wait_port(port)
        t = time.perf_counter()
        p = subprocess.run(["storescu", "-aet", "BENCH", "-aec", aec, "+sd", "+r", "127.0.0.1", str(port), src],
                           capture_output=True, text=True, env=ENV)
        wall = time.perf_counter() - t
        peak = vmhwm_kb(proc.pid)
        proc.terminate()
        proc.wait()
        if p.returncode != 0:
            sys.exit(f"storescu to {name} failed: {p.stderr}")
        stored = sum(1 for d, _, fs in os.walk(store) for f in fs if f.endswith(".dcm") or name != "gantry")
        results.append({"receiver": name, "wall_s": wall, "instances_per_s": n_files / wall,
                        "mb_per_s": total_bytes / wall / 1e6, "peak_mb": (peak or 0) / 1024, "files_in_store": stored})
        print(json.dumps(results[-1]), flush=True)
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gantry", default=os.path.join(ROOT, "target", "release", "gantry"))
    ap.add_argument("--python", default="/opt/gantry-py/bin/python")
    ap.add_argument("--out", default=os.path.join(HERE, "out", "dicom"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    src = os.path.join(args.out, "ct512")
    if not os.path.isdir(src):
        vol = os.path.join(args.out, "head512.mha")
        subprocess.run([args.gantry, "phantom", "--phantom", "head", "--size", "512,512,512", "--spacing", "0.5,0.5,0.4",
                        "--supersample", "1", "-o", vol], check=True)
        subprocess.run([args.gantry, "dicom", "export", vol, "-o", src, "--seed", "1"], check=True)
    files = [os.path.join(src, f) for f in os.listdir(src) if f.endswith(".dcm")]
    total = sum(os.path.getsize(f) for f in files)
    if args.inside:
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        res = receive(args, src, len(files), total)
        json.dump(res, open(os.path.join(args.out, "receive.json"), "w"), indent=1)
        return
    # Receive, in a network namespace of its own.
    subprocess.run(["unshare", "-n", sys.executable, os.path.abspath(__file__), "--inside", "--gantry", args.gantry,
                    "--out", args.out], check=True)
    recv = json.load(open(os.path.join(args.out, "receive.json")))
    by = {r["receiver"]: r for r in recv}
    # Read into a volume.
    best = None
    for _ in range(args.runs):
        tj = os.path.join(args.out, "import_timing.json")
        subprocess.run([args.gantry, "dicom", "import", src, "-o", os.path.join(args.out, "read.mha"), "--timing-json", tj],
                       check=True, capture_output=True)
        s = json.load(open(tj))["read_s"]
        best = s if best is None else min(best, s)
    p = subprocess.run([args.python, "-c", PYDICOM_READ, src, str(args.runs)], capture_output=True, text=True, check=True)
    py = json.loads(p.stdout)
    summary = {
        "instances": len(files), "mb": total / 1e6, "receive": recv,
        "gantry_vs_orthanc_speed": by["orthanc"]["wall_s"] / by["gantry"]["wall_s"],
        "gantry_vs_storescp_speed": by["storescp"]["wall_s"] / by["gantry"]["wall_s"],
        "read_gantry_s": best, "read_pydicom_s": py["read_s"], "read_speedup": py["read_s"] / best,
    }
    json.dump(summary, open(os.path.join(args.out, "results.json"), "w"), indent=1)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
