//! RTK's own data, reconstructed by Gantry: RTK (itk-rtk) makes a small short scan of its
//! Shepp–Logan phantom with an off-centre, anisotropic grid in its own frame (rotation axis y);
//! `gantry recon` reads RTK's projections and geometry XML with `--size/--spacing/--origin` in
//! that frame, and ITK reads the result with no header edits: the same grid as RTK's FDK, and
//! an RMSE against RTK's voxelised phantom within 2 % of RTK's FDK.

mod support;
use support::{check, gantry, peer_trial, python, python_with};

/// Writes geometry.xml, proj.mha (RTK's analytic projections), truth.mha (RTK's voxelised
/// phantom) and rtk_fdk.mha (RTK's FDK with Parker weights) into the current folder, and prints
/// the grid: size, spacing, origin.
const MAKE: &str = r#"
import itk
from itk import RTK as rtk
F3 = itk.Image[itk.F, 3]
sid, sdd, n_views, arc = 600.0, 900.0, 220, 220.0
geometry = rtk.ThreeDCircularProjectionGeometry.New()
for i in range(n_views):
    geometry.AddProjection(sid, sdd, 10.0 + i * arc / n_views)
w = rtk.ThreeDCircularProjectionGeometryXMLFileWriter.New()
w.SetFilename("geometry.xml"); w.SetObject(geometry); w.WriteFile()
src = rtk.ConstantImageSource[F3].New()
src.SetSize([160, 120, n_views]); src.SetSpacing([1.0, 1.2, 1.0])
src.SetOrigin([-0.5 * 159 * 1.0, -0.5 * 119 * 1.2, 0.0]); src.SetConstant(0.0)
offset = [0.08, -0.06, 0.04]
sl = rtk.SheppLoganPhantomFilter[F3, F3].New()
sl.SetInput(src.GetOutput()); sl.SetGeometry(geometry); sl.SetPhantomScale(50.0); sl.SetOriginOffset(offset)
sl.Update()
itk.imwrite(sl.GetOutput(), "proj.mha")
size, spacing, origin = [90, 56, 70], [1.1, 1.3, 0.9], [-45.0, -33.0, -28.0]
grid = rtk.ConstantImageSource[F3].New()
grid.SetSize(size); grid.SetSpacing(spacing); grid.SetOrigin(origin); grid.SetConstant(0.0)
draw = rtk.DrawSheppLoganFilter[F3, F3].New()
draw.SetInput(grid.GetOutput()); draw.SetPhantomScale(50.0); draw.SetOriginOffset(offset); draw.Update()
itk.imwrite(draw.GetOutput(), "truth.mha")
parker = rtk.ParkerShortScanImageFilter[F3].New()
parker.SetInput(sl.GetOutput()); parker.SetGeometry(geometry)
fdk = rtk.FDKConeBeamReconstructionFilter[F3].New()
fdk.SetInput(0, grid.GetOutput()); fdk.SetInput(1, parker.GetOutput()); fdk.SetGeometry(geometry)
fdk.GetRampFilter().SetTruncationCorrection(0.0); fdk.GetRampFilter().SetHannCutFrequency(0.0)
fdk.Update()
itk.imwrite(fdk.GetOutput(), "rtk_fdk.mha")
print(",".join(map(str, size)), ",".join(map(str, spacing)), ",".join(map(str, origin)))
"#;

/// Reads both reconstructions with ITK as they are; prints whether their grids agree, the
/// number of voxels compared, and the RMSE of RTK's and of Gantry's against the truth (voxels
/// whose 3×3×3 neighbourhood of the truth is uniform and inside the phantom).
const COMPARE: &str = r#"
import itk, numpy as np
t, r, g = (itk.imread(p) for p in ("truth.mha", "rtk_fdk.mha", "gantry.mha"))
def grid(im):
    return (tuple(im.GetOrigin()), tuple(im.GetSpacing()), tuple(itk.array_from_matrix(im.GetDirection()).ravel()),
            tuple(im.GetLargestPossibleRegion().GetSize()))
same = grid(r) == grid(g) == grid(t)
T, R, G = (itk.array_from_image(x).astype(float) for x in (t, r, g))
u = np.ones_like(T, bool)
for dz in (-1, 0, 1):
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            u &= np.abs(np.roll(T, (dz, dy, dx), axis=(0, 1, 2)) - T) < 1e-6
u[[0, -1]] = False; u[:, [0, -1]] = False; u[:, :, [0, -1]] = False
m = u & (T > 0)
rmse = lambda X: float(np.sqrt(np.mean((X - T)[m] ** 2)))
print(same, int(m.sum()), rmse(R), rmse(G))
"#;

fn rtk_short_scan_reconstructs_in_rtk_frame(py: &std::path::Path) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let d = dir.path();
    let grid = python(py, d, MAKE, &[])?;
    let g: Vec<&str> = grid.split_whitespace().collect();
    check(g.len() == 3, || format!("RTK script printed {grid:?}"))?;
    let log = gantry(
        d,
        &[
            "recon",
            "proj.mha",
            "--geometry",
            "geometry.xml",
            "--size",
            g[0],
            "--spacing",
            g[1],
            "--origin",
            g[2],
            "--mu",
            "-o",
            "gantry.mha",
        ],
    )?;
    check(log.contains("RTK frame"), || format!("the log does not name the frame: {log}"))?;
    let out = python(py, d, COMPARE, &[])?;
    let f: Vec<&str> = out.split_whitespace().collect();
    check(f.len() == 4 && f[0] == "True", || format!("ITK reads another grid than RTK's: {out}"))?;
    let (n, rtk, ours): (usize, f64, f64) =
        (f[1].parse().unwrap_or(0), f[2].parse().unwrap_or(f64::NAN), f[3].parse().unwrap_or(f64::NAN));
    check(n > 50_000, || format!("only {n} voxels compared"))?;
    check(ours <= 1.02 * rtk, || format!("RMSE Gantry {ours:.6} against RTK {rtk:.6} (limit 1.02×)"))
}

fn main() {
    let args = libtest_mimic::Arguments::from_args();
    let py = python_with(&["itk", "itk.RTK", "numpy"]);
    let trials =
        vec![peer_trial("rtk_short_scan_reconstructs_in_rtk_frame", &py, rtk_short_scan_reconstructs_in_rtk_frame)];
    libtest_mimic::run(&args, trials).exit();
}
