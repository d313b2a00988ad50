//! Where a run's data comes from, and the pixel buffers its kernel reads: an MNIST-format
//! directory (`--data`), or your own four files (`--train-images` …, IDX of any type and shape
//! or `.npy`, see `mnist_logreg::samples`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::classes::ClassNames;
use mnist_logreg::dataset::{ChecksumPolicy, Dataset, Resident};
use mnist_logreg::idx::LoadOptions;
use mnist_logreg::kernels::{Input, Pixels};
use mnist_logreg::samples::{TrainTest, open_train_test};
use mnist_logreg::train::TrainData;

use super::RunError;

/// Where the data comes from and how it is read.
#[derive(Clone, Debug)]
pub struct DataSource {
    /// The directory with the four IDX files (the class-names file's default place for
    /// `files` too).
    pub dir: PathBuf,
    /// Your own files instead of `dir`'s: train images, train labels, test images, test
    /// labels (IDX of any element type and shape, or `.npy`).
    pub files: Option<[PathBuf; 4]>,
    /// The class count of `files` (default: one past the largest label).
    pub classes: Option<usize>,
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
            files: None,
            classes: None,
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
        test: mnist_logreg::dataset::AlignedF32,
    },
    /// Own u8 files read by an `f32` kernel: converted copies.
    FilesF32 {
        train: mnist_logreg::dataset::AlignedF32,
        test: mnist_logreg::dataset::AlignedF32,
    },
}

/// The sets a run reads.
enum Sets {
    Mnist(Dataset),
    Files(TrainTest),
}

/// An opened dataset with its class names and the pixel buffers of one input format.
pub struct LoadedData {
    sets: Sets,
    /// Names of the classes, for output.
    pub names: ClassNames,
    /// Time taken to open, verify and convert.
    pub load_time: Duration,
    store: Store,
}

impl std::fmt::Debug for LoadedData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedData")
            .field("dir", &self.dir())
            .field("load_time", &self.load_time)
            .finish_non_exhaustive()
    }
}

fn to_f32(pixels: Pixels) -> mnist_logreg::dataset::AlignedF32 {
    let mut out = mnist_logreg::dataset::AlignedF32::zeros(pixels.len());
    match pixels {
        Pixels::U8(p) => mnist_logreg::dataset::pixels_to_f32(p, &mut out),
        Pixels::F32(x) => out.copy_from_slice(x),
    }
    out
}

impl LoadedData {
    /// Open `source` for kernels reading `input`; `resident` copies u8 pixels into huge pages
    /// (see [`wants_resident`]). The `f32` input of u8 data is always a converted copy; `f32`
    /// features of own files are read as they are (in place for a little-endian `.npy`), and
    /// need a kernel reading `f32` (see [`LoadedData::input`]).
    pub fn open(source: &DataSource, input: Input, resident: bool) -> Result<Self, RunError> {
        let start = Instant::now();
        if let Some(files) = &source.files {
            let paths = [&files[0], &files[1], &files[2], &files[3]].map(PathBuf::as_path);
            let sets = open_train_test(paths, source.classes, &source.load)?;
            let dir = files[0].parent().unwrap_or(Path::new("."));
            let names = ClassNames::resolve(source.class_names.as_deref(), dir, sets.classes)?;
            let u8s = sets.train.features.is_u8() && sets.test.features.is_u8();
            let store = if input == Input::F32 || !u8s {
                match (sets.train.features.pixels(), sets.test.features.pixels()) {
                    (Pixels::F32(_), Pixels::F32(_)) => Store::Mapped,
                    (train, test) => Store::FilesF32 {
                        train: to_f32(train),
                        test: to_f32(test),
                    },
                }
            } else {
                Store::Mapped
            };
            return Ok(Self {
                sets: Sets::Files(sets),
                names,
                load_time: start.elapsed(),
                store,
            });
        }
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
            sets: Sets::Mnist(dataset),
            names,
            load_time: start.elapsed(),
            store,
        })
    }

    /// The MNIST-format directory's dataset, when the data came from one (`--data`).
    pub fn dataset(&self) -> Option<&Dataset> {
        match &self.sets {
            Sets::Mnist(d) => Some(d),
            Sets::Files(_) => None,
        }
    }

    /// The MNIST-format dataset and the class names, when the data came from a directory.
    pub fn into_mnist(self) -> Option<(Dataset, ClassNames)> {
        match self.sets {
            Sets::Mnist(d) => Some((d, self.names)),
            Sets::Files(_) => None,
        }
    }

    /// The directory of the data (of the training images for own files).
    pub fn dir(&self) -> &Path {
        match &self.sets {
            Sets::Mnist(d) => &d.dir,
            Sets::Files(s) => s.train.features.path().parent().unwrap_or(Path::new(".")),
        }
    }

    /// The input format the kernels read: u8 pixels unless the features are floats.
    pub fn input(&self) -> Input {
        match self.train_data().pixels {
            Pixels::U8(_) => Input::U8,
            Pixels::F32(_) => Input::F32,
        }
    }

    /// True when the features are u8 pixels scaled by 1/255; false when floats are used as
    /// given.
    pub fn is_u8(&self) -> bool {
        match &self.sets {
            Sets::Mnist(_) => true,
            Sets::Files(s) => s.train.features.is_u8(),
        }
    }

    /// True for 28×28 u8 pictures (what the novelty score, terminal pictures and picture
    /// plots need).
    pub fn is_pictures(&self) -> bool {
        self.is_u8() && self.features() == mnist_logreg::MNIST_FEATURES
    }

    /// Training samples.
    pub fn train_len(&self) -> usize {
        self.train_data().labels.len()
    }

    /// Test samples.
    pub fn test_len(&self) -> usize {
        self.test_labels().len()
    }

    /// The test labels.
    pub fn test_labels(&self) -> &[u32] {
        match &self.sets {
            Sets::Mnist(d) => d.test.labels(),
            Sets::Files(s) => s.test.labels.labels(),
        }
    }

    /// The u8 pixels of test sample `i`, when the features are u8.
    pub fn test_image(&self, i: usize) -> Option<&[u8]> {
        match &self.sets {
            Sets::Mnist(d) => Some(d.test.image(i)),
            Sets::Files(s) => match s.test.features.pixels() {
                Pixels::U8(p) => {
                    let f = s.test.features.features();
                    p.get(i * f..(i + 1) * f)
                }
                Pixels::F32(_) => None,
            },
        }
    }

    /// Features per sample.
    pub fn features(&self) -> usize {
        match &self.sets {
            Sets::Mnist(d) => d.train.features(),
            Sets::Files(s) => s.train.features.features(),
        }
    }

    /// Classes the labels may take.
    pub fn classes(&self) -> usize {
        match &self.sets {
            Sets::Mnist(_) => mnist_logreg::MNIST_CLASSES,
            Sets::Files(s) => s.classes,
        }
    }

    /// Classes without a training sample (own files only).
    pub fn classes_without_training_samples(&self) -> Vec<usize> {
        match &self.sets {
            Sets::Mnist(_) => Vec::new(),
            Sets::Files(s) => s.classes_without_training_samples(),
        }
    }

    /// True when the files matched the MNIST checksums.
    pub fn verified(&self) -> bool {
        matches!(&self.sets, Sets::Mnist(d) if d.verified)
    }

    /// The training split as the kernels read it.
    pub fn train_data(&self) -> TrainData<'_> {
        let own = match &self.sets {
            Sets::Mnist(d) => TrainData::u8(&d.train),
            Sets::Files(s) => s.train.train_data(),
        };
        match &self.store {
            Store::Mapped => own,
            Store::ResidentU8 { train, .. } => TrainData {
                pixels: Pixels::U8(train),
                ..own
            },
            Store::F32 { train, .. } => TrainData {
                pixels: Pixels::F32(train),
                ..own
            },
            Store::FilesF32 { train, .. } => TrainData {
                pixels: Pixels::F32(train),
                ..own
            },
        }
    }

    /// The test pixels in the same format.
    pub fn test_pixels(&self) -> Pixels<'_> {
        match (&self.store, &self.sets) {
            (Store::Mapped, Sets::Mnist(d)) => Pixels::U8(d.test.pixels()),
            (Store::Mapped, Sets::Files(s)) => s.test.features.pixels(),
            (Store::ResidentU8 { test, .. }, _) => Pixels::U8(test),
            (Store::F32 { test, .. }, _) => Pixels::F32(test),
            (Store::FilesF32 { test, .. }, _) => Pixels::F32(test),
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
