//! A line search for the strong Wolfe conditions (Nocedal & Wright, *Numerical Optimization*,
//! 2nd ed., algorithms 3.5 and 3.6: bracketing, then "zoom" with safeguarded cubic
//! interpolation).
//!
//! `φ(α) = f(x + α·d)`, `φ'(α) = ∇f(x + α·d)·d`; a step `α` is accepted when
//! `φ(α) ≤ φ(0) + c1·α·φ'(0)` (sufficient decrease) and `|φ'(α)| ≤ c2·|φ'(0)|` (curvature).
//!
//! ## Near the precision of `φ`
//! The solver's `f` comes from `f32` logits: it is exact to about 1e-8 (relative) only,
//! while its gradient, and so `φ'`, stays accurate far below that. Close to the optimum the
//! decrease of a good step drowns in that noise and the sufficient-decrease test fails at
//! random. As Hager & Zhang's *approximate Wolfe* conditions (CG_DESCENT, 2005), a step whose
//! slope passes the curvature test is then also accepted when `φ(α) ≤ φ(0) + ε·|φ(0)|`
//! ([`Wolfe::value_noise`] = ε): on a function that is close to quadratic along `d`, such a
//! slope implies a decrease.

/// The value and slope of `φ` at one step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// The step `α`.
    pub step: f64,
    /// `φ(α)`.
    pub value: f64,
    /// `φ'(α)`.
    pub slope: f64,
}

/// The constants of the search.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Wolfe {
    /// Sufficient decrease (Armijo) constant, `0 < c1 < c2`.
    pub c1: f64,
    /// Curvature constant, `c1 < c2 < 1` (0.9 for quasi-Newton methods).
    pub c2: f64,
    /// Evaluations of `φ` at most per search.
    pub max_evaluations: usize,
    /// Largest step tried.
    pub max_step: f64,
    /// The relative precision ε of `φ` (see the module docs); 0 for the exact Wolfe test.
    pub value_noise: f64,
}

impl Default for Wolfe {
    /// `c1 = 1e-4`, `c2 = 0.9`, 20 evaluations, steps up to `1e10`, `value_noise = 1e-7`.
    fn default() -> Self {
        Self {
            c1: 1e-4,
            c2: 0.9,
            max_evaluations: 20,
            max_step: 1e10,
            value_noise: 1e-7,
        }
    }
}

/// Why a search ended without a Wolfe step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SearchFailure {
    /// `φ'(0) ≥ 0`: `d` is not a descent direction.
    NotDescent,
    /// The evaluations ran out (or the bracket shrank below rounding); `best` is the lowest
    /// point seen that decreased `φ`, if any.
    Exhausted {
        /// The lowest point with `φ(α) < φ(0)`, if there was one.
        best: Option<Point>,
    },
}

/// The minimiser of the cubic through `a` and `b` (values and slopes), or `None` when it
/// has none.
fn cubic_min(a: Point, b: Point) -> Option<f64> {
    let d1 = a.slope + b.slope - 3.0 * (a.value - b.value) / (a.step - b.step);
    let disc = d1 * d1 - a.slope * b.slope;
    if disc < 0.0 {
        return None;
    }
    let d2 = disc.sqrt().copysign(b.step - a.step);
    let t = b.step - (b.step - a.step) * (b.slope + d2 - d1) / (b.slope - a.slope + 2.0 * d2);
    t.is_finite().then_some(t)
}

/// A trial step inside the interval between `lo` and `hi`: the cubic's minimiser, kept at
/// least 10 % of the interval away from either end (else the bisection).
fn interpolate(lo: Point, hi: Point) -> f64 {
    let (a, b) = (lo.step.min(hi.step), lo.step.max(hi.step));
    let margin = 0.1 * (b - a);
    match cubic_min(lo, hi) {
        Some(t) if t > a + margin && t < b - margin => t,
        _ => 0.5 * (a + b),
    }
}

/// Search along `φ` from `zero` (`φ(0)`, `φ'(0)`) starting with step `first`; `phi(α)` returns
/// `(φ(α), φ'(α))`. Returns the accepted point (the caller's state is at that point when
/// `phi` was last called with it: the search's last evaluation is always the accepted one).
pub fn search(
    zero: Point,
    first: f64,
    wolfe: &Wolfe,
    mut phi: impl FnMut(f64) -> (f64, f64),
) -> Result<Point, SearchFailure> {
    if zero.slope >= 0.0 || !zero.slope.is_finite() {
        return Err(SearchFailure::NotDescent);
    }
    let mut eval = |step: f64| {
        let (value, slope) = phi(step);
        Point { step, value, slope }
    };
    let armijo = |p: &Point| p.value <= zero.value + wolfe.c1 * p.step * zero.slope;
    let curvature = |p: &Point| p.slope.abs() <= -wolfe.c2 * zero.slope;
    let noise = wolfe.value_noise * zero.value.abs();
    // A Wolfe step, exact or approximate (see the module docs).
    let accept = |p: &Point| {
        p.value.is_finite() && curvature(p) && (armijo(p) || p.value <= zero.value + noise)
    };
    let mut best: Option<Point> = None;
    let mut note = |p: Point| {
        if p.value < zero.value && best.is_none_or(|b: Point| p.value < b.value) {
            best = Some(p);
        }
    };
    let mut prev = zero;
    let mut step = first.min(wolfe.max_step);
    let mut used = 0;
    // Bracketing: grow the step until the interval (prev, p) holds a Wolfe point.
    let (mut lo, mut hi) = loop {
        let p = eval(step);
        used += 1;
        note(p);
        if accept(&p) {
            return Ok(p);
        }
        if !p.value.is_finite() {
            // Too far (overflow): shrink towards the last good point.
            if used >= wolfe.max_evaluations {
                return Err(SearchFailure::Exhausted { best });
            }
            step = prev.step + 0.1 * (step - prev.step);
            continue;
        }
        if !armijo(&p) || (used > 1 && p.value >= prev.value) {
            break (prev, p);
        }
        if p.slope >= 0.0 {
            break (p, prev);
        }
        if used >= wolfe.max_evaluations || step >= wolfe.max_step {
            return Err(SearchFailure::Exhausted { best });
        }
        prev = p;
        step = (4.0 * step).min(wolfe.max_step);
    };
    // Zoom: `lo` satisfies the decrease condition and is the lowest so far; the interval
    // between `lo` and `hi` holds a Wolfe point.
    while used < wolfe.max_evaluations {
        if (hi.step - lo.step).abs() <= 1e-16 * lo.step.abs().max(hi.step.abs()) {
            break;
        }
        let p = eval(interpolate(lo, hi));
        used += 1;
        note(p);
        if accept(&p) {
            return Ok(p);
        }
        if !p.value.is_finite() || !armijo(&p) || p.value >= lo.value {
            hi = p;
        } else {
            if p.slope * (hi.step - lo.step) >= 0.0 {
                hi = lo;
            }
            lo = p;
        }
    }
    Err(SearchFailure::Exhausted { best })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(f: impl Fn(f64) -> (f64, f64)) -> Point {
        let (value, slope) = f(0.0);
        Point {
            step: 0.0,
            value,
            slope,
        }
    }

    #[test]
    fn finds_wolfe_steps_on_a_quadratic_and_a_quartic() {
        let w = Wolfe::default();
        for f in [
            (|a: f64| ((a - 3.0).powi(2), 2.0 * (a - 3.0))) as fn(f64) -> (f64, f64),
            |a: f64| ((a - 0.01).powi(4) - a, 4.0 * (a - 0.01).powi(3) - 1.0),
        ] {
            for first in [1e-3, 1.0, 1e3] {
                let zero = point(f);
                let p = search(zero, first, &w, f).unwrap();
                assert!(p.value <= zero.value + w.c1 * p.step * zero.slope);
                assert!(p.slope.abs() <= -w.c2 * zero.slope, "{p:?} from {first}");
            }
        }
    }

    #[test]
    fn refuses_an_ascent_direction() {
        let f = |a: f64| (a, 1.0);
        assert_eq!(
            search(point(f), 1.0, &Wolfe::default(), f),
            Err(SearchFailure::NotDescent)
        );
    }

    #[test]
    fn backs_off_from_overflow() {
        // exp grows past f64 beyond a ≈ 709.
        let f = |a: f64| ((a - 1000.0).exp() - a, (a - 1000.0).exp() - 1.0);
        let p = search(point(f), 1e4, &Wolfe::default(), f).unwrap();
        assert!((p.step - 1000.0).abs() < 1.0, "{p:?}");
    }
}
