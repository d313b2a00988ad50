//! Kernels: one batch of rows in, loss / accuracy / clipped-row count and gradients out.
//!
//! Every variant implements [`Kernel`], so tests, benches and the CLI iterate over all of them:
//!
//! | variant | file | what it is |
//! | --- | --- | --- |
//! | `reference` | [`mod@reference`] | plain scalar loops: the definition of correct (plus an f64 twin) |
//! | `gemm` | `gemm.rs` | unfused baseline: logits and `dW` with `matrixmultiply::sgemm` |
//! | `fused` | `fused/` | explicit SIMD, forward + softmax + backward per block of rows |
//! | `parallel` | `parallel.rs` | `fused` on the caller + helper threads, fixed-size chunks, fixed-order reduction |
//!
//! Only [`KernelKind::build`] (and `build_on`, `build_with`) makes them: the fast kernel types
//! are internal, and [`mod@reference`] is public as the definition the others are tested against. The design notes of each (layout, register tiles, prefetch, the
//! measurements behind them) are the module docs of its file in the repository, next to the
//! code they explain.
//!
//! The `_u8` variants are the same kernels fed with the u8 pixels of the mapped file
//! (each row converted to `f32` once per call, the 1/255 folded into the logits and the
//! gradient) instead of the `f32` buffer. The fused kernels run on the instruction set chosen at run
//! time ([`Isa`]): AVX-512F, AVX2+FMA or SSE2 on x86-64, NEON on aarch64, or scalar. Code of
//! your own runs on it the same way: a [`WithSimd`] computation, generic over the sealed
//! [`Simd`] trait, passed to [`Isa::run`] (why run-time dispatch, why tokens, why not `pulp` or
//! `std::simd`: the module docs of `simd/mod.rs`).

pub(crate) mod fused;
pub(crate) mod gemm;
pub(crate) mod parallel;
// Public for the integration tests (the f64 twin is their ground truth) and hidden from the
// docs: a user builds the reference through `KernelKind::Reference`.
#[doc(hidden)]
pub mod reference;
pub(crate) mod share;
pub(crate) mod simd;
pub(crate) mod softmax;

pub use simd::{Isa, Simd, SimdChoice, SimdError, WithSimd};
pub use softmax::ClipGradient;

use crate::compute::model::{Grads, Model};

/// Pixels of a whole dataset split, sample-major, `features` values per sample.
#[derive(Clone, Copy, Debug)]
pub enum Pixels<'a> {
    /// Normalised `f32` values in [0, 1].
    F32(&'a [f32]),
    /// Raw u8 pixels (0..=255), read as `p / 255`.
    U8(&'a [u8]),
}

impl Pixels<'_> {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Pixels::F32(x) => x.len(),
            Pixels::U8(x) => x.len(),
        }
    }

    /// True when there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copy sample `row` into `out` as `f32` (u8 pixels divided by 255, as the tutorial).
    pub fn row_to_f32(&self, row: usize, out: &mut [f32]) {
        let d = out.len();
        match self {
            Pixels::F32(x) => out.copy_from_slice(&x[row * d..(row + 1) * d]),
            Pixels::U8(x) => crate::data::pixels::pixels_to_f32(&x[row * d..(row + 1) * d], out),
        }
    }
}

/// Faults of a batch description.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum BatchError {
    /// Pixel count is not `labels × features` (or `features` is 0).
    #[error(
        "{samples} labels and {pixels} pixel values do not agree: {samples} samples of {features} features need {} values",
        samples.saturating_mul(*features)
    )]
    Shape {
        /// Pixel values given.
        pixels: usize,
        /// Labels given.
        samples: usize,
        /// Features per sample.
        features: usize,
    },
    /// A row index past the last sample.
    #[error("row index {row} is out of range for {samples} samples")]
    Row {
        /// The index.
        row: usize,
        /// Number of samples.
        samples: usize,
    },
    /// A label that is not a class of the model.
    #[error("label {label} of sample {row} is not below the class count {classes}")]
    Label {
        /// The sample.
        row: usize,
        /// Its label.
        label: u32,
        /// Number of classes.
        classes: usize,
    },
}

/// A batch: which `rows` of a split to use, read in place.
///
/// Built only by [`Batch::new`], which checks every row index and label, so a kernel may rely
/// on them. It can carry a hint, [`Batch::with_next`]: the rows of the *next* batch, which
/// the fused kernels ask the CPU to fetch while this batch computes.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    pixels: Pixels<'a>,
    features: usize,
    labels: &'a [u32],
    rows: &'a [usize],
    next: &'a [usize],
    /// One past the largest label among `rows` (0 for an empty batch): a kernel compares it
    /// with the model's class count.
    label_end: usize,
}

impl<'a> Batch<'a> {
    /// A validated batch: shapes agree, every row index is in range, and every label of the
    /// batch is below `classes`.
    ///
    /// ```
    /// use mnist_logreg::kernels::{Batch, BatchError, Pixels};
    ///
    /// let pixels = [0u8, 255, 255, 0, 128, 128]; // three samples of two pixels
    /// let labels = [0u32, 1, 1];
    /// let batch = Batch::new(Pixels::U8(&pixels), 2, &labels, &[2, 0], 2)?;
    /// assert_eq!((batch.len(), batch.label(0)), (2, 1));
    /// let past_the_end = Batch::new(Pixels::U8(&pixels), 2, &labels, &[3], 2);
    /// assert_eq!(past_the_end.unwrap_err(), BatchError::Row { row: 3, samples: 3 });
    /// # Ok::<(), BatchError>(())
    /// ```
    pub fn new(
        pixels: Pixels<'a>,
        features: usize,
        labels: &'a [u32],
        rows: &'a [usize],
        classes: usize,
    ) -> Result<Self, BatchError> {
        if features == 0 || pixels.len() != labels.len() * features {
            return Err(BatchError::Shape {
                pixels: pixels.len(),
                samples: labels.len(),
                features,
            });
        }
        let mut label_end = 0;
        for &row in rows {
            let label = *labels.get(row).ok_or(BatchError::Row {
                row,
                samples: labels.len(),
            })?;
            if label as usize >= classes {
                return Err(BatchError::Label {
                    row,
                    label,
                    classes,
                });
            }
            label_end = label_end.max(label as usize + 1);
        }
        Ok(Self::from_parts(pixels, features, labels, rows, label_end))
    }

    /// A batch the crate has already validated (shapes, and every row and label of `rows`).
    pub(crate) fn trusted(
        pixels: Pixels<'a>,
        features: usize,
        labels: &'a [u32],
        rows: &'a [usize],
    ) -> Self {
        debug_assert!(Self::new(pixels, features, labels, rows, usize::MAX).is_ok());
        let label_end = rows
            .iter()
            .map(|&r| labels[r] as usize + 1)
            .max()
            .unwrap_or(0);
        Self::from_parts(pixels, features, labels, rows, label_end)
    }

    /// The batch, unchecked and without a hint (for the two constructors above); `label_end`
    /// is one past the largest label of `rows`.
    fn from_parts(
        pixels: Pixels<'a>,
        features: usize,
        labels: &'a [u32],
        rows: &'a [usize],
        label_end: usize,
    ) -> Self {
        Self {
            pixels,
            features,
            labels,
            rows,
            next: &[],
            label_end,
        }
    }

    /// The same batch with a prefetch hint: `next` are the rows the following call will use
    /// (the next training step's). Only a hint: the kernels never read through it, so any
    /// values are safe, and a wrong hint only costs speed.
    pub fn with_next(self, next: &'a [usize]) -> Self {
        Self { next, ..self }
    }

    /// Pixels of the whole split.
    pub fn pixels(&self) -> Pixels<'a> {
        self.pixels
    }

    /// Features per sample.
    pub fn features(&self) -> usize {
        self.features
    }

    /// Labels of the whole split.
    pub fn labels(&self) -> &'a [u32] {
        self.labels
    }

    /// Indices of the samples in this batch.
    pub fn rows(&self) -> &'a [usize] {
        self.rows
    }

    /// The prefetch hint (empty when none was given).
    pub fn next_rows(&self) -> &'a [usize] {
        self.next
    }

    /// Number of rows in the batch.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when the batch has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The sub-batch of rows `range` (same split); the hint is cut to the same range.
    /// (The label bound is the whole batch's, which still holds for any part of it.)
    pub fn slice(&self, range: std::ops::Range<usize>) -> Batch<'a> {
        Batch {
            next: self.next.get(range.clone()).unwrap_or(&[]),
            rows: &self.rows[range],
            ..*self
        }
    }

    /// One past the largest label of the batch's rows (0 when it has none): every label is
    /// below it.
    pub fn label_end(&self) -> usize {
        self.label_end
    }

    /// The label of batch row `i`.
    pub fn label(&self, i: usize) -> usize {
        self.labels[self.rows[i]] as usize
    }
}

/// What a kernel reports about a batch.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stats {
    /// The batch loss: `−Σ log(clip(p_y, 1e-9, 1))` summed over rows.
    pub loss: f32,
    /// Rows whose argmax (first index on ties) is the label.
    pub correct: usize,
    /// Rows whose true-class probability was clipped (`p_y < 1e-9`): they pass no gradient.
    pub clipped: usize,
    /// Rows counted.
    pub rows: usize,
}

impl Stats {
    /// Count one row whose true class is `label`.
    #[inline]
    pub(crate) fn add_row(&mut self, out: &softmax::RowOutcome, label: usize) {
        self.loss += out.loss;
        self.correct += (out.predicted == label) as usize;
        self.clipped += out.clipped as usize;
        self.rows += 1;
    }

    /// The share of rows predicted correctly (0 when there are none).
    ///
    /// ```
    /// use mnist_logreg::kernels::Stats;
    /// let s = Stats { correct: 3, rows: 4, ..Stats::default() };
    /// assert_eq!(s.accuracy(), 0.75);
    /// assert_eq!(Stats::default().accuracy(), 0.0);
    /// ```
    pub fn accuracy(&self) -> f64 {
        if self.rows == 0 {
            0.0
        } else {
            self.correct as f64 / self.rows as f64
        }
    }

    /// Combine the stats of two disjoint sets of rows.
    pub fn merge(self, other: Stats) -> Stats {
        Stats {
            loss: self.loss + other.loss,
            correct: self.correct + other.correct,
            clipped: self.clipped + other.clipped,
            rows: self.rows + other.rows,
        }
    }
}

/// The interface every kernel implements.
///
/// Every implementation checks its arguments before it computes (`check_forward`,
/// `check_backward`: one function for all kernels), and a call that breaks the shape contract
/// panics with a message naming the mismatch, never undefined behaviour:
/// - the batch's feature count differs from the model's;
/// - a label of the batch is not below the model's class count;
/// - `grads` is not shaped for the model ([`Grads::zeros_like`] of another model);
/// - `predictions` holds fewer slots than the batch has rows.
///
/// [`Batch::new`] with the model's class count rules out the first two; the functions of
/// [`crate::train`] check all of them and return an error instead.
pub trait Kernel: Send + Sync {
    /// Threads the kernel computes on, the caller included.
    fn threads(&self) -> usize {
        1
    }

    /// The instruction set it runs on, for reports (`avx512 (16 lanes)`, `scalar`, …).
    fn simd(&self) -> String;

    /// Forward only: loss and stats of the batch; when `predictions` is given (one per row),
    /// also the predicted class of each row.
    fn forward(&self, model: &Model, batch: &Batch, predictions: Option<&mut [u32]>) -> Stats;

    /// Forward and backward: stats of the batch, and `grads` overwritten with `dW`, `db`.
    fn forward_backward(&self, model: &Model, batch: &Batch, grads: &mut Grads) -> Stats;

    /// How many calls so far ran on several threads and how many on the caller alone (a
    /// multithreaded kernel decides per call whether sharing pays; see
    /// [`KernelKind::Parallel`]). All zero for a kernel that never shares.
    fn sharing(&self) -> Sharing {
        Sharing::default()
    }
}

/// Calls of a multithreaded kernel counted by how they ran ([`Kernel::sharing`]). Which
/// threads run a call never changes its results, only its time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sharing {
    /// Calls shared between the caller and the helper threads.
    pub shared: u64,
    /// Calls of two or more chunks run on the caller alone, because sharing did not pay.
    pub alone: u64,
}

impl Sharing {
    /// The calls made between `earlier` and `self` (two readings of one kernel).
    pub fn since(self, earlier: Sharing) -> Sharing {
        Sharing {
            shared: self.shared - earlier.shared,
            alone: self.alone - earlier.alone,
        }
    }
}

/// Why a batch does not fit a model, or `None` when it does.
pub(crate) fn batch_mismatch(model: &Model, batch: &Batch) -> Option<String> {
    if batch.features != model.features() {
        return Some(format!(
            "batch has {} features, model expects {}",
            batch.features,
            model.features()
        ));
    }
    if batch.label_end > model.classes() {
        return Some(format!(
            "batch has label {}, model has {} classes",
            batch.label_end - 1,
            model.classes()
        ));
    }
    None
}

/// Panic with a clear message when a forward call breaks the shape contract of [`Kernel`].
pub(crate) fn check_forward(model: &Model, batch: &Batch, predictions: Option<&[u32]>) {
    if let Some(why) = batch_mismatch(model, batch) {
        panic!("{why}");
    }
    if let Some(p) = predictions {
        assert!(
            p.len() >= batch.len(),
            "predictions buffer holds {} slots for a batch of {} rows",
            p.len(),
            batch.len()
        );
    }
}

/// Panic with a clear message when a backward call breaks the shape contract of [`Kernel`].
/// After it, `grads.dw()` holds `features · classes` and `grads.db()` `classes` values (the
/// invariant of [`Grads`]) for the model's shape.
pub(crate) fn check_backward(model: &Model, batch: &Batch, grads: &Grads) {
    check_forward(model, batch, None);
    assert!(
        grads.fits(model),
        "gradients shaped for a {} × {} model, the model is {} × {}",
        grads.features(),
        grads.classes(),
        model.features(),
        model.classes()
    );
    debug_assert_eq!(
        (grads.dw().len(), grads.db().len()),
        (model.features() * model.classes(), model.classes())
    );
}

/// The kernel variants the CLI, tests and benches can choose (by the names of
/// [`KernelKind::name`], the only spelling).
///
/// The `Parallel*` kernels keep helper threads that spin for about 0.2 ms after every call
/// before they park (a 50 µs step cannot wait for a sleeping thread to wake): a library
/// caller that calls them now and then pays that CPU time between calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[cfg_attr(feature = "clap", value(rename_all = "snake_case"))]
#[allow(clippy::enum_variant_names)]
pub enum KernelKind {
    /// Plain scalar loops (the definition of correct).
    Reference,
    /// matrixmultiply sgemm, unfused.
    Gemm,
    /// Fused SIMD, one thread, f32 input.
    Fused,
    /// Fused SIMD, one thread, u8 pixels converted in registers.
    FusedU8,
    /// Fused SIMD sharded over threads, f32 input.
    Parallel,
    /// Fused SIMD sharded over threads, u8 pixels.
    ParallelU8,
}

crate::names::named!(KernelKind, "kernel", [
    Reference => "reference",
    Gemm => "gemm",
    Fused => "fused",
    FusedU8 => "fused_u8",
    Parallel => "parallel",
    ParallelU8 => "parallel_u8",
]);

/// Which pixel buffer a kernel variant reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// The normalised `f32` buffer.
    F32,
    /// The raw u8 pixels.
    U8,
}

impl Input {
    /// The buffer of this format among the two representations of the same pixels.
    pub fn pick<'a>(self, f32s: &'a [f32], u8s: &'a [u8]) -> Pixels<'a> {
        match self {
            Input::F32 => Pixels::F32(f32s),
            Input::U8 => Pixels::U8(u8s),
        }
    }
}

impl KernelKind {
    /// All variants, slowest first.
    pub const ALL: [KernelKind; 6] = [
        KernelKind::Reference,
        KernelKind::Gemm,
        KernelKind::Fused,
        KernelKind::FusedU8,
        KernelKind::Parallel,
        KernelKind::ParallelU8,
    ];

    /// The pixel buffer this variant reads.
    pub fn input(self) -> Input {
        match self {
            KernelKind::FusedU8 | KernelKind::ParallelU8 => Input::U8,
            _ => Input::F32,
        }
    }

    /// Build the kernel on the widest instruction set of this CPU. `threads` is used by the
    /// parallel variants (0 = one per core).
    pub fn build(self, threads: usize) -> Box<dyn Kernel> {
        self.build_on(Isa::best(), threads)
    }

    /// Build the kernel on instruction set `isa` (used by the fused and parallel variants).
    pub fn build_on(self, isa: Isa, threads: usize) -> Box<dyn Kernel> {
        self.build_with(isa, threads, ClipGradient::Zero)
    }

    /// Build the kernel on `isa` with `threads` (parallel variants, 0 = one per core) and the
    /// gradient rule `clip` for rows whose true-class probability was clipped.
    ///
    /// ```
    /// use mnist_logreg::kernels::{ClipGradient, Isa, KernelKind};
    ///
    /// let kernel = KernelKind::ParallelU8.build_with(Isa::best(), 2, ClipGradient::Through);
    /// assert_eq!(kernel.threads(), 2);
    /// ```
    pub fn build_with(self, isa: Isa, threads: usize, clip: ClipGradient) -> Box<dyn Kernel> {
        match self {
            KernelKind::Reference => Box::new(reference::Reference { clip }),
            KernelKind::Gemm => Box::new(gemm::Gemm { clip }),
            KernelKind::Fused | KernelKind::FusedU8 => Box::new(fused::Fused::with_clip(isa, clip)),
            KernelKind::Parallel | KernelKind::ParallelU8 => {
                Box::new(parallel::Parallel::with_clip(isa, threads, clip))
            }
        }
    }

    /// True for the variants whose speed depends on the instruction set.
    pub fn uses_simd(self) -> bool {
        !matches!(self, KernelKind::Reference | KernelKind::Gemm)
    }
}
