use mnist_logreg::kernels::simd::{Avx512, Simd};
use mnist_logreg::aligned::AlignedF32;
use std::hint::black_box;
#[inline(always)]
unsafe fn acc<S: Simd, const C: usize, const V: usize>(s: S, dw: *mut f32, xs: &[*const f32], g: *const f32, d: usize) {
    let mut j = 0;
    while j + V * S::LANES <= d {
        unsafe {
            let mut a = [[s.zero(); V]; C];
            for c in 0..C { for v in 0..V { a[c][v] = s.load(dw.add(c * d + j + v * S::LANES)); } }
            for (r, &x) in xs.iter().enumerate() {
                let xv: [S::V; V] = std::array::from_fn(|v| s.load(x.add(j + v * S::LANES)));
                for c in 0..C { let gc = s.splat(*g.add(c * 16 + r)); for v in 0..V { a[c][v] = s.mul_add(gc, xv[v], a[c][v]); } }
            }
            for c in 0..C { for v in 0..V { s.store(dw.add(c * d + j + v * S::LANES), a[c][v]); } }
        }
        j += V * S::LANES;
    }
}
#[target_feature(enable = "avx512f")]
fn run<const C: usize, const V: usize>(s: Avx512, x: &AlignedF32, dw: &mut AlignedF32, g: &[f32], d: usize, rows: usize, reps: usize) {
    let xs: Vec<*const f32> = (0..rows).map(|r| x[r * d..].as_ptr()).collect();
    for _ in 0..reps { unsafe { acc::<_, C, V>(s, black_box(dw.as_mut_ptr()), &xs, g.as_ptr(), d) }; }
}
fn main() {
    let s = Avx512::detect().unwrap();
    let d = 768;
    for rows in [16usize, 32] {
    let mut x = AlignedF32::zeros(rows * d); x.fill(0.5); let mut dw = AlignedF32::zeros(10 * d); let g = vec![1e-3f32; 16 * 16 * 2];
    let reps = 400_000 / rows;
    macro_rules! m { ($c:literal, $v:literal) => {{
        let t = std::time::Instant::now();
        unsafe { run::<$c, $v>(s, &x, &mut dw, &g, d, rows, reps) };
        let secs = t.elapsed().as_secs_f64();
        println!("rows={rows} C={} V={}: {:.1} GFLOP/s", $c, $v, (reps * d * $c * rows * 2) as f64 / secs / 1e9);
    }}}
    m!(10, 2); m!(5, 4); m!(5, 2); m!(10, 1); m!(5, 5);
    }
}
