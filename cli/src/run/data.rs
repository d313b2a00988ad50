//! Where a run's data comes from, and the pixel buffers its kernel reads.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use mnist_logreg::classes::ClassNames;
use mnist_logreg::dataset::{ChecksumPolicy, Dataset, Resident, Verification};
use mnist_logreg::idx::LoadOptions;
use mnist_logreg::kernels::{Input, Pixels};
use mnist_logreg::train::TrainData;

use super::RunError;

/// Where the data comes from and how it is read.
#[derive(Clone, Debug)]
pub struct DataSource {
    /// The directory with the four IDX files.
    pub dir: PathBuf,
    /// Mapping and caching of the files.
    pub load: LoadOptions,
    /// When to verify checksums.
    pub checksum: ChecksumPolicy,
    /// A class-names file (default: `class-names.txt` in `dir` when present).
    pub class_names: Option<PathBuf>,
}

impl DataSource {
    /// `dir` with the default loading options and checksum policy.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            load: LoadOptions::default(),
            checksum: ChecksumPolicy::Auto,
            class_names: None,
        }
    }
}

/// Training images from which a run copies the data into huge pages (about 4000 steps of
/// 256). Rows are read at random, and in the 4 KB pages of the mapped files most of them miss
/// the TLB; the copy costs 10–30 ms (at times 70) and saves ~5 ms per 1000 steps of batch 256,
/// so short runs, the tutorial's included, read the mapped files.
pub const RESIDENT_MIN_IMAGES: usize = 1_000_000;

/// True when a run of `steps` batches of `batch_size` should train from huge-page copies.
pub fn wants_resident(steps: usize, batch_size: usize) -> bool {
    steps.saturating_mul(batch_size) >= RESIDENT_MIN_IMAGES
}

/// The pixel buffers a kernel reads, besides the dataset's mapped u8 files.
enum Store {
    Mapped,
    ResidentU8 {
        train: Resident<u8>,
        test: Resident<u8>,
    },
    F32 {
        train: Resident<f32>,
        test: mnist_logreg::aligned::AlignedF32,
    },
}

/// An opened dataset with its class names and the pixel buffers of one input format.
pub struct LoadedData {
    /// The four files.
    pub dataset: Dataset,
    /// Names of the classes, for output.
    pub names: ClassNames,
    /// Time taken to open, verify and convert.
    pub load_time: Duration,
    store: Store,
}

impl std::fmt::Debug for LoadedData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedData")
            .field("dataset", &self.dataset.dir)
            .field("load_time", &self.load_time)
            .finish_non_exhaustive()
    }
}

impl LoadedData {
    /// Open `source` for kernels reading `input`; `resident` copies u8 pixels into huge pages
    /// (see [`wants_resident`]). The `f32` input is always a converted copy.
    pub fn open(source: &DataSource, input: Input, resident: bool) -> Result<Self, RunError> {
        let start = Instant::now();
        let dataset = Dataset::open(&source.dir, &source.load, source.checksum)?;
        let names = ClassNames::resolve(
            source.class_names.as_deref(),
            &dataset.dir,
            mnist_logreg::MNIST_CLASSES,
        )?;
        let store = match input {
            Input::U8 if resident => Store::ResidentU8 {
                train: dataset.train.resident_u8().map_err(RunError::Memory)?,
                test: dataset.test.resident_u8().map_err(RunError::Memory)?,
            },
            Input::U8 => Store::Mapped,
            Input::F32 => Store::F32 {
                train: dataset.train.resident_f32().map_err(RunError::Memory)?,
                test: dataset.test.to_f32(),
            },
        };
        Ok(Self {
            dataset,
            names,
            load_time: start.elapsed(),
            store,
        })
    }

    /// Features per sample.
    pub fn features(&self) -> usize {
        self.dataset.train.features()
    }

    /// Classes the labels may take.
    pub fn classes(&self) -> usize {
        mnist_logreg::MNIST_CLASSES
    }

    /// True when the files matched the MNIST checksums.
    pub fn verified(&self) -> bool {
        self.dataset.verification == Verification::Mnist
    }

    /// The training split as the kernels read it.
    pub fn train_data(&self) -> TrainData<'_> {
        let mapped = TrainData::u8(&self.dataset.train);
        match &self.store {
            Store::Mapped => mapped,
            Store::ResidentU8 { train, .. } => TrainData {
                pixels: Pixels::U8(train),
                ..mapped
            },
            Store::F32 { train, .. } => TrainData {
                pixels: Pixels::F32(train),
                ..mapped
            },
        }
    }

    /// The test pixels in the same format.
    pub fn test_pixels(&self) -> Pixels<'_> {
        match &self.store {
            Store::Mapped => Pixels::U8(self.dataset.test.pixels()),
            Store::ResidentU8 { test, .. } => Pixels::U8(test),
            Store::F32 { test, .. } => Pixels::F32(test),
        }
    }
}

/// The default data directory, `data/mnist`: relative to the working directory when it exists
/// there, else the copy in this crate's checkout (so `cargo run` works from any directory).
/// The binaries' default: it names the directory this crate was built in, so a library
/// never relies on it.
pub fn default_data_dir() -> PathBuf {
    let here = PathBuf::from("data/mnist");
    let beside_crate = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cli/ is a member of the repository")
        .join("data/mnist");
    if !here.exists() && beside_crate.exists() {
        beside_crate
    } else {
        here
    }
}
