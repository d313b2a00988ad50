//! Pictures of a run, as SVG (plotters' SVG backend: text is emitted as `<text>`, so no fonts
//! are needed to write them).
//!
//! - [`curves`]: training loss and batch accuracy against the step;
//! - [`objective_curves`]: `--solver lbfgs`'s objective and largest gradient entry against the
//!   iteration;
//! - [`confusion_matrix`]: true class × predicted class counts on the test set;
//! - [`digit_grid`]: the first test images with their predicted and true labels, mistakes
//!   framed in red;
//! - [`weight_maps`]: each class's weights as a 28×28 heat map.

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::classes::ClassNames;
use mnist_logreg::model::Model;
use mnist_logreg::train::Report;

/// A plot that could not be written.
#[derive(Debug, thiserror::Error)]
#[error("{path}: cannot write the plot: {reason}")]
pub struct PlotError {
    /// The file.
    pub path: PathBuf,
    /// What failed.
    pub reason: String,
}

type Drawn = Result<(), Box<dyn std::error::Error>>;

fn finish(path: &Path, drawn: Drawn) -> Result<(), PlotError> {
    drawn.map_err(|e| PlotError {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

const FONT: &str = "sans-serif";
const RED: RGBColor = RGBColor(200, 30, 40);

fn text_style(size: u32, color: RGBColor, h: HPos) -> TextStyle<'static> {
    (FONT, size)
        .into_font()
        .color(&color)
        .pos(Pos::new(h, VPos::Center))
}

/// Loss (sum over the batch, as reported) and batch accuracy against the step, side by side.
pub fn curves(path: &Path, reports: &[Report]) -> Result<(), PlotError> {
    finish(path, draw_curves(path, reports))
}

fn draw_curves(path: &Path, reports: &[Report]) -> Drawn {
    let root = SVGBackend::new(path, (1000, 400)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(500);
    let last = reports.last().map_or(1, |r| r.step).max(1) as f32;
    let loss: Vec<(f32, f32)> = reports
        .iter()
        .filter(|r| r.loss.is_finite())
        .map(|r| (r.step as f32, r.loss))
        .collect();
    let top = loss.iter().map(|p| p.1).fold(0.0f32, f32::max).max(1e-3) * 1.05;
    let mut chart = ChartBuilder::on(&left)
        .caption("training loss (sum over the batch)", (FONT, 18))
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f32..last, 0f32..top)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .x_label_formatter(&|step| format!("{step:.0}"))
        .y_desc("loss")
        .draw()?;
    chart.draw_series(LineSeries::new(loss, BLUE.stroke_width(2)))?;

    let accuracy: Vec<(f32, f32)> = reports
        .iter()
        .map(|r| (r.step as f32, r.accuracy))
        .collect();
    let mut chart = ChartBuilder::on(&right)
        .caption("batch accuracy", (FONT, 18))
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f32..last, 0f32..1f32)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .x_label_formatter(&|step| format!("{step:.0}"))
        .y_desc("accuracy")
        .draw()?;
    chart.draw_series(LineSeries::new(accuracy, RED.stroke_width(2)))?;
    root.present()?;
    Ok(())
}

/// `--solver lbfgs`: the objective and log₁₀ of the largest gradient entry against the
/// iteration, side by side, from `(iteration, objective, grad_max)` points.
pub fn objective_curves(path: &Path, points: &[(usize, f64, f64)]) -> Result<(), PlotError> {
    finish(path, draw_objective(path, points))
}

fn draw_objective(path: &Path, points: &[(usize, f64, f64)]) -> Drawn {
    let root = SVGBackend::new(path, (1000, 400)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(500);
    let first = points.first().map_or(0, |p| p.0.saturating_sub(1)) as f64;
    let last = points.last().map_or(1, |p| p.0) as f64;
    let last = last.max(first + 1.0);
    let objective: Vec<(f64, f64)> = points
        .iter()
        .filter(|p| p.1.is_finite())
        .map(|p| (p.0 as f64, p.1))
        .collect();
    let (lo, hi) = objective
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.1), hi.max(p.1))
        });
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let pad = ((hi - lo) * 0.05).max(1e-9);
    let mut chart = ChartBuilder::on(&left)
        .caption("objective (cross-entropy + L2)", (FONT, 18))
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(first..last, (lo - pad)..(hi + pad))?;
    chart
        .configure_mesh()
        .x_desc("iteration")
        .x_label_formatter(&|i| format!("{i:.0}"))
        .y_desc("objective")
        .y_label_formatter(&|v| format!("{v:.4}"))
        .draw()?;
    chart.draw_series(LineSeries::new(objective, BLUE.stroke_width(2)))?;

    let grad: Vec<(f64, f64)> = points
        .iter()
        .filter(|p| p.2.is_finite() && p.2 > 0.0)
        .map(|p| (p.0 as f64, p.2.log10()))
        .collect();
    let (glo, ghi) = grad
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.1), hi.max(p.1))
        });
    let (glo, ghi) = if glo.is_finite() {
        (glo.floor(), ghi.ceil().max(glo.floor() + 1.0))
    } else {
        (-6.0, 0.0)
    };
    let mut chart = ChartBuilder::on(&right)
        .caption("largest gradient entry (log10)", (FONT, 18))
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(first..last, glo..ghi)?;
    chart
        .configure_mesh()
        .x_desc("iteration")
        .x_label_formatter(&|i| format!("{i:.0}"))
        .y_desc("log10 |grad|max")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()?;
    chart.draw_series(LineSeries::new(grad, RED.stroke_width(2)))?;
    root.present()?;
    Ok(())
}

/// `counts[t][p]`: test samples of true class `t` predicted as `p` (what
/// [`confusion_matrix`] draws).
pub fn confusion(predictions: &[u32], labels: &[u32], classes: usize) -> Vec<Vec<usize>> {
    let mut counts = vec![vec![0; classes]; classes];
    for (&p, &t) in predictions.iter().zip(labels) {
        counts[t as usize][p as usize] += 1;
    }
    counts
}

/// The confusion matrix: rows are true classes, columns predictions; each cell shows its count
/// and is shaded by the fraction of its row.
pub fn confusion_matrix(
    path: &Path,
    counts: &[Vec<usize>],
    names: &ClassNames,
) -> Result<(), PlotError> {
    finish(path, draw_confusion(path, counts, names))
}

fn draw_confusion(path: &Path, counts: &[Vec<usize>], names: &ClassNames) -> Drawn {
    let k = counts.len() as i32;
    let (cell, x0, y0) = (60, 130, 90);
    let size = ((x0 + k * cell + 30) as u32, (y0 + k * cell + 30) as u32);
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE)?;
    let total: usize = counts.iter().flatten().sum();
    let correct: usize = (0..counts.len()).map(|c| counts[c][c]).sum();
    root.draw(&Text::new(
        format!(
            "confusion matrix: {correct} of {total} correct ({:.2} %)",
            100.0 * correct as f64 / total.max(1) as f64
        ),
        (x0, 20),
        text_style(18, BLACK, HPos::Left),
    ))?;
    root.draw(&Text::new(
        "predicted →",
        (x0 + k * cell / 2, 46),
        text_style(14, BLACK, HPos::Center),
    ))?;
    root.draw(&Text::new(
        "true ↓",
        (x0 - 8, y0 - 14),
        text_style(14, BLACK, HPos::Right),
    ))?;
    for (t, row) in counts.iter().enumerate() {
        let row_total = row.iter().sum::<usize>().max(1) as f64;
        let y = y0 + t as i32 * cell;
        root.draw(&Text::new(
            names.name(t).to_string(),
            (x0 - 8, y + cell / 2),
            text_style(13, BLACK, HPos::Right),
        ))?;
        for (p, &n) in row.iter().enumerate() {
            let x = x0 + p as i32 * cell;
            if t == 0 {
                root.draw(&Text::new(
                    names.name(p).to_string(),
                    (x + cell / 2, y0 - 14),
                    text_style(12, BLACK, HPos::Center),
                ))?;
            }
            let f = n as f64 / row_total;
            let shade = if p == t {
                lerp(WHITE, RGBColor(33, 102, 172), f)
            } else {
                lerp(WHITE, RED, (4.0 * f).min(1.0))
            };
            root.draw(&Rectangle::new(
                [(x, y), (x + cell, y + cell)],
                shade.filled(),
            ))?;
            root.draw(&Rectangle::new(
                [(x, y), (x + cell, y + cell)],
                RGBColor(200, 200, 200).stroke_width(1),
            ))?;
            let ink = if f > 0.5 { WHITE } else { BLACK };
            root.draw(&Text::new(
                n.to_string(),
                (x + cell / 2, y + cell / 2),
                text_style(14, ink, HPos::Center),
            ))?;
        }
    }
    root.present()?;
    Ok(())
}

fn lerp(a: RGBColor, b: RGBColor, t: f64) -> RGBColor {
    let t = t.clamp(0.0, 1.0);
    let mix = |x: u8, y: u8| (x as f64 + (y as f64 - x as f64) * t).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Draw a `side × side` u8 image at `(x, y)`, `scale` SVG pixels per image pixel: one black
/// square, then only the non-black pixels (most of a digit is background).
fn draw_image<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    pixels: &[u8],
    side: usize,
    (x, y): (i32, i32),
    scale: i32,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let extent = side as i32 * scale;
    area.draw(&Rectangle::new(
        [(x, y), (x + extent, y + extent)],
        BLACK.filled(),
    ))?;
    for (i, &p) in pixels.iter().enumerate() {
        if p == 0 {
            continue;
        }
        let (r, c) = ((i / side) as i32, (i % side) as i32);
        let (px, py) = (x + c * scale, y + r * scale);
        area.draw(&Rectangle::new(
            [(px, py), (px + scale, py + scale)],
            RGBColor(p, p, p).filled(),
        ))?;
    }
    Ok(())
}

/// One image of [`digit_grid`].
#[derive(Clone, Copy, Debug)]
pub struct GridItem<'a> {
    /// `side × side` pixels.
    pub pixels: &'a [u8],
    /// The model's prediction.
    pub predicted: u32,
    /// The true label.
    pub truth: u32,
}

/// A grid of images, ten per row, each with its predicted label underneath; misclassified
/// images are framed in red and also show the true label.
pub fn digit_grid(
    path: &Path,
    items: &[GridItem],
    side: usize,
    names: &ClassNames,
) -> Result<(), PlotError> {
    finish(path, draw_grid(path, items, side, names))
}

fn draw_grid(path: &Path, items: &[GridItem], side: usize, names: &ClassNames) -> Drawn {
    let per_row = 10;
    let scale = 3;
    let img = side as i32 * scale;
    let (cell_w, cell_h, top) = (img + 30, img + 44, 40);
    let rows = items.len().div_ceil(per_row).max(1) as i32;
    let size = (
        (per_row as i32 * cell_w + 20) as u32,
        (top + rows * cell_h + 10) as u32,
    );
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE)?;
    let wrong = items.iter().filter(|i| i.predicted != i.truth).count();
    root.draw(&Text::new(
        format!(
            "first {} test images: predicted label below, {} mistakes framed in red (with the true label)",
            items.len(),
            wrong
        ),
        (10, 20),
        text_style(16, BLACK, HPos::Left),
    ))?;
    for (i, item) in items.iter().enumerate() {
        let x = 10 + (i % per_row) as i32 * cell_w + 15;
        let y = top + (i / per_row) as i32 * cell_h;
        draw_image(&root, item.pixels, side, (x, y), scale)?;
        let centre = x + img / 2;
        let predicted = names.name(item.predicted as usize).to_string();
        if item.predicted == item.truth {
            root.draw(&Text::new(
                predicted,
                (centre, y + img + 12),
                text_style(14, BLACK, HPos::Center),
            ))?;
        } else {
            root.draw(&Rectangle::new(
                [(x - 3, y - 3), (x + img + 3, y + img + 3)],
                RED.stroke_width(3),
            ))?;
            root.draw(&Text::new(
                predicted,
                (centre, y + img + 12),
                text_style(14, RED, HPos::Center),
            ))?;
            root.draw(&Text::new(
                format!("true: {}", names.name(item.truth as usize)),
                (centre, y + img + 28),
                text_style(12, RED, HPos::Center),
            ))?;
        }
    }
    root.present()?;
    Ok(())
}

/// The weights of every class as a `rows × cols` heat map: red where a bright pixel is evidence
/// for the class, blue where it is evidence against. Shown relative to each pixel's mean over
/// the classes (softmax ignores that mean; with the tutorial's init it is exactly `W − 1`), on
/// one colour scale shared by all classes.
pub fn weight_maps(
    path: &Path,
    model: &Model,
    (rows, cols): (usize, usize),
    names: &ClassNames,
) -> Result<(), PlotError> {
    finish(path, draw_weights(path, model, (rows, cols), names))
}

/// The 99th percentile of `|v|` over the finite values: the colour scale of the weight maps
/// (a few extreme weights would otherwise wash the pictures out; beyond it colours saturate).
pub(crate) fn robust_scale(values: &[f32]) -> f32 {
    let mut abs: Vec<f32> = values
        .iter()
        .filter(|v| v.is_finite())
        .map(|v| v.abs())
        .collect();
    if abs.is_empty() {
        return 1.0;
    }
    let k = (abs.len() * 99 / 100).min(abs.len() - 1);
    let (_, kth, _) = abs.select_nth_unstable_by(k, f32::total_cmp);
    kth.max(1e-12)
}

/// Each class's weights minus the per-feature mean over classes, class-major.
pub(crate) fn centred_weights(model: &Model) -> Vec<f32> {
    let (d, k) = (model.features(), model.classes());
    let mut out = model.w().to_vec();
    for j in 0..d {
        let mean = (0..k).map(|c| model.w()[c * d + j] as f64).sum::<f64>() / k as f64;
        for c in 0..k {
            out[c * d + j] = (model.w()[c * d + j] as f64 - mean) as f32;
        }
    }
    out
}

fn draw_weights(
    path: &Path,
    model: &Model,
    (rows, cols): (usize, usize),
    names: &ClassNames,
) -> Drawn {
    let (d, k) = (model.features(), model.classes());
    let centred = centred_weights(model);
    let scale_max = robust_scale(&centred);
    let per_row = 5;
    let px = 6;
    let (pw, ph) = (cols as i32 * px, rows as i32 * px);
    let (cell_w, cell_h, top) = (pw + 24, ph + 34, 44);
    let grid_rows = k.div_ceil(per_row) as i32;
    let size = (
        (per_row as i32 * cell_w + 20) as u32,
        (top + grid_rows * cell_h + 10) as u32,
    );
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE)?;
    root.draw(&Text::new(
        format!(
            "weights per class (minus the mean over classes): red = for, blue = against; colour scale ±{scale_max:.3} (99th percentile of |w|)"
        ),
        (10, 20),
        text_style(15, BLACK, HPos::Left),
    ))?;
    for c in 0..k {
        let x = 10 + (c % per_row) as i32 * cell_w + 12;
        let y = top + (c / per_row) as i32 * cell_h;
        root.draw(&Text::new(
            names.label(c),
            (x + pw / 2, y + 8),
            text_style(14, BLACK, HPos::Center),
        ))?;
        let y = y + 18;
        for (j, &v) in centred[c * d..(c + 1) * d].iter().enumerate() {
            let (r, col) = ((j / cols) as i32, (j % cols) as i32);
            let t = (v / scale_max).clamp(-1.0, 1.0) as f64;
            let color = if !v.is_finite() {
                RGBColor(0, 0, 0)
            } else if t >= 0.0 {
                lerp(WHITE, RGBColor(178, 24, 43), t)
            } else {
                lerp(WHITE, RGBColor(33, 102, 172), -t)
            };
            let (qx, qy) = (x + col * px, y + r * px);
            root.draw(&Rectangle::new(
                [(qx, qy), (qx + px, qy + px)],
                color.filled(),
            ))?;
        }
        root.draw(&Rectangle::new(
            [(x - 1, y - 1), (x + pw + 1, y + ph + 1)],
            RGBColor(160, 160, 160).stroke_width(1),
        ))?;
    }
    root.present()?;
    Ok(())
}

/// The pictures of a run in `dir`: `curves.svg` (when there are reports), `confusion.svg`,
/// `test-grid.svg` (the first `grid` test images; none when `grid` is 0) and `weights.svg`.
pub fn run_pictures(
    dir: &Path,
    reports: &[Report],
    test: &mnist_logreg::dataset::Split,
    predictions: &[u32],
    model: &Model,
    names: &ClassNames,
    grid: usize,
) -> Result<(), PlotError> {
    if !reports.is_empty() {
        curves(&dir.join("curves.svg"), reports)?;
    }
    let counts = confusion(predictions, test.labels(), model.classes());
    confusion_matrix(&dir.join("confusion.svg"), &counts, names)?;
    let items: Vec<GridItem> = (0..test.len().min(grid))
        .map(|i| GridItem {
            pixels: test.image(i),
            predicted: predictions[i],
            truth: test.labels()[i],
        })
        .collect();
    let side = crate::preprocess::SIDE;
    if !items.is_empty() {
        digit_grid(&dir.join("test-grid.svg"), &items, side, names)?;
    }
    weight_maps(&dir.join("weights.svg"), model, (side, side), names)
}
