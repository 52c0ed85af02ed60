#!/usr/bin/env python3
"""FDK and Joseph forward projection: Gantry against RTK (itk-rtk, CPU) on identical data.

Cases (SID 1000 mm, SDD 1500 mm, full 360° orbit, flat detector, Shepp–Logan):
  S: 180 views of 256×256 at 1.0 mm → 128³ voxels of 1.0 mm
  M: 360 views of 512×384 at 0.8 mm → 256³ voxels of 0.5 mm
  L: 496 views of 1248×960 at 0.4 mm → 512³ voxels of 0.5 mm (RabbitCT size)

Gantry simulates the exact line integrals once (written as MetaImage + RTK geometry XML); both
tools reconstruct the same file. Each tool runs in its own process so its peak memory (max
RSS) is its own; the time reported is the reconstruction step alone (Gantry: FDK call;
RTK: FDKConeBeamReconstructionFilter.Update()). RMSE is against the voxelised phantom over the
middle half of the slices, inside the phantom, voxels next to an edge excluded.

plastimatch's `fdk` (Debian package `plastimatch`) runs on the same projections as a second
reference (bench/to_plastimatch.py converts them to its input folder).

Usage: bench/fdk_vs_rtk.py [--cases S,M] [--rtk-python /path/to/python] [--out bench/out]
       [--skip-rtk] [--skip-plastimatch] [--joseph M]
"""
import argparse, json, os, resource, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CASES = {
    "S": dict(views=180, cols=256, rows=256, pixel=1.0, n=128, voxel=1.0),
    "M": dict(views=360, cols=512, rows=384, pixel=0.8, n=256, voxel=0.5),
    "L": dict(views=496, cols=1248, rows=960, pixel=0.4, n=512, voxel=0.5),
}
PHANTOM_HALF_SIZE_MM = {"S": 60.0, "M": 60.0, "L": 120.0}

RTK_FDK = r'''
import json, resource, sys, time
import itk
from itk import RTK as rtk
proj_path, xml_path, out_path, n, voxel = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
ImageType = itk.Image[itk.F, 3]
proj = itk.imread(proj_path, itk.F)
reader = rtk.ThreeDCircularProjectionGeometryXMLFileReader.New()
reader.SetFilename(xml_path)
reader.GenerateOutputInformation()
geometry = reader.GetOutputObject()
const = rtk.ConstantImageSource[ImageType].New()
origin = -0.5 * (n - 1) * voxel
const.SetOrigin([origin] * 3)
const.SetSpacing([voxel] * 3)
const.SetSize([n] * 3)
const.SetConstant(0.0)
fdk = rtk.FDKConeBeamReconstructionFilter[ImageType].New()
fdk.SetInput(0, const.GetOutput())
fdk.SetInput(1, proj)
fdk.SetGeometry(geometry)
fdk.GetRampFilter().SetTruncationCorrection(0.0)
fdk.GetRampFilter().SetHannCutFrequency(0.0)
t = time.perf_counter()
fdk.Update()
secs = time.perf_counter() - t
itk.imwrite(fdk.GetOutput(), out_path)
print(json.dumps({"reconstruct_s": secs, "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
'''

RTK_JOSEPH = r'''
import json, resource, sys, time
import itk
from itk import RTK as rtk
vol_path, xml_path, like_path = sys.argv[1], sys.argv[2], sys.argv[3]
ImageType = itk.Image[itk.F, 3]
vol = itk.imread(vol_path, itk.F)
like = itk.imread(like_path, itk.F)
reader = rtk.ThreeDCircularProjectionGeometryXMLFileReader.New()
reader.SetFilename(xml_path)
reader.GenerateOutputInformation()
const = rtk.ConstantImageSource[ImageType].New()
const.SetInformationFromImage(like)
const.SetConstant(0.0)
fp = rtk.JosephForwardProjectionImageFilter[ImageType, ImageType].New()
fp.SetInput(0, const.GetOutput())
fp.SetInput(1, vol)
fp.SetGeometry(reader.GetOutputObject())
t = time.perf_counter()
fp.Update()
print(json.dumps({"project_s": time.perf_counter() - t, "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
'''


def run(cmd, **kw):
    """Runs a command; returns (stdout, max RSS of it in kB, wall seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{p.stderr}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return p.stdout, max(after, before), wall


def peak_rss_kb(cmd):
    """Peak memory of one command, measured by GNU time in its own process."""
    p = subprocess.run(["/usr/bin/time", "-f", "MAXRSS %M"] + cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{p.stderr}")
    line = [l for l in p.stderr.splitlines() if l.startswith("MAXRSS")][-1]
    return int(line.split()[1]), p


def rmse(recon, truth):
    import numpy as np
    n = truth.shape[0]
    t = truth
    # Uniform 3×3×3 neighbourhood in the truth (edges excluded), inside the phantom.
    uniform = np.ones_like(t, dtype=bool)
    for dz in (-1, 0, 1):
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                uniform &= np.abs(np.roll(t, (dz, dy, dx), axis=(0, 1, 2)) - t) < 1e-6
    mask = uniform & (t > 0)
    mask[: n // 4] = False
    mask[n - n // 4 :] = False
    mask[:, [0, -1]] = False
    mask[:, :, [0, -1]] = False
    d = (recon - t)[mask].astype(np.float64)
    return float(np.sqrt(np.mean(d * d))), int(mask.sum())


def read_mha(path):
    """Minimal MetaImage reader (float, LOCAL data), shape [z][y][x]."""
    import numpy as np
    with open(path, "rb") as f:
        hdr = {}
        while True:
            line = f.readline().decode()
            k, v = [s.strip() for s in line.split("=", 1)]
            hdr[k] = v
            if k == "ElementDataFile":
                break
        dims = [int(x) for x in hdr["DimSize"].split()]
        data = np.frombuffer(f.read(), dtype="<f4").reshape(dims[::-1])
    return data


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default="S,M")
    ap.add_argument("--rtk-python", default=os.environ.get("RTK_PYTHON", sys.executable))
    ap.add_argument("--gantry", default=os.path.join(ROOT, "target", "release", "gantry"))
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    ap.add_argument("--skip-rtk", action="store_true")
    ap.add_argument("--joseph", default="M", help="cases for the forward projection comparison")
    ap.add_argument("--skip-plastimatch", action="store_true")
    args = ap.parse_args()
    import numpy as np

    os.makedirs(args.out, exist_ok=True)
    results = []
    for case in args.cases.split(","):
        c = CASES[case]
        d = os.path.join(args.out, case)
        os.makedirs(d, exist_ok=True)
        proto = os.path.join(d, "protocol.toml")
        with open(proto, "w") as f:
            f.write(
                f'beam = "cone"\nsid_mm = 1000.0\nsdd_mm = 1500.0\nviews_per_rotation = {c["views"]}\n'
                f'[detector]\nshape = "flat"\nn_cols = {c["cols"]}\nn_rows = {c["rows"]}\n'
                f'pixel_u_mm = {c["pixel"]}\npixel_v_mm = {c["pixel"]}\n'
            )
        proj, xml = os.path.join(d, "proj.mha"), os.path.join(d, "proj.xml")
        half = str(PHANTOM_HALF_SIZE_MM[case])
        if not os.path.exists(proj):
            run([args.gantry, "simulate", "--protocol", proto, "--phantom", "shepp-logan", "--phantom-half-size-mm", half, "--rtk-xml", xml, "-o", proj])
        truth_path = os.path.join(d, "truth.mha")
        n, v = c["n"], c["voxel"]
        if not os.path.exists(truth_path):
            run([args.gantry, "phantom", "--phantom", "shepp-logan", "--phantom-half-size-mm", half, "--size", f"{n},{n},{n}", "--spacing", f"{v},{v},{v}", "--supersample", "2", "--mu", "-o", truth_path])
        truth = read_mha(truth_path)
        row = {"case": case, "views": c["views"], "voxels": n ** 3}

        # Gantry FDK.
        g_out, g_timing = os.path.join(d, "gantry.mha"), os.path.join(d, "gantry_timing.json")
        # Plain fan-beam FDK, like RTK's (the cone-parallel path is timed on its own).
        rss, _ = peak_rss_kb([args.gantry, "recon", proj, "-o", g_out, "--mu", "--cone", "plain", "--size", f"{n},{n},{n}", "--spacing", f"{v},{v},{v}", "--timing-json", g_timing])
        g = json.load(open(g_timing))
        row["gantry_s"] = g["reconstruct_s"]
        row["gantry_gups"] = c["views"] * n ** 3 / g["reconstruct_s"] / 1e9
        row["gantry_peak_mb"] = rss / 1024
        row["gantry_rmse"], row["rmse_voxels"] = rmse(read_mha(g_out), truth)

        if not args.skip_rtk:
            r_out = os.path.join(d, "rtk.mha")
            rss, p = peak_rss_kb([args.rtk_python, "-c", RTK_FDK, proj, xml, r_out, str(n), str(v)])
            r = json.loads(p.stdout.strip().splitlines()[-1])
            row["rtk_s"] = r["reconstruct_s"]
            row["rtk_gups"] = c["views"] * n ** 3 / r["reconstruct_s"] / 1e9
            row["rtk_peak_mb"] = rss / 1024
            # RTK turns about y with the source at +z; Gantry about z with the source at −y:
            # (x, y, z)_Gantry = (x, −z, y)_RTK, so Gantry[k][j][i] = RTK[n−1−j][k][i].
            rtk_vol = np.transpose(read_mha(r_out), (1, 0, 2))[:, ::-1, :]
            row["rtk_rmse"], _ = rmse(rtk_vol, truth)
            row["speedup"] = row["rtk_s"] / row["gantry_s"]

        if not args.skip_plastimatch:
            # plastimatch fdk (Debian package) on the same projections, converted to its folder of
            # PFM images + projection-matrix files. It writes "HU" through its fixed conversion
            # HU = 1000·(x/40 − 0.167)/0.167; we invert that and fit one gain against the truth
            # (its intensity unit is its own), which can only favour it. Time = its own filter +
            # backprojection times (I/O excluded, as for the others).
            pm_dir, pm_out = os.path.join(d, "plastimatch_in"), os.path.join(d, "plastimatch.mha")
            if not os.path.exists(os.path.join(pm_dir, f"proj{c['views'] - 1:04d}.pfm")):
                run([sys.executable, os.path.join(HERE, "to_plastimatch.py"), proj, pm_dir])
            size = n * v
            rss, p = peak_rss_kb(["plastimatch", "fdk", "-I", pm_dir, "-O", pm_out, "-r", f"{n} {n} {n}", "-z", f"{size} {size} {size}"])
            times = dict(l.split(" = ") for l in p.stdout.splitlines() if l.endswith(tuple("0123456789")) and " time = " in l)
            row["plastimatch_s"] = float(times["Filter time"]) + float(times["Backprojection time"])
            row["plastimatch_peak_mb"] = rss / 1024
            x = 40 * 0.167 * (1 + read_mha(pm_out).astype(np.float64) / 1000)
            gain = float(np.dot(x.ravel(), truth.ravel()) / np.dot(x.ravel(), x.ravel()))
            row["plastimatch_gain"] = gain
            row["plastimatch_rmse"], _ = rmse(x * gain, truth)
            row["plastimatch_ratio"] = row["plastimatch_s"] / row["gantry_s"]

        if case in args.joseph.split(","):
            jp = os.path.join(d, "joseph.mha")
            jt = os.path.join(d, "joseph_timing.json")
            rss, _ = peak_rss_kb([args.gantry, "project", truth_path, "--protocol", proto, "-o", jp, "--timing-json", jt])
            row["gantry_joseph_s"] = json.load(open(jt))["project_s"]
            if not args.skip_rtk:
                rss, p = peak_rss_kb([args.rtk_python, "-c", RTK_JOSEPH, truth_path, xml, proj])
                row["rtk_joseph_s"] = json.loads(p.stdout.strip().splitlines()[-1])["project_s"]
                row["joseph_speedup"] = row["rtk_joseph_s"] / row["gantry_joseph_s"]
        print(json.dumps(row), flush=True)
        results.append(row)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
