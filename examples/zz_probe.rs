use mnist_logreg::kernels::simd::{Avx512, Simd};
use std::hint::black_box;
#[inline(always)]
unsafe fn dot<S: Simd, const C: usize, const R: usize>(s: S, x: [*const f32; R], w: [*const f32; C], d: usize) -> [[S::V; C]; R] {
    let mut acc = [[s.zero(); C]; R];
    let mut j = 0;
    while j < d {
        unsafe {
            let xs: [S::V; R] = std::array::from_fn(|r| s.load(x[r].add(j)));
            for c in 0..C {
                let wc = s.load(w[c].add(j));
                for r in 0..R { acc[r][c] = s.mul_add(xs[r], wc, acc[r][c]); }
            }
        }
        j += S::LANES;
    }
    acc
}
#[target_feature(enable = "avx512f")]
fn run<const C: usize, const R: usize>(s: Avx512, x: &[f32], w: &[f32], d: usize, reps: usize) -> f32 {
    let mut t = s.zero();
    for _ in 0..reps {
        let xs: [*const f32; R] = std::array::from_fn(|r| x[r * d..].as_ptr());
        let ws: [*const f32; C] = std::array::from_fn(|c| w[c * d..].as_ptr());
        let a = unsafe { dot::<_, C, R>(s, black_box(xs), black_box(ws), d) };
        for r in a { for v in r { t = s.add(t, v); } }
    }
    s.reduce_add(t)
}
fn main() {
    let s = Avx512::detect().unwrap();
    for d in [784usize, 160, 3200] {
        let mut x = mnist_logreg::aligned::AlignedF32::zeros(16 * d); x.fill(0.5); let mut w = mnist_logreg::aligned::AlignedF32::zeros(10 * d); w.fill(0.25);
        let reps = 20_000_000 / d;
        macro_rules! m { ($c:literal, $r:literal) => {{
            let t = std::time::Instant::now();
            black_box(unsafe { run::<$c, $r>(s, &x, &w, d, reps) });
            let secs = t.elapsed().as_secs_f64();
            println!("d={d} C={} R={}: {:.1} GFLOP/s", $c, $r, (reps * d * $c * $r * 2) as f64 / secs / 1e9);
        }}}
        m!(10, 2); m!(5, 4); m!(5, 5); m!(5, 6); m!(10, 3); m!(4, 6);
    }
}
