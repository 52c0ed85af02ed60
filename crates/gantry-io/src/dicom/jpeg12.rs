//! Sequential DCT JPEG with 12-bit samples (ITU-T T.81 processes 2 and 4; DICOM transfer syntax
//! 1.2.840.10008.1.2.4.51, "JPEG Extended"), grey-level images.
//!
//! dicom-pixeldata's pure-Rust JPEG decoders stop at 8-bit DCT samples, and older CT archives
//! hold 12-bit JPEG extended series, so this module decodes them: markers (SOF0/SOF1, DHT, DQT,
//! DRI, SOS), Huffman entropy decoding with restart intervals, dequantisation and the integer
//! inverse DCT of the IJG library (`jidctint.c`, the one dcmtk's `dcmdjpeg` uses by default, with
//! its 12-bit constants: 13 fractional bits, 1 extra bit between passes), so the pixels agree with
//! dcmtk's to the last bit. Progressive and arithmetic-coded JPEG and colour images are refused
//! with an error that says which.

use std::fmt;

/// Why a JPEG stream could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JpegError(pub String);

impl fmt::Display for JpegError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for JpegError {}

fn err<T>(msg: impl Into<String>) -> Result<T, JpegError> {
    Err(JpegError(msg.into()))
}

/// A decoded grey-level image: samples 0 … 2^precision − 1, row by row.
#[derive(Debug, Clone, PartialEq)]
pub struct GreyImage {
    pub width: usize,
    pub height: usize,
    /// Sample precision in bits (8 or 12).
    pub precision: u8,
    pub samples: Vec<u16>,
}

/// Natural-order index of the k-th coefficient in zig-zag order.
const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21,
    28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54,
    47, 55, 62, 63,
];

/// A Huffman table in the form of T.81 F.2.2.3 (MAXCODE, VALPTR, MINCODE per code length).
#[derive(Debug, Clone)]
struct Huffman {
    min_code: [i32; 17],
    max_code: [i32; 17],
    val_ptr: [usize; 17],
    values: Vec<u8>,
}

impl Huffman {
    fn new(counts: &[u8; 16], values: Vec<u8>) -> Result<Self, JpegError> {
        let total: usize = counts.iter().map(|&c| c as usize).sum();
        if total != values.len() || total > 256 {
            return err(format!("Huffman table lists {total} codes but holds {} values", values.len()));
        }
        let mut h = Huffman { min_code: [0; 17], max_code: [-1; 17], val_ptr: [0; 17], values };
        let (mut code, mut k) = (0i32, 0usize);
        for len in 1..=16 {
            let n = counts[len - 1] as usize;
            if n > 0 {
                h.val_ptr[len] = k;
                h.min_code[len] = code;
                code += n as i32;
                k += n;
                h.max_code[len] = code - 1;
                if code > (1 << len) {
                    return err(format!("Huffman table over-subscribed at code length {len}"));
                }
            }
            code <<= 1;
        }
        Ok(h)
    }
}

/// Reads the entropy-coded bits of a scan: removes stuffed zero bytes and stops at a marker.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    acc: u32,
    n: u32,
    /// A marker was met; from there on zeros are supplied (T.81 F.2.2.5).
    at_marker: bool,
    /// Zero bytes supplied past a marker or the end of the data.
    padding: u32,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8], pos: usize) -> Self {
        Bits { data, pos, acc: 0, n: 0, at_marker: false, padding: 0 }
    }

    fn fill(&mut self) {
        while self.n <= 24 {
            let mut byte = 0u8;
            if self.at_marker || self.pos >= self.data.len() {
                self.padding += 1;
            } else {
                byte = self.data[self.pos];
                if byte == 0xFF {
                    let next = self.data.get(self.pos + 1).copied().unwrap_or(0xD9);
                    if next == 0x00 {
                        self.pos += 2;
                    } else {
                        self.at_marker = true;
                        self.padding += 1;
                        byte = 0;
                    }
                } else {
                    self.pos += 1;
                }
            }
            self.acc |= (byte as u32) << (24 - self.n);
            self.n += 8;
        }
    }

    /// Whether bits beyond the coded data (past a marker or the end) have been consumed: the
    /// data is truncated or corrupt.
    fn overrun(&self) -> bool {
        self.padding * 8 > self.n
    }

    fn bit(&mut self) -> i32 {
        if self.n == 0 {
            self.fill();
        }
        let b = (self.acc >> 31) as i32;
        self.acc <<= 1;
        self.n -= 1;
        b
    }

    fn receive(&mut self, s: u32) -> i32 {
        if s == 0 {
            return 0;
        }
        if self.n < s {
            self.fill();
        }
        let v = (self.acc >> (32 - s)) as i32;
        self.acc <<= s;
        self.n -= s;
        v
    }

    /// T.81 F.2.2.1: the s-bit value v as a signed difference.
    fn receive_extend(&mut self, s: u32) -> Result<i32, JpegError> {
        if s > 16 {
            return err(format!("coefficient magnitude category {s} is over 16"));
        }
        let v = self.receive(s);
        Ok(if s > 0 && v < (1 << (s - 1)) { v - (1 << s) + 1 } else { v })
    }

    fn decode(&mut self, h: &Huffman) -> Result<u8, JpegError> {
        let mut code = self.bit();
        for len in 1..=16 {
            if code <= h.max_code[len] {
                return Ok(h.values[h.val_ptr[len] + (code - h.min_code[len]) as usize]);
            }
            code = (code << 1) | self.bit();
        }
        err("Huffman code not in the table (corrupt entropy-coded data)")
    }

    /// Expects the restart marker RSTn at a restart interval's end and starts afresh after it.
    fn restart(&mut self, expected: u8) -> Result<(), JpegError> {
        self.acc = 0;
        self.n = 0;
        self.at_marker = false;
        self.padding = 0;
        match self.data.get(self.pos..self.pos + 2) {
            Some(&[0xFF, m]) if m == 0xD0 + expected => {
                self.pos += 2;
                Ok(())
            }
            Some(&[a, b]) => err(format!("expected restart marker RST{expected}, found {a:02X} {b:02X}")),
            _ => err(format!("data ends before restart marker RST{expected} (truncated)")),
        }
    }
}

struct Frame {
    precision: u8,
    height: usize,
    width: usize,
    quant_table: usize,
}

fn be16(data: &[u8], at: usize) -> Result<usize, JpegError> {
    match data.get(at..at + 2) {
        Some(b) => Ok(u16::from_be_bytes([b[0], b[1]]) as usize),
        None => err("stream ends inside a marker segment (truncated)"),
    }
}

/// Decodes one JPEG stream (SOI … EOI) of a grey-level sequential DCT image, 8- or 12-bit.
pub fn decode_grey(data: &[u8]) -> Result<GreyImage, JpegError> {
    if data.get(..2) != Some(&[0xFF, 0xD8]) {
        return err("does not start with the JPEG SOI marker");
    }
    let mut pos = 2;
    let mut quant: [Option<[u16; 64]>; 4] = [None; 4];
    let mut dc_tables: [Option<Huffman>; 4] = Default::default();
    let mut ac_tables: [Option<Huffman>; 4] = Default::default();
    let mut restart_interval = 0usize;
    let mut frame: Option<Frame> = None;
    loop {
        // Fill bytes (0xFF runs) may precede a marker.
        while data.get(pos) == Some(&0xFF) && data.get(pos + 1) == Some(&0xFF) {
            pos += 1;
        }
        let marker = match data.get(pos..pos + 2) {
            Some(&[0xFF, m]) => m,
            Some(&[a, b]) => return err(format!("expected a marker at byte {pos}, found {a:02X} {b:02X}")),
            _ => return err("stream ends before the image data (truncated)"),
        };
        pos += 2;
        if marker == 0xD9 {
            return err("end of image before any scan");
        }
        let len = be16(data, pos)?;
        let seg = match data.get(pos + 2..pos + len) {
            Some(s) if len >= 2 => s,
            _ => return err(format!("marker segment FF{marker:02X} of length {len} runs past the data (truncated)")),
        };
        match marker {
            0xC0 | 0xC1 => {
                if seg.len() < 6 {
                    return err("frame header too short");
                }
                let precision = seg[0];
                if precision != 8 && precision != 12 {
                    return err(format!("sample precision {precision} (DCT-based JPEG allows 8 or 12)"));
                }
                let height = u16::from_be_bytes([seg[1], seg[2]]) as usize;
                let width = u16::from_be_bytes([seg[3], seg[4]]) as usize;
                let components = seg[5];
                if components != 1 {
                    return err(format!("{components} components: only grey-level (1 component) images are read"));
                }
                if seg.len() < 9 {
                    return err("frame header too short");
                }
                if height == 0 || width == 0 {
                    return err(format!("image size {width} × {height} (a DNL-defined height is not supported)"));
                }
                let quant_table = seg[8] as usize;
                if quant_table > 3 {
                    return err(format!("quantisation table {quant_table} (0–3 allowed)"));
                }
                frame = Some(Frame { precision, height, width, quant_table });
            }
            0xC2 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => {
                let kind = match marker {
                    0xC2 => "progressive",
                    0xC3 => "lossless",
                    0xC9..=0xCB | 0xCD..=0xCF => "arithmetic-coded",
                    _ => "hierarchical",
                };
                return err(format!("{kind} JPEG (SOF marker FF{marker:02X}) is not read by this decoder"));
            }
            0xC4 => {
                let mut s = seg;
                while !s.is_empty() {
                    if s.len() < 17 {
                        return err("Huffman table segment too short");
                    }
                    let (class, id) = (s[0] >> 4, (s[0] & 15) as usize);
                    if class > 1 || id > 3 {
                        return err(format!("Huffman table class {class} id {id}"));
                    }
                    let counts: [u8; 16] = s[1..17].try_into().expect("16 bytes");
                    let n: usize = counts.iter().map(|&c| c as usize).sum();
                    let values = match s.get(17..17 + n) {
                        Some(v) => v.to_vec(),
                        None => return err("Huffman table segment too short"),
                    };
                    let table = Huffman::new(&counts, values)?;
                    if class == 0 {
                        dc_tables[id] = Some(table);
                    } else {
                        ac_tables[id] = Some(table);
                    }
                    s = &s[17 + n..];
                }
            }
            0xDB => {
                let mut s = seg;
                while !s.is_empty() {
                    let (wide, id) = (s[0] >> 4, (s[0] & 15) as usize);
                    if wide > 1 || id > 3 {
                        return err(format!("quantisation table precision {wide} id {id}"));
                    }
                    let size = if wide == 1 { 128 } else { 64 };
                    let body = match s.get(1..1 + size) {
                        Some(b) => b,
                        None => return err("quantisation table segment too short"),
                    };
                    let mut table = [0u16; 64];
                    for (k, &nat) in ZIGZAG.iter().enumerate() {
                        table[nat] =
                            if wide == 1 { u16::from_be_bytes([body[2 * k], body[2 * k + 1]]) } else { body[k] as u16 };
                    }
                    quant[id] = Some(table);
                    s = &s[1 + size..];
                }
            }
            0xDD => restart_interval = be16(seg, 0)?,
            0xDA => {
                let Some(frame) = frame else { return err("scan before the frame header") };
                if seg.len() < 6 || seg[0] != 1 {
                    return err("scan header: exactly one component expected");
                }
                let (dc_id, ac_id) = ((seg[2] >> 4) as usize, (seg[2] & 15) as usize);
                let (ss, se) = (seg[3], seg[4]);
                if ss != 0 || se != 63 || seg[5] != 0 {
                    return err(format!("scan covers coefficients {ss}–{se} (sequential JPEG codes 0–63)"));
                }
                let q = quant[frame.quant_table]
                    .ok_or_else(|| JpegError(format!("quantisation table {} not defined", frame.quant_table)))?;
                let dc = dc_tables
                    .get(dc_id)
                    .and_then(|t| t.as_ref())
                    .ok_or_else(|| JpegError(format!("DC Huffman table {dc_id} not defined")))?;
                let ac = ac_tables
                    .get(ac_id)
                    .and_then(|t| t.as_ref())
                    .ok_or_else(|| JpegError(format!("AC Huffman table {ac_id} not defined")))?;
                return decode_scan(data, pos + len, &frame, &q, dc, ac, restart_interval);
            }
            _ => {} // APPn, COM and the like
        }
        pos += len;
    }
}

fn decode_scan(
    data: &[u8],
    start: usize,
    frame: &Frame,
    q: &[u16; 64],
    dc: &Huffman,
    ac: &Huffman,
    restart_interval: usize,
) -> Result<GreyImage, JpegError> {
    let (bw, bh) = (frame.width.div_ceil(8), frame.height.div_ceil(8));
    let max = (1i32 << frame.precision) - 1;
    let centre = 1i32 << (frame.precision - 1);
    let mut samples = vec![0u16; frame.width * frame.height];
    let mut bits = Bits::new(data, start);
    let mut pred = 0i32;
    let mut next_rst = 0u8;
    let mut coef = [0i32; 64];
    let mut block = [0i32; 64];
    for b in 0..bw * bh {
        if restart_interval > 0 && b > 0 && b % restart_interval == 0 {
            bits.restart(next_rst)?;
            next_rst = (next_rst + 1) % 8;
            pred = 0;
        }
        coef.fill(0);
        let s = bits.decode(dc)? as u32;
        pred += bits.receive_extend(s)?;
        coef[0] = pred;
        let mut k = 1;
        while k < 64 {
            let rs = bits.decode(ac)?;
            let (r, s) = ((rs >> 4) as usize, (rs & 15) as u32);
            if s == 0 {
                if r != 15 {
                    break; // end of block
                }
                k += 16;
                continue;
            }
            k += r;
            if k > 63 {
                return err("AC coefficient run past the end of a block (corrupt entropy-coded data)");
            }
            coef[ZIGZAG[k]] = bits.receive_extend(s)?;
            k += 1;
        }
        if bits.overrun() {
            return err(format!("entropy-coded data ends in block {} of {} (truncated or corrupt)", b + 1, bw * bh));
        }
        idct_islow(&coef, q, frame.precision, &mut block);
        let (bx, by) = (b % bw, b / bw);
        for y in 0..8 {
            let row = by * 8 + y;
            if row >= frame.height {
                break;
            }
            for x in 0..8 {
                let col = bx * 8 + x;
                if col < frame.width {
                    samples[row * frame.width + col] = (block[y * 8 + x] + centre).clamp(0, max) as u16;
                }
            }
        }
    }
    Ok(GreyImage { width: frame.width, height: frame.height, precision: frame.precision, samples })
}

const CONST_BITS: u32 = 13;
const FIX_0_298631336: i64 = 2446;
const FIX_0_390180644: i64 = 3196;
const FIX_0_541196100: i64 = 4433;
const FIX_0_765366865: i64 = 6270;
const FIX_0_899976223: i64 = 7373;
const FIX_1_175875602: i64 = 9633;
const FIX_1_501321110: i64 = 12299;
const FIX_1_847759065: i64 = 15137;
const FIX_1_961570560: i64 = 16069;
const FIX_2_053119869: i64 = 16819;
const FIX_2_562915447: i64 = 20995;
const FIX_3_072711026: i64 = 25172;

fn descale(x: i64, n: u32) -> i64 {
    (x + (1 << (n - 1))) >> n
}

/// One 1-D pass of the Loeffler–Ligtenberg–Moschytz IDCT on 8 values (IJG's `jidctint.c`),
/// scaled by 2^CONST_BITS before the caller's descale.
fn idct_1d(v: [i64; 8]) -> [i64; 8] {
    // Even part.
    let z1 = (v[2] + v[6]) * FIX_0_541196100;
    let tmp2 = z1 - v[6] * FIX_1_847759065;
    let tmp3 = z1 + v[2] * FIX_0_765366865;
    let tmp0 = (v[0] + v[4]) << CONST_BITS;
    let tmp1 = (v[0] - v[4]) << CONST_BITS;
    let (tmp10, tmp13, tmp11, tmp12) = (tmp0 + tmp3, tmp0 - tmp3, tmp1 + tmp2, tmp1 - tmp2);
    // Odd part.
    let (t0, t1, t2, t3) = (v[7], v[5], v[3], v[1]);
    let (z1, z2, z3, z4) = (t0 + t3, t1 + t2, t0 + t2, t1 + t3);
    let z5 = (z3 + z4) * FIX_1_175875602;
    let (t0, t1, t2, t3) = (t0 * FIX_0_298631336, t1 * FIX_2_053119869, t2 * FIX_3_072711026, t3 * FIX_1_501321110);
    let (z1, z2) = (-z1 * FIX_0_899976223, -z2 * FIX_2_562915447);
    let z3 = -z3 * FIX_1_961570560 + z5;
    let z4 = -z4 * FIX_0_390180644 + z5;
    let (t0, t1, t2, t3) = (t0 + z1 + z3, t1 + z2 + z4, t2 + z2 + z3, t3 + z1 + z4);
    [tmp10 + t3, tmp11 + t2, tmp12 + t1, tmp13 + t0, tmp13 - t0, tmp12 - t1, tmp11 - t2, tmp10 - t3]
}

/// Dequantises and inverse-transforms one block exactly as IJG's integer "islow" IDCT: columns
/// first, descaled keeping `pass1` extra bits, then rows, descaled by a further 3 bits (the
/// 1/8 of the 2-D transform). Output is centred on zero (level shift added by the caller).
fn idct_islow(coef: &[i32; 64], q: &[u16; 64], precision: u8, out: &mut [i32; 64]) {
    let pass1: u32 = if precision == 8 { 2 } else { 1 };
    let mut ws = [0i64; 64];
    for c in 0..8 {
        let col: [i64; 8] = std::array::from_fn(|r| coef[r * 8 + c] as i64 * q[r * 8 + c] as i64);
        let t = idct_1d(col);
        for r in 0..8 {
            ws[r * 8 + c] = descale(t[r], CONST_BITS - pass1);
        }
    }
    for r in 0..8 {
        let row: [i64; 8] = std::array::from_fn(|c| ws[r * 8 + c]);
        let t = idct_1d(row);
        for c in 0..8 {
            out[r * 8 + c] = descale(t[c], CONST_BITS + pass1 + 3) as i32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The float 2-D inverse DCT of T.81 A.3.3, for comparison.
    fn idct_float(coef: &[f64; 64]) -> [f64; 64] {
        let cu = |u: usize| if u == 0 { std::f64::consts::FRAC_1_SQRT_2 } else { 1.0 };
        std::array::from_fn(|i| {
            let (y, x) = (i / 8, i % 8);
            let mut s = 0.0;
            for v in 0..8 {
                for u in 0..8 {
                    s += cu(u)
                        * cu(v)
                        * coef[v * 8 + u]
                        * ((2 * x + 1) as f64 * u as f64 * std::f64::consts::PI / 16.0).cos()
                        * ((2 * y + 1) as f64 * v as f64 * std::f64::consts::PI / 16.0).cos();
                }
            }
            s / 4.0
        })
    }

    #[test]
    fn integer_idct_matches_the_definition_within_one_level() {
        // Pseudo-random coefficients in the 12-bit range, quantiser 1 and a coarse one.
        let mut state = 12345u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 33) % 2001) as i32 - 1000
        };
        for qv in [1u16, 7] {
            for _ in 0..200 {
                let coef: [i32; 64] =
                    std::array::from_fn(|i| if i == 0 { next() * 8 } else { next() / (1 + i as i32) });
                let q = [qv; 64];
                let mut out = [0; 64];
                idct_islow(&coef, &q, 12, &mut out);
                let exact = idct_float(&std::array::from_fn(|i| (coef[i] * qv as i32) as f64));
                for i in 0..64 {
                    assert!((out[i] as f64 - exact[i]).abs() <= 1.0, "q {qv} i {i}: {} vs {}", out[i], exact[i]);
                }
            }
        }
    }

    /// Encodes a 12-bit image of flat 8 × 8 blocks (DC only) with the given restart interval:
    /// DC categories as 4-bit codes, end-of-block as the 1-bit code 0.
    fn flat_blocks_jpeg(values: &[i32], blocks_wide: usize, restart: usize) -> Vec<u8> {
        let mut out = vec![0xFF, 0xD8];
        let mut seg = |marker: u8, body: &[u8]| {
            out.extend_from_slice(&[0xFF, marker]);
            out.extend_from_slice(&((body.len() + 2) as u16).to_be_bytes());
            out.extend_from_slice(body);
        };
        seg(0xDB, &[[0x10].as_slice(), &[0, 1].repeat(64)].concat()); // 16-bit table of ones
        let (w, h) = (8 * blocks_wide as u16, 8 * values.len().div_ceil(blocks_wide) as u16);
        seg(0xC1, &[[12].as_slice(), &h.to_be_bytes(), &w.to_be_bytes(), &[1, 1, 0x11, 0]].concat());
        let mut dht = vec![0x00];
        dht.extend_from_slice(&[0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        dht.extend(0..16u8);
        dht.extend_from_slice(&[0x10, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00]);
        seg(0xC4, &dht);
        if restart > 0 {
            seg(0xDD, &(restart as u16).to_be_bytes());
        }
        seg(0xDA, &[1, 1, 0x00, 0, 63, 0]);
        let (mut bits, mut n, mut pred, mut rst) = (0u64, 0u32, 0i32, 0u8);
        let flush = |bits: &mut u64, n: &mut u32, out: &mut Vec<u8>, pad: bool| {
            if pad && !(*n).is_multiple_of(8) {
                let fill = 8 - *n % 8;
                *bits = (*bits << fill) | ((1 << fill) - 1);
                *n += fill;
            }
            while *n >= 8 {
                let byte = (*bits >> (*n - 8)) as u8;
                out.push(byte);
                if byte == 0xFF {
                    out.push(0);
                }
                *n -= 8;
            }
        };
        for (b, &v) in values.iter().enumerate() {
            if restart > 0 && b > 0 && b % restart == 0 {
                flush(&mut bits, &mut n, &mut out, true);
                out.extend_from_slice(&[0xFF, 0xD0 + rst]);
                rst = (rst + 1) % 8;
                pred = 0;
            }
            let dc = 8 * (v - 2048);
            let diff = dc - pred;
            pred = dc;
            let s = 32 - diff.unsigned_abs().leading_zeros();
            let coded = if diff >= 0 { diff } else { diff + (1 << s) - 1 } as u64;
            bits = (bits << 4) | s as u64;
            bits = (bits << s) | coded;
            bits <<= 1; // end of block: code 0
            n += 4 + s + 1;
            flush(&mut bits, &mut n, &mut out, false);
        }
        flush(&mut bits, &mut n, &mut out, true);
        out.extend_from_slice(&[0xFF, 0xD9]);
        out
    }

    #[test]
    fn restart_intervals_reset_the_dc_prediction() {
        let values = [100, 4000, 2048, 0, 4095, 1234];
        for restart in [0, 1, 2, 4] {
            let image = decode_grey(&flat_blocks_jpeg(&values, 3, restart)).unwrap();
            assert_eq!((image.width, image.height, image.precision), (24, 16, 12));
            for (b, &v) in values.iter().enumerate() {
                let (x, y) = (8 * (b % 3), 8 * (b / 3));
                for i in 0..64 {
                    let got = image.samples[(y + i / 8) * 24 + x + i % 8];
                    assert_eq!(got as i32, v, "restart {restart} block {b}");
                }
            }
        }
        // A restart marker out of sequence is an error, not a wrong image.
        let mut bad = flat_blocks_jpeg(&values, 3, 1);
        let at = bad.windows(2).position(|w| w == [0xFF, 0xD1]).unwrap();
        bad[at + 1] = 0xD5;
        assert!(decode_grey(&bad).unwrap_err().0.contains("RST1"));
    }

    #[test]
    fn bad_streams_are_errors_not_panics() {
        assert!(decode_grey(&[]).is_err());
        assert!(decode_grey(&[0xFF, 0xD8]).unwrap_err().0.contains("truncated"));
        // A progressive frame header is refused by name.
        let sof2 = [0xFF, 0xD8, 0xFF, 0xC2, 0x00, 0x0B, 12, 0, 8, 0, 8, 1, 1, 0x11, 0];
        assert!(decode_grey(&sof2).unwrap_err().0.contains("progressive"));
        // A segment length past the end.
        let long = [0xFF, 0xD8, 0xFF, 0xDB, 0x10, 0x00, 0];
        assert!(decode_grey(&long).unwrap_err().0.contains("truncated"));
    }
}
