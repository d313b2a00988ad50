//! A 64-byte aligned, zero-padded `f32` buffer: SIMD loads never straddle a cache line at the
//! start of the buffer. (The padding is zeroed but not exposed: `as_slice` ends at `len`, and the
//! kernels finish each row with a scalar tail.)

use bytemuck::{Pod, Zeroable};

/// One cache line of `f32`s; the allocation unit of [`AlignedF32`].
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C, align(64))]
struct Line([f32; 16]);

/// A heap buffer of `len` `f32`s, 64-byte aligned, zero-padded up to a multiple of 16.
#[derive(Clone, Default)]
pub struct AlignedF32 {
    lines: Vec<Line>,
    len: usize,
}

impl AlignedF32 {
    /// A buffer of `len` zeros.
    pub fn zeros(len: usize) -> Self {
        Self {
            lines: vec![Line([0.0; 16]); len.div_ceil(16)],
            len,
        }
    }

    /// A buffer holding a copy of `values`.
    pub fn from_slice(values: &[f32]) -> Self {
        let mut buf = Self::zeros(values.len());
        buf.as_mut_slice().copy_from_slice(values);
        buf
    }

    /// Number of `f32`s (without the padding).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the buffer holds no values.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The values as a slice.
    pub fn as_slice(&self) -> &[f32] {
        &bytemuck::cast_slice::<Line, f32>(&self.lines)[..self.len]
    }

    /// The values as a mutable slice.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut bytemuck::cast_slice_mut::<Line, f32>(&mut self.lines)[..self.len]
    }
}

impl std::ops::Deref for AlignedF32 {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        self.as_slice()
    }
}

impl std::ops::DerefMut for AlignedF32 {
    fn deref_mut(&mut self) -> &mut [f32] {
        self.as_mut_slice()
    }
}

impl std::fmt::Debug for AlignedF32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlignedF32")
            .field("len", &self.len)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_and_padded() {
        let buf = AlignedF32::from_slice(&[1.0, 2.0, 3.0]);
        assert_eq!(buf.as_ptr() as usize % 64, 0);
        assert_eq!(&buf[..], &[1.0, 2.0, 3.0]);
        assert_eq!(buf.lines.len(), 1);
        assert!(AlignedF32::zeros(0).is_empty());
    }
}
