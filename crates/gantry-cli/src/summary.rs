//! The stroke summary picture: representative slices with the core in red and the rest of the
//! Tmax > 6 s region in green over the unenhanced brain, the arterial and venous curves, and the
//! figures burnt in with a small built-in 5 × 7 font.

use gantry_perfusion::StrokeResult;

/// An RGB canvas.
pub struct Canvas {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
}

impl Canvas {
    fn new(width: usize, height: usize) -> Canvas {
        Canvas { width, height, rgb: vec![0; width * height * 3] }
    }
    fn put(&mut self, x: usize, y: usize, c: [u8; 3]) {
        if x < self.width && y < self.height {
            let i = (y * self.width + x) * 3;
            self.rgb[i..i + 3].copy_from_slice(&c);
        }
    }
    fn line(&mut self, (x0, y0): (f64, f64), (x1, y1): (f64, f64), c: [u8; 3]) {
        let n = ((x1 - x0).abs().max((y1 - y0).abs()).ceil() as usize).max(1);
        for s in 0..=n {
            let t = s as f64 / n as f64;
            let (x, y) = (x0 + t * (x1 - x0), y0 + t * (y1 - y0));
            if x >= 0.0 && y >= 0.0 {
                self.put(x.round() as usize, y.round() as usize, c);
                self.put(x.round() as usize, y.round() as usize + 1, c);
            }
        }
    }
    /// Text at (x, y), glyphs 5 × 7 scaled by `scale`; characters without a glyph are blank.
    fn text(&mut self, x: usize, y: usize, s: &str, scale: usize, c: [u8; 3]) {
        for (n, ch) in s.chars().enumerate() {
            let rows = glyph(ch.to_ascii_uppercase());
            for (r, bits) in rows.iter().enumerate() {
                for col in 0..5 {
                    if bits >> (4 - col) & 1 == 1 {
                        for dy in 0..scale {
                            for dx in 0..scale {
                                self.put(x + (n * 6 + col) * scale + dx, y + r * scale + dy, c);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Rows of a 5 × 7 glyph, most significant of 5 bits on the left.
fn glyph(c: char) -> [u8; 7] {
    match c {
        '0' => [14, 17, 19, 21, 25, 17, 14],
        '1' => [4, 12, 4, 4, 4, 4, 14],
        '2' => [14, 17, 1, 2, 4, 8, 31],
        '3' => [31, 2, 4, 2, 1, 17, 14],
        '4' => [2, 6, 10, 18, 31, 2, 2],
        '5' => [31, 16, 30, 1, 1, 17, 14],
        '6' => [6, 8, 16, 30, 17, 17, 14],
        '7' => [31, 1, 2, 4, 8, 8, 8],
        '8' => [14, 17, 17, 14, 17, 17, 14],
        '9' => [14, 17, 17, 15, 1, 2, 12],
        'A' => [14, 17, 17, 31, 17, 17, 17],
        'B' => [30, 17, 17, 30, 17, 17, 30],
        'C' => [14, 17, 16, 16, 16, 17, 14],
        'D' => [28, 18, 17, 17, 17, 18, 28],
        'E' => [31, 16, 16, 30, 16, 16, 31],
        'F' => [31, 16, 16, 30, 16, 16, 16],
        'G' => [14, 17, 16, 23, 17, 17, 15],
        'H' => [17, 17, 17, 31, 17, 17, 17],
        'I' => [14, 4, 4, 4, 4, 4, 14],
        'J' => [7, 2, 2, 2, 2, 18, 12],
        'K' => [17, 18, 20, 24, 20, 18, 17],
        'L' => [16, 16, 16, 16, 16, 16, 31],
        'M' => [17, 27, 21, 21, 17, 17, 17],
        'N' => [17, 17, 25, 21, 19, 17, 17],
        'O' => [14, 17, 17, 17, 17, 17, 14],
        'P' => [30, 17, 17, 30, 16, 16, 16],
        'Q' => [14, 17, 17, 17, 21, 18, 13],
        'R' => [30, 17, 17, 30, 20, 18, 17],
        'S' => [15, 16, 16, 14, 1, 1, 30],
        'T' => [31, 4, 4, 4, 4, 4, 4],
        'U' => [17, 17, 17, 17, 17, 17, 14],
        'V' => [17, 17, 17, 17, 17, 10, 4],
        'W' => [17, 17, 17, 21, 21, 21, 10],
        'X' => [17, 17, 10, 4, 10, 17, 17],
        'Y' => [17, 17, 17, 10, 4, 4, 4],
        'Z' => [31, 1, 2, 4, 8, 16, 31],
        '.' => [0, 0, 0, 0, 0, 12, 12],
        ',' => [0, 0, 0, 0, 12, 4, 8],
        ':' => [0, 12, 12, 0, 12, 12, 0],
        '-' => [0, 0, 0, 31, 0, 0, 0],
        '+' => [0, 4, 4, 31, 4, 4, 0],
        '>' => [8, 4, 2, 1, 2, 4, 8],
        '<' => [2, 4, 8, 16, 8, 4, 2],
        '=' => [0, 0, 31, 0, 31, 0, 0],
        '/' => [0, 1, 2, 4, 8, 16, 0],
        '%' => [24, 25, 2, 4, 8, 19, 3],
        '(' => [2, 4, 8, 8, 8, 4, 2],
        ')' => [8, 4, 2, 2, 2, 4, 8],
        _ => [0; 7],
    }
}

/// How a slice of a volume is drawn in radiological convention: the patient's right on the
/// image's left, anterior at the top, whatever the storage order. Of the two in-slice voxel axes
/// the one nearer the patient's left–right (LPS x) runs along the image columns, the other
/// along its rows; each is reversed when it points to the patient's right or anterior.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Radiological {
    /// Width and height of the drawn slice (pixels).
    pub width: usize,
    pub height: usize,
    /// The voxel axis (0 = i, 1 = j) along the image columns, and whether it runs reversed.
    pub col_axis: usize,
    col_reversed: bool,
    row_reversed: bool,
}

impl Radiological {
    pub fn of(g: &gantry_core::VolumeGeometry) -> Radiological {
        let d = g.direction;
        // LPS component `c` of voxel axis `a`.
        let comp = |c: usize, a: usize| d[c][a];
        let col_axis = if comp(0, 0).abs() >= comp(0, 1).abs() { 0 } else { 1 };
        let row_axis = 1 - col_axis;
        let dims = [g.dims[0], g.dims[1]];
        Radiological {
            width: dims[col_axis],
            height: dims[row_axis],
            col_axis,
            // Columns must run towards the patient's left (+x), rows towards posterior (+y).
            col_reversed: comp(0, col_axis) < 0.0,
            row_reversed: comp(1, row_axis) < 0.0,
        }
    }

    /// The voxel (i, j) drawn at image column `x`, row `y`.
    pub fn voxel(&self, x: usize, y: usize) -> (usize, usize) {
        let a = if self.col_reversed { self.width - 1 - x } else { x };
        let b = if self.row_reversed { self.height - 1 - y } else { y };
        if self.col_axis == 0 {
            (a, b)
        } else {
            (b, a)
        }
    }
}

/// The summary picture of a pipeline result; `lines` are the figures to print.
pub fn render(r: &StrokeResult, lines: &[String]) -> Canvas {
    let [nz, ny, nx] = r.baseline.geometry.shape_zyx();
    // Representative slices: the four holding the most Tmax > 6 s tissue (in z order), or four
    // evenly through the brain when there is none.
    let per_slice: Vec<(usize, usize, usize)> = (0..nz)
        .map(|k| {
            let sl = k * ny * nx..(k + 1) * ny * nx;
            (k, r.hypoperfused[sl.clone()].iter().filter(|&&h| h).count(), r.tissue[sl].iter().filter(|&&t| t).count())
        })
        .collect();
    let mut slices: Vec<usize> = if per_slice.iter().any(|s| s.1 > 0) {
        let mut s = per_slice.clone();
        s.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        s.iter().take(4).filter(|s| s.1 > 0).map(|s| s.0).collect()
    } else {
        let brain: Vec<usize> = per_slice.iter().filter(|s| s.2 > 0).map(|s| s.0).collect();
        (0..4.min(brain.len())).map(|i| brain[(i * 2 + 1) * brain.len() / 8]).collect()
    };
    slices.sort_unstable();
    slices.dedup();
    let panels = slices.len().max(1);
    let plot_h = 180;
    let text_h = 18 * lines.len() + 16;
    let view = Radiological::of(&r.baseline.geometry);
    let (pw, ph) = (view.width, view.height);
    // Below the slices: CBF, CBV, MTT and Tmax of the slice with the most Tmax > 6 s tissue (the
    // first shown otherwise), each with its colour bar; then the curves, then the figures.
    let maps_top = ph;
    let plot_top = 2 * ph + MAP_BAR_H;
    let mut c = Canvas::new(panels.max(4) * pw, plot_top + plot_h + text_h);
    let base = r.baseline.data.as_slice().expect("standard layout");
    for (p, &k) in slices.iter().enumerate() {
        for y in 0..ph {
            for x in 0..pw {
                let (i, j) = view.voxel(x, y);
                let v = k * ny * nx + j * nx + i;
                let g = ((base[v] as f64 - 0.0) / 80.0 * 255.0).clamp(0.0, 255.0) as u8;
                let colour = if r.core[v] {
                    [255, (g as f32 * 0.3) as u8, (g as f32 * 0.3) as u8]
                } else if r.hypoperfused[v] {
                    [(g as f32 * 0.4) as u8, 220, (g as f32 * 0.4) as u8]
                } else {
                    [g, g, g]
                };
                c.put(p * pw + x, y, colour);
            }
        }
        // A 50 mm scale bar along the bottom left of the panel.
        let mm_per_px = r.baseline.geometry.spacing_mm[view.col_axis];
        let bar = (50.0 / mm_per_px).round() as usize;
        if bar + 8 < pw {
            let y = ph.saturating_sub(6) as f64;
            let x0 = (p * pw + 6) as f64;
            c.line((x0, y), (x0 + bar as f64, y), [255, 255, 255]);
            c.line((x0, y - 4.0), (x0, y), [255, 255, 255]);
            c.line((x0 + bar as f64, y - 4.0), (x0 + bar as f64, y), [255, 255, 255]);
            c.text(p * pw + 8, ph.saturating_sub(24), "50 MM", 1, [255, 255, 255]);
        }
        // Orientation letters: the patient's right on the left, anterior at the top.
        let yellow = [255, 255, 0];
        c.text(p * pw + 4, ph / 2, "R", 2, yellow);
        c.text(p * pw + pw - 16, ph / 2, "L", 2, yellow);
        c.text(p * pw + pw / 2 - 5, 24, "A", 2, yellow);
        c.text(p * pw + pw / 2 - 5, ph - 18, "P", 2, yellow);
        c.text(
            p * pw + 4,
            4,
            &format!("Z {:.1} MM", r.baseline.geometry.position_mm(0.0, 0.0, k as f64)[2]),
            2,
            [255, 255, 0],
        );
    }
    // Curves: arterial red, venous blue, on a common scale.
    let key = per_slice.iter().filter(|s| slices.contains(&s.0)).max_by_key(|s| (s.1, std::cmp::Reverse(s.0)));
    let key = key.map(|s| s.0).or(slices.first().copied()).unwrap_or(0);
    draw_maps(&mut c, r, &view, key, maps_top);
    let (x0, y0, w, h) =
        (40.0, (plot_top + plot_h - 20) as f64, (c.width as f64 - 60.0).max(50.0), (plot_h - 40) as f64);
    c.line((x0, y0), (x0 + w, y0), [200, 200, 200]);
    c.line((x0, y0), (x0, y0 - h), [200, 200, 200]);
    let t_end = r.times_s.last().copied().unwrap_or(1.0).max(1e-6);
    let top = r.aif.curve.iter().chain(&r.vof.curve).cloned().fold(1.0, f64::max);
    for (curve, colour) in [(&r.aif.curve, [255, 60, 60]), (&r.vof.curve, [80, 140, 255])] {
        for i in 1..curve.len() {
            let pt = |k: usize| (x0 + r.times_s[k] / t_end * w, y0 - curve[k].max(0.0) / top * h);
            c.line(pt(i - 1), pt(i), colour);
        }
    }
    c.text(
        x0 as usize + 8,
        (y0 - h) as usize,
        &format!("ARTERIAL (RED) PEAK {:.0} HU", r.aif.peak_hu),
        2,
        [255, 60, 60],
    );
    c.text(
        x0 as usize + 8,
        (y0 - h) as usize + 18,
        &format!("VENOUS (BLUE) PEAK {:.0} HU", r.vof.peak_hu),
        2,
        [80, 140, 255],
    );
    c.text(x0 as usize, y0 as usize + 4, &format!("0 - {t_end:.0} S"), 2, [200, 200, 200]);
    for (n, l) in lines.iter().enumerate() {
        c.text(8, plot_top + plot_h + 8 + 18 * n, l, 2, [255, 255, 255]);
    }
    c
}

/// Height of the colour bars and their labels under the map panels (pixels).
const MAP_BAR_H: usize = 34;

/// The maps drawn on the summary: name, display range and unit as printed.
const MAPS: [(&str, f64, &str); 4] =
    [("CBF", 60.0, "ML/100G/MIN"), ("CBV", 6.0, "ML/100G"), ("MTT", 16.0, "S"), ("TMAX", 12.0, "S")];

/// A colour for `t` in [0, 1]: black through blue, cyan, green, yellow and red to white.
fn colour_map(t: f64) -> [u8; 3] {
    const ANCHORS: [(f64, [f64; 3]); 7] = [
        (0.0, [0.0, 0.0, 0.0]),
        (0.15, [40.0, 0.0, 140.0]),
        (0.35, [0.0, 100.0, 255.0]),
        (0.55, [0.0, 220.0, 120.0]),
        (0.75, [255.0, 230.0, 0.0]),
        (0.9, [255.0, 60.0, 0.0]),
        (1.0, [255.0, 255.0, 255.0]),
    ];
    let t = t.clamp(0.0, 1.0);
    let k = ANCHORS.iter().position(|a| a.0 >= t).unwrap_or(ANCHORS.len() - 1).max(1);
    let ((t0, c0), (t1, c1)) = (ANCHORS[k - 1], ANCHORS[k]);
    let f = if t1 > t0 { (t - t0) / (t1 - t0) } else { 0.0 };
    std::array::from_fn(|i| (c0[i] + f * (c1[i] - c0[i])).round() as u8)
}

/// CBF, CBV, MTT and Tmax of slice `k`, side by side from `top`, in radiological convention,
/// each with a colour bar labelled with its range and unit (black outside tissue).
fn draw_maps(c: &mut Canvas, r: &StrokeResult, view: &Radiological, k: usize, top: usize) {
    let [_, ny, nx] = r.baseline.geometry.shape_zyx();
    let (pw, ph) = (view.width, view.height);
    let volumes = [&r.maps.cbf, &r.maps.cbv, &r.maps.mtt, &r.maps.tmax];
    for (p, ((name, max, unit), vol)) in MAPS.iter().zip(volumes).enumerate() {
        let Some(data) = vol.data.as_slice() else { continue };
        for y in 0..ph {
            for x in 0..pw {
                let (i, j) = view.voxel(x, y);
                let v = data[k * ny * nx + j * nx + i];
                let colour = if v.is_finite() { colour_map(v as f64 / max) } else { [0, 0, 0] };
                c.put(p * pw + x, top + y, colour);
            }
        }
        let z = r.baseline.geometry.position_mm(0.0, 0.0, k as f64)[2];
        c.text(p * pw + 4, top + 4, &format!("{name}  Z {z:.1} MM"), 2, [255, 255, 255]);
        let (bx, by, bw) = (p * pw + 10, top + ph + 4, pw.saturating_sub(20));
        for x in 0..bw {
            let colour = colour_map(x as f64 / bw.max(1) as f64);
            for y in 0..10 {
                c.put(bx + x, by + y, colour);
            }
        }
        c.text(bx, by + 14, "0", 2, [200, 200, 200]);
        let label = format!("{max:.0} {unit}");
        c.text((bx + bw).saturating_sub(12 * label.len()), by + 14, &label, 2, [200, 200, 200]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gantry_core::VolumeGeometry;

    /// A lesion on the patient's left (LPS x > 0) is drawn on the image's right half, and an
    /// anterior one (y < 0) on the top half, for LPS, RAS and flipped storage and for a
    /// transposed one.
    #[test]
    fn the_patients_left_is_on_the_images_right_for_every_storage_order() {
        let dirs: [[[f64; 3]; 3]; 4] = [
            [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],   // LPS
            [[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]], // RAS
            [[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]], // x flipped, z flipped
            [[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]],  // i along anterior, j along left
        ];
        for d in dirs {
            let g = VolumeGeometry::new([40, 30, 4], [1.0, 1.0, 5.0], [0.0, 0.0, 0.0], d).unwrap();
            let view = Radiological::of(&g);
            // Where each image quadrant's pixel lies in the patient.
            let at = |x: usize, y: usize| {
                let (i, j) = view.voxel(x, y);
                g.position_mm(i as f64, j as f64, 0.0)
            };
            let (w, h) = (view.width, view.height);
            let left_edge = at(0, h / 2)[0];
            let right_edge = at(w - 1, h / 2)[0];
            assert!(right_edge > left_edge, "{d:?}: image right at x {right_edge}, left at {left_edge}");
            let (top, bottom) = (at(w / 2, 0)[1], at(w / 2, h - 1)[1]);
            assert!(top < bottom, "{d:?}: anterior must be up (top y {top}, bottom y {bottom})");
            assert_eq!(w * h, 40 * 30);
        }
    }

    #[test]
    fn the_colour_map_runs_from_black_to_white_through_its_anchors() {
        assert_eq!(colour_map(0.0), [0, 0, 0]);
        assert_eq!(colour_map(1.0), [255, 255, 255]);
        assert_eq!(colour_map(0.75), [255, 230, 0]);
        assert_eq!(colour_map(-1.0), [0, 0, 0]);
        assert_eq!(colour_map(f64::INFINITY), [255, 255, 255]);
    }
}
