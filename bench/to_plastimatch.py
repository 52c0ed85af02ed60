#!/usr/bin/env python3
"""Writes a Gantry projection stack (.mha + .geometry.toml) as a plastimatch `fdk` input folder:
one PFM image and one projection-matrix text file per view (plastimatch's proj_mat format).

Usage: bench/to_plastimatch.py PROJ.mha OUT_DIR

The matrix of each view is built from Gantry's per-view vectors (source s, detector centre d,
detector axes u, v, normal w = u × v pointing away from the source): for a point X,
  column = ((X − s)·u / pu) · SDD / ((X − s)·w) + ic_x,   row = the same with v, pv, ic_y,
written as P = [u/pu, −u·s/pu; v/pv, −v·s/pv; w/SDD, −w·s/SDD]. Flat detectors only.
"""
import os, sys, tomllib
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fdk_vs_rtk import read_mha  # noqa: E402  (MetaImage [z][y][x]: here [view][row][col])


def main():
    proj_path, out = sys.argv[1], sys.argv[2]
    geo = tomllib.load(open(proj_path[: -len(".mha")] + ".geometry.toml", "rb"))
    det = geo["detector"]
    if det["shape"] != "flat" or geo["beam"] != "cone":
        sys.exit("plastimatch fdk takes cone-beam flat-detector projections only")
    data = read_mha(proj_path)
    n_views, nr, nc = data.shape
    pu, pv = det["pixel_u_mm"], det["pixel_v_mm"]
    ic = (0.5 * (nc - 1) - det["offset_u_mm"] / pu, 0.5 * (nr - 1) - det["offset_v_mm"] / pv)
    os.makedirs(out, exist_ok=True)
    for i, view in enumerate(geo["views"]):
        s, d = np.array(view["source_mm"]), np.array(view["detector_center_mm"])
        u, v = np.array(view["u"]), np.array(view["v"])
        w = np.cross(u, v)
        if np.dot(d - s, w) < 0:
            w = -w
        sdd = float(np.dot(d - s, w))
        sad = float(np.linalg.norm(s[:2]))
        p = np.array([
            np.append(u / pu, -np.dot(u, s) / pu),
            np.append(v / pv, -np.dot(v, s) / pv),
            np.append(w / sdd, -np.dot(w, s) / sdd),
        ])
        ext = np.array([np.append(u, -np.dot(u, s)), np.append(v, -np.dot(v, s)), np.append(w, -np.dot(w, s)), [0, 0, 0, 1]])
        intr = np.array([[1 / pu, 0, 0, 0], [0, 1 / pv, 0, 0], [0, 0, 1 / sdd, 0]])
        fmt = lambda row: " ".join(f"{x:.10e}" for x in row)
        lines = [fmt(ic)] + [fmt(r) for r in p] + [f"{sad:.10e}", f"{sdd:.10e}", fmt(w), "Extrinsic"]
        lines += [fmt(r) for r in ext] + ["Intrinsic"] + [fmt(r) for r in intr]
        with open(os.path.join(out, f"proj{i:04d}.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
        with open(os.path.join(out, f"proj{i:04d}.pfm"), "wb") as f:
            f.write(f"Pf\n{nc} {nr}\n-1\n".encode())
            f.write(np.ascontiguousarray(data[i], dtype="<f4").tobytes())


if __name__ == "__main__":
    main()
