//! SHA-256 of data files, the one way both the loader (`dataset`) and the downloader
//! (`fetch`) compute it: over the **decompressed** IDX bytes, with the same gzip decoder
//! ([`idx::gunzip`](crate::data::idx::gunzip), multi-member like `gzip -d`), so a file that
//! `fetch` accepts is one the loader verifies, and the other way round.
//!
//! The hash is `hmac-sha256`'s: one crate without dependencies, where `sha2` brought eight
//! (digest, typenum, …) into every dependent's build. It has no SHA-NI path, which costs once:
//! the four MNIST files are hashed when first seen and the result is recorded.

use std::io::{self, Read};

use hmac_sha256::Hash;

/// Hex SHA-256 of `bytes`.
// Public for the benches and the `fetch` tests only (hidden, like its re-export in `dataset`).
#[doc(hidden)]
pub fn sha256_hex(bytes: &[u8]) -> String {
    to_hex(&Hash::hash(bytes))
}

/// Lower-case hex of a digest.
pub(crate) fn to_hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex SHA-256 of what the gzip stream `compressed` inflates to, and that length; stops after
/// `limit + 1` bytes (a length above `limit` means the stream inflates to more than that).
#[cfg_attr(not(feature = "fetch"), allow(dead_code))]
pub(crate) fn gunzipped_sha256(compressed: impl Read, limit: u64) -> io::Result<(String, u64)> {
    let mut decoder = crate::data::idx::gunzip(compressed).take(limit.saturating_add(1));
    let mut hasher = Hash::new();
    let mut buf = vec![0u8; 256 << 10];
    let mut total = 0u64;
    loop {
        match decoder.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                total += n as u64;
                hasher.update(&buf[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((to_hex(&hasher.finalize()), total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn hashes_what_the_stream_inflates_to_across_gzip_members() {
        let gz = |part: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(part).unwrap();
            e.finish().unwrap()
        };
        // Two members, as `cat a.gz b.gz` makes: `gzip -d` (and the loader) reads both.
        let mut two = gz(b"hello, ");
        two.extend(gz(b"world"));
        let (hash, len) = gunzipped_sha256(&two[..], 100).unwrap();
        assert_eq!((hash, len), (sha256_hex(b"hello, world"), 12));
        // The limit: one byte past it is read, no more.
        assert_eq!(gunzipped_sha256(&two[..], 5).unwrap().1, 6);
        assert!(gunzipped_sha256(&b"not gzip"[..], 100).is_err());
    }
}
