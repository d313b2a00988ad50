//! The header of a NumPy `.npy` file (format versions 1, 2 and 3): the magic, the version,
//! the header length and the dict `{'descr': '<f4', 'fortran_order': False, 'shape': (n, d), }`.
//!
//! Why a parser of our own rather than the `npyz` crate: the library must map a little-endian
//! `f32` body in place (a 1 GB matrix costs 1 GB, not 2), so only the header needs parsing,
//! and the header is a tiny Python literal of three keys. `npyz` with its default features
//! brings several crates (the library's dependency budget is 40 with `default-features =
//! false`), and its readers decode element by element into a new buffer. This parser checks
//! every byte it reads and never allocates more than the header's own length; the body is
//! checked against the shape by the caller (`samples.rs`). Its fuzz target is `npy`
//! (`fuzz_entry::npy`).

/// The six bytes every `.npy` file starts with.
pub(crate) const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Largest header the parser reads (numpy writes a few hundred bytes; its own reader refuses
/// more than 10 000 by default).
const MAX_HEADER: usize = 1 << 16;

/// Byte order of the elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Order {
    Little,
    Big,
    /// One-byte types (`|`).
    NotApplicable,
}

/// An element type from `descr`: kind (`u`, `i`, `f`, …), size in bytes, byte order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Dtype {
    pub kind: char,
    pub size: usize,
    pub order: Order,
    /// `descr` as written, for messages.
    pub descr: String,
}

impl Dtype {
    /// True for a one-byte or little-endian type (on the little-endian machines this crate
    /// maps on, that is native order; `=` is read as little-endian, numpy never writes it).
    pub fn is_little(&self) -> bool {
        self.order != Order::Big
    }
}

/// A parsed header: where the data starts and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NpyHeader {
    pub dtype: Dtype,
    pub fortran_order: bool,
    pub shape: Vec<usize>,
    /// Offset of the first element.
    pub data_offset: usize,
}

/// Parse the header at the start of `bytes`. The error is a sentence without the file name.
pub(crate) fn parse(bytes: &[u8]) -> Result<NpyHeader, String> {
    if !bytes.starts_with(MAGIC) {
        return Err("not a .npy file (no \\x93NUMPY magic)".into());
    }
    let (major, minor) = match bytes.get(6..8) {
        Some(&[a, b]) => (a, b),
        _ => return Err("truncated .npy header (no version)".into()),
    };
    let (len_bytes, start) = match major {
        1 => (2, 10),
        2 | 3 => (4, 12),
        _ => {
            return Err(format!(
                ".npy format version {major}.{minor} is not supported (1, 2 or 3)"
            ));
        }
    };
    let Some(len_field) = bytes.get(8..8 + len_bytes) else {
        return Err("truncated .npy header (no header length)".into());
    };
    let header_len = len_field
        .iter()
        .rev()
        .fold(0usize, |n, &b| (n << 8) | b as usize);
    if header_len > MAX_HEADER {
        return Err(format!(
            ".npy header of {header_len} bytes is over the limit of {MAX_HEADER}"
        ));
    }
    let Some(text) = bytes.get(start..start + header_len) else {
        return Err(format!(
            "truncated .npy header: it claims {header_len} bytes, the file holds {}",
            bytes.len().saturating_sub(start)
        ));
    };
    // Versions 1 and 2 are latin-1, 3 is UTF-8; the dict we accept is ASCII in both.
    let text =
        std::str::from_utf8(text).map_err(|_| "the .npy header is not ASCII text".to_string())?;
    let (dtype, fortran_order, shape) = parse_dict(text)?;
    Ok(NpyHeader {
        dtype,
        fortran_order,
        shape,
        data_offset: start + header_len,
    })
}

/// A cursor over the header text.
struct Cursor<'a> {
    s: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn skip_ws(&mut self) {
        while self.s.get(self.at).is_some_and(|b| b.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.at).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!(
                "malformed .npy header: expected '{}' at byte {}",
                c as char, self.at
            ))
        }
    }

    /// A quoted string (`'…'` or `"…"`, no escapes: numpy writes none in these fields).
    fn string(&mut self) -> Result<&str, String> {
        let quote = match self.peek() {
            Some(q @ (b'\'' | b'"')) => q,
            _ => {
                return Err(format!(
                    "malformed .npy header: expected a string at byte {}",
                    self.at
                ));
            }
        };
        let start = self.at + 1;
        let len = self.s[start..]
            .iter()
            .position(|&b| b == quote)
            .ok_or("malformed .npy header: unterminated string")?;
        self.at = start + len + 1;
        std::str::from_utf8(&self.s[start..start + len]).map_err(|_| "malformed .npy header".into())
    }

    fn word(&mut self) -> &str {
        self.skip_ws();
        let start = self.at;
        while self
            .s
            .get(self.at)
            .is_some_and(|b| b.is_ascii_alphanumeric())
        {
            self.at += 1;
        }
        std::str::from_utf8(&self.s[start..self.at]).unwrap_or("")
    }
}

type Dict = (Dtype, bool, Vec<usize>);

fn parse_dict(text: &str) -> Result<Dict, String> {
    let mut c = Cursor {
        s: text.as_bytes(),
        at: 0,
    };
    c.expect(b'{')?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    while !c.eat(b'}') {
        let key = c.string()?.to_string();
        c.expect(b':')?;
        match key.as_str() {
            "descr" => {
                if c.peek() == Some(b'[') {
                    return Err("structured dtype (a list in 'descr') is not supported".into());
                }
                descr = Some(dtype(c.string()?)?);
            }
            "fortran_order" => {
                fortran = Some(match c.word() {
                    "True" => true,
                    "False" => false,
                    w => return Err(format!("malformed .npy header: fortran_order is {w:?}")),
                })
            }
            "shape" => {
                c.expect(b'(')?;
                let mut dims = Vec::new();
                while !c.eat(b')') {
                    let w = c.word();
                    let w = w.strip_suffix('L').unwrap_or(w);
                    let d: usize = w
                        .parse()
                        .map_err(|_| format!("malformed .npy header: shape entry {w:?}"))?;
                    dims.push(d);
                    if dims.len() > 32 {
                        return Err("malformed .npy header: more than 32 dimensions".into());
                    }
                    if !c.eat(b',') && c.peek() != Some(b')') {
                        return Err("malformed .npy header: expected ',' or ')' in shape".into());
                    }
                }
                shape = Some(dims);
            }
            other => return Err(format!("malformed .npy header: unknown key {other:?}")),
        }
        if !c.eat(b',') && c.peek() != Some(b'}') {
            return Err("malformed .npy header: expected ',' or '}'".into());
        }
    }
    match (descr, fortran, shape) {
        (Some(d), Some(f), Some(s)) => Ok((d, f, s)),
        _ => Err("malformed .npy header: it needs 'descr', 'fortran_order' and 'shape'".into()),
    }
}

/// A `descr` string such as `<f4`, `|u1`, `>i8`; object (`|O`), string (`<U5`, `|S3`) and
/// other kinds parse here and are refused by the caller, which knows what it wanted.
fn dtype(descr: &str) -> Result<Dtype, String> {
    let b = descr.as_bytes();
    let (order, rest) = match b.first() {
        Some(b'<') | Some(b'=') => (Order::Little, &descr[1..]),
        Some(b'>') => (Order::Big, &descr[1..]),
        Some(b'|') => (Order::NotApplicable, &descr[1..]),
        _ => (Order::NotApplicable, descr),
    };
    let mut chars = rest.chars();
    let kind = chars
        .next()
        .ok_or_else(|| format!("empty dtype {descr:?}"))?;
    let size: usize = match chars.as_str() {
        "" => 0,
        n => n.parse().unwrap_or(0),
    };
    Ok(Dtype {
        kind,
        size,
        order,
        descr: descr.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(version: u8, dict: &str) -> Vec<u8> {
        let mut v = MAGIC.to_vec();
        v.extend([version, 0]);
        if version == 1 {
            v.extend((dict.len() as u16).to_le_bytes());
        } else {
            v.extend((dict.len() as u32).to_le_bytes());
        }
        v.extend(dict.as_bytes());
        v
    }

    #[test]
    fn parses_what_numpy_writes() {
        let h = parse(&file(
            1,
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }          \n",
        ))
        .unwrap();
        assert_eq!(h.shape, [3, 4]);
        assert_eq!(
            (h.dtype.kind, h.dtype.size, h.dtype.is_little()),
            ('f', 4, true)
        );
        assert!(!h.fortran_order);
        let dict = "{\"descr\": \"|u1\", \"shape\": (5,), \"fortran_order\": True}";
        let h = parse(&file(3, dict)).unwrap();
        assert_eq!(
            (h.shape.as_slice(), h.fortran_order, h.data_offset),
            (&[5][..], true, 12 + dict.len())
        );
        let h = parse(&file(
            2,
            "{'descr': '>i8', 'fortran_order': False, 'shape': ()}",
        ))
        .unwrap();
        assert!(h.shape.is_empty() && h.dtype.order == Order::Big);
    }

    #[test]
    fn refuses_what_is_not_a_header() {
        for dict in [
            "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,)}",
            "{'descr': '<f4', 'shape': (3,)}",
            "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (3,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (-3,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'x': 1}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3,",
        ] {
            assert!(parse(&file(1, dict)).is_err(), "{dict}");
        }
        assert!(parse(b"\x93NUMPY\x01").is_err());
        assert!(parse(b"\x93NUMPY\x09\x00\x00\x00").is_err());
        let mut long = file(1, "{}");
        long[8..10].copy_from_slice(&1000u16.to_le_bytes());
        assert!(parse(&long).unwrap_err().contains("truncated"));
    }
}
