//! MetaImage (.mha, header and data in one file; .mhd with a separate data file), the format of
//! ITK and RTK. World coordinates are ITK's physical space: LPS for patient images, RTK's fixed
//! frame for RTK data. Gantry records the frame and the quantity in two keys of its own,
//! `GantryFrame` and `GantryQuantity`, which ITK reads and keeps as metadata.

use crate::atomic::write_atomically;
use crate::error::{IoError, Result};
use flate2::read::ZlibDecoder;
use gantry_core::{Frame, Quantity};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

/// A 3D image as MetaImage sees it: sizes x, y, z (x fastest), spacing, origin, direction
/// (`direction[r][c]`: component r of axis c), f32 data in file order, and what the positions
/// and values are (LPS and unspecified when the file does not say).
#[derive(Debug, Clone, PartialEq)]
pub struct MetaImage {
    pub dims: [usize; 3],
    pub spacing: [f64; 3],
    pub origin: [f64; 3],
    pub direction: [[f64; 3]; 3],
    pub data: Vec<f32>,
    pub frame: Frame,
    pub quantity: Quantity,
}

/// Writes an uncompressed little-endian float .mha.
pub fn write_mha(path: &Path, img: &MetaImage) -> Result<()> {
    let n: usize = img.dims.iter().product();
    if img.data.len() != n {
        return Err(IoError::format(
            path,
            "data length",
            img.data.len(),
            format!("must be {n} for DimSize {:?}", img.dims),
        ));
    }
    let d = &img.direction;
    // MetaIO's TransformMatrix lists the direction of each axis in turn.
    let tm: Vec<String> = (0..3).flat_map(|c| (0..3).map(move |r| d[r][c].to_string())).collect();
    // ITK writes RAI for its LPS physical space; RTK's frame has no anatomical orientation.
    let mut own = String::new();
    if img.frame == Frame::Lps {
        own += "AnatomicalOrientation = RAI\n";
    }
    own += &format!("GantryFrame = {}\n", img.frame.code());
    if img.quantity != Quantity::Unspecified {
        own += &format!("GantryQuantity = {}\n", img.quantity.code());
    }
    let header = format!(
        "ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\nCompressedData = False\n\
         TransformMatrix = {}\nOffset = {} {} {}\nCenterOfRotation = 0 0 0\n{own}ElementSpacing = {} {} {}\n\
         DimSize = {} {} {}\nElementType = MET_FLOAT\nElementDataFile = LOCAL\n",
        tm.join(" "),
        img.origin[0],
        img.origin[1],
        img.origin[2],
        img.spacing[0],
        img.spacing[1],
        img.spacing[2],
        img.dims[0],
        img.dims[1],
        img.dims[2]
    );
    write_atomically(path, |tmp| {
        let f = File::create(tmp).map_err(|e| IoError::io(tmp, e))?;
        let mut w = std::io::BufWriter::new(f);
        w.write_all(header.as_bytes()).map_err(|e| IoError::io(tmp, e))?;
        let mut bytes = Vec::with_capacity(4 * n);
        for v in &img.data {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        w.write_all(&bytes).map_err(|e| IoError::io(tmp, e))?;
        w.flush().map_err(|e| IoError::io(tmp, e))
    })
}

fn parse_floats(path: &Path, key: &str, v: &str, n: usize) -> Result<Vec<f64>> {
    let vals: std::result::Result<Vec<f64>, _> = v.split_whitespace().map(|t| t.parse::<f64>()).collect();
    match vals {
        Ok(x) if x.len() == n && x.iter().all(|f| f.is_finite()) => Ok(x),
        _ => Err(IoError::format(path, key, v, format!("expected {n} finite numbers"))),
    }
}

/// Reads a 2D or 3D MetaImage (.mha or .mhd) of any common element type, little or big endian,
/// compressed or not, into f32.
pub fn read_mha(path: &Path) -> Result<MetaImage> {
    let f = File::open(path).map_err(|e| IoError::io(path, e))?;
    let mut r = BufReader::new(f);
    let mut fields = BTreeMap::new();
    loop {
        let mut line = Vec::new();
        let n = r.read_until(b'\n', &mut line).map_err(|e| IoError::io(path, e))?;
        if n == 0 {
            return Err(IoError::format(path, "ElementDataFile", "missing", "the header ends without it"));
        }
        let line = String::from_utf8_lossy(&line).trim().to_string();
        if line.is_empty() {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(IoError::format(path, "header line", &line, "expected 'Key = Value'"));
        };
        let (k, v) = (k.trim().to_string(), v.trim().to_string());
        let last = k == "ElementDataFile";
        fields.insert(k, v);
        if last {
            break;
        }
        if fields.len() > 200 {
            return Err(IoError::format(path, "header", "over 200 lines", "not a MetaImage"));
        }
    }
    let get = |k: &str| fields.get(k).map(|s| s.as_str());
    let ndims: usize = get("NDims")
        .and_then(|v| v.parse().ok())
        .filter(|n| (2..=3).contains(n))
        .ok_or_else(|| IoError::format(path, "NDims", get("NDims").unwrap_or("missing"), "must be 2 or 3"))?;
    let dim_v = parse_floats(path, "DimSize", get("DimSize").unwrap_or(""), ndims)?;
    let mut dims = [1usize; 3];
    for (i, d) in dim_v.iter().enumerate() {
        if *d < 1.0 || d.fract() != 0.0 {
            return Err(IoError::format(
                path,
                "DimSize",
                get("DimSize").unwrap_or(""),
                "sizes must be whole and at least 1",
            ));
        }
        dims[i] = *d as usize;
    }
    let mut spacing = [1.0; 3];
    if let Some(v) = get("ElementSpacing").or(get("ElementSize")) {
        for (i, s) in parse_floats(path, "ElementSpacing", v, ndims)?.into_iter().enumerate() {
            if s <= 0.0 {
                return Err(IoError::format(path, "ElementSpacing", v, "must be positive"));
            }
            spacing[i] = s;
        }
    }
    let mut origin = [0.0; 3];
    if let Some(v) = get("Offset").or(get("Origin")).or(get("Position")) {
        for (i, s) in parse_floats(path, "Offset", v, ndims)?.into_iter().enumerate() {
            origin[i] = s;
        }
    }
    let mut direction = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    if let Some(v) = get("TransformMatrix").or(get("Rotation")).or(get("Orientation")) {
        let m = parse_floats(path, "TransformMatrix", v, ndims * ndims)?;
        for c in 0..ndims {
            for r in 0..ndims {
                direction[r][c] = m[c * ndims + r];
            }
        }
    }
    let msb = matches!(get("BinaryDataByteOrderMSB").or(get("ElementByteOrderMSB")), Some("True") | Some("true"));
    let compressed = matches!(get("CompressedData"), Some("True") | Some("true"));
    let etype = get("ElementType").unwrap_or("missing").to_string();
    let size = match etype.as_str() {
        "MET_FLOAT" | "MET_INT" | "MET_UINT" => 4,
        "MET_DOUBLE" => 8,
        "MET_SHORT" | "MET_USHORT" => 2,
        "MET_CHAR" | "MET_UCHAR" => 1,
        _ => return Err(IoError::format(path, "ElementType", &etype, "unsupported element type")),
    };
    if matches!(get("ElementNumberOfChannels"), Some(c) if c != "1") {
        return Err(IoError::format(
            path,
            "ElementNumberOfChannels",
            get("ElementNumberOfChannels").unwrap_or(""),
            "only 1 channel is supported",
        ));
    }
    let n: usize = dims.iter().product();
    let data_file = get("ElementDataFile").unwrap_or("LOCAL");
    let mut source: Box<dyn Read> = if data_file == "LOCAL" {
        Box::new(r)
    } else {
        let p = path.parent().unwrap_or(Path::new(".")).join(data_file);
        Box::new(BufReader::new(File::open(&p).map_err(|e| IoError::io(&p, e))?))
    };
    if compressed {
        source = Box::new(ZlibDecoder::new(source));
    }
    // Converted chunk by chunk, so the raw bytes and the floats are never both held whole.
    let convert = |b: &[u8]| -> f32 {
        let mut a = [0u8; 8];
        a[..size].copy_from_slice(b);
        if msb {
            a[..size].reverse();
        }
        match etype.as_str() {
            "MET_FLOAT" => f32::from_le_bytes([a[0], a[1], a[2], a[3]]),
            "MET_DOUBLE" => f64::from_le_bytes(a) as f32,
            "MET_INT" => i32::from_le_bytes([a[0], a[1], a[2], a[3]]) as f32,
            "MET_UINT" => u32::from_le_bytes([a[0], a[1], a[2], a[3]]) as f32,
            "MET_SHORT" => i16::from_le_bytes([a[0], a[1]]) as f32,
            "MET_USHORT" => u16::from_le_bytes([a[0], a[1]]) as f32,
            "MET_CHAR" => a[0] as i8 as f32,
            _ => a[0] as f32,
        }
    };
    let mut data: Vec<f32> = Vec::with_capacity(n);
    let mut chunk = vec![0u8; (1 << 20) / size * size];
    let mut remaining = n * size;
    while remaining > 0 {
        let want = remaining.min(chunk.len());
        let buf = &mut chunk[..want];
        if let Err(e) = source.read_exact(buf) {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                return Err(IoError::format(
                    path,
                    "pixel data",
                    format!("{} bytes", n * size - remaining),
                    format!("truncated: DimSize {dims:?} of {etype} needs {} bytes", n * size),
                ));
            }
            return Err(IoError::io(path, e));
        }
        data.extend(buf.chunks_exact(size).map(convert));
        remaining -= want;
    }
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(IoError::format(path, "pixel data", data[i], format!("non-finite value at element {i}")));
    }
    let frame = match get("GantryFrame") {
        Some(f) => Frame::parse(f).map_err(|e| IoError::core(path, e))?,
        None => Frame::Lps,
    };
    let quantity = match get("GantryQuantity") {
        Some(q) => Quantity::from_code(q).map_err(|e| IoError::core(path, e))?,
        None => Quantity::Unspecified,
    };
    Ok(MetaImage { dims, spacing, origin, direction, data, frame, quantity })
}
