//! u8 pixels as the model reads them: `x = p / 255`, the tutorial's normalisation. The one
//! definition of that division; the fused kernels apply its inverse scale (`U8_SCALE` in
//! `kernels/fused/mod.rs`) to sums of raw pixels instead, which rounds differently and is
//! bounded against this one in the kernel tests.

/// Convert u8 pixels to `f32` as the tutorial does: `x as f32 / 255`.
// Public so that the binaries and benches divide as the library does; hidden, since a user
// converts through `Split::to_f32` or `Pixels::row_to_f32`.
#[doc(hidden)]
pub fn pixels_to_f32(pixels: &[u8], out: &mut [f32]) {
    for (o, &p) in out.iter_mut().zip(pixels) {
        *o = p as f32 / 255.0;
    }
}
