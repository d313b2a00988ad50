//! Terminal rendering of images: two pixel rows per text line (terminal cells are about twice
//! as tall as wide), five shades from blank to full block.

const SHADES: [char; 5] = [' ', '░', '▒', '▓', '█'];

/// Render a `rows × cols` u8 image as text lines; each character covers two vertically
/// adjacent pixels, shaded by their mean.
pub fn image_to_text(pixels: &[u8], rows: usize, cols: usize) -> String {
    let mut out = String::new();
    for r in (0..rows).step_by(2) {
        for c in 0..cols {
            let top = pixels[r * cols + c] as usize;
            let bottom = if r + 1 < rows {
                pixels[(r + 1) * cols + c] as usize
            } else {
                0
            };
            let mean = (top + bottom) / 2;
            out.push(SHADES[(mean * SHADES.len() / 256).min(SHADES.len() - 1)]);
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shades_follow_intensity() {
        // 2×3 image: black, mid grey, white columns.
        let img = [0, 128, 255, 0, 128, 255];
        assert_eq!(image_to_text(&img, 2, 3), " ▒█\n");
        // Odd row count: the last line pairs with black.
        assert_eq!(image_to_text(&[255], 1, 1), "▒\n");
    }
}
