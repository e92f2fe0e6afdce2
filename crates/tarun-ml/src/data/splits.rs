//! From a data specification to train / validation / test splits.

use std::io::Read;
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::cifar::{batch_paths, read_cifar_dir, read_cifar_files};
use super::synthetic::{GENERATOR_VERSION, SyntheticConfig, synthetic};
use super::{CLASS_NAMES, DataError, Dataset, NUM_CLASSES, mix_seed};

/// Default synthetic sizes when the spec leaves them open.
const SYNTHETIC_DEFAULT: SyntheticConfig = SyntheticConfig {
    train_per_class: 500,
    test_per_class: 100,
    seed: 0,
};

/// Where the images come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The embedded generator ([`synthetic`](fn@super::synthetic)); sizes come from the spec's per-class
    /// counts, 500 train and 100 test per class when unset.
    Synthetic,
    /// An official `cifar-10-batches-bin` folder (`data_batch_1..5.bin`, `test_batch.bin`).
    Cifar10 {
        /// The folder.
        dir: PathBuf,
    },
    /// Explicit CIFAR-10 binary files, concatenated in order.
    Files {
        /// Files of the training set.
        train: Vec<PathBuf>,
        /// Files of the test set.
        test: Vec<PathBuf>,
    },
}

/// What data a study uses and how it is split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataSpec {
    /// Where the images come from.
    pub source: Source,
    /// Training images kept per class: the first `k` of each class, counted after validation
    /// has been held out (for synthetic data: how many are generated for training).
    pub train_per_class: Option<usize>,
    /// Test images kept per class: the first `k` of each class.
    pub test_per_class: Option<usize>,
    /// Images per class held out of the training set for validation (0: no validation split,
    /// the seed protocol).
    pub validation_per_class: usize,
    /// Seed of the synthetic generator and of the validation draw.
    pub seed: u64,
}

/// The three splits, plus the class names they use.
#[derive(Clone, Debug)]
pub struct Splits {
    /// What the model trains on.
    pub train: Dataset,
    /// Held out of the training images; empty when `validation_per_class` is 0.
    pub validation: Dataset,
    /// The test set.
    pub test: Dataset,
    /// Class names in label order.
    pub class_names: Vec<String>,
}

impl Splits {
    /// Number of classes (10).
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }
}

/// Loads the source and splits it as `spec` says.
///
/// Validation images are a random draw (from `spec.seed`) of `validation_per_class` images of
/// each class, taken from the whole training set before any cap, so the validation set does
/// not change with `train_per_class`; both keep the original order.
pub fn load(spec: &DataSpec) -> Result<Splits, DataError> {
    let v = spec.validation_per_class;
    let (full_train, test) = match &spec.source {
        Source::Synthetic => {
            let cfg = SyntheticConfig {
                train_per_class: spec
                    .train_per_class
                    .unwrap_or(SYNTHETIC_DEFAULT.train_per_class)
                    + v,
                test_per_class: spec
                    .test_per_class
                    .unwrap_or(SYNTHETIC_DEFAULT.test_per_class),
                seed: spec.seed,
            };
            synthetic(&cfg)
        }
        Source::Cifar10 { dir } => read_cifar_dir(dir)?,
        Source::Files { train, test } => (read_cifar_files(train)?, read_cifar_files(test)?),
    };
    let (mut train, validation) = hold_out(&full_train, v, spec.seed)?;
    if let Some(k) = spec.train_per_class {
        train = train.first_per_class(k);
    }
    let test = match spec.test_per_class {
        Some(k) => test.first_per_class(k),
        None => test,
    };
    let class_names = CLASS_NAMES.iter().map(|s| (*s).to_owned()).collect();
    Ok(Splits {
        train,
        validation,
        test,
        class_names,
    })
}

/// Splits `per_class` random images of each class off `ds`: `(rest, held_out)`, both in the
/// original order. Every class present must keep at least one image.
fn hold_out(ds: &Dataset, per_class: usize, seed: u64) -> Result<(Dataset, Dataset), DataError> {
    if per_class == 0 {
        return Ok((ds.clone(), Dataset::default()));
    }
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); NUM_CLASSES];
    for i in 0..ds.len() {
        by_class[usize::from(ds.label(i))].push(i);
    }
    let mut held = vec![false; ds.len()];
    for (class, indices) in by_class.iter_mut().enumerate() {
        if indices.is_empty() {
            continue; // a class the source does not have: nothing to hold out
        }
        if indices.len() <= per_class {
            return Err(DataError::ValidationTooLarge {
                class: class as u8,
                have: indices.len(),
                want: per_class,
            });
        }
        // One stream per class: a class's draw does not depend on the others' sizes.
        let mut rng = ChaCha8Rng::seed_from_u64(mix_seed(&[seed, 0x76_616c_6964, class as u64]));
        indices.shuffle(&mut rng);
        indices[..per_class].iter().for_each(|&i| held[i] = true);
    }
    let (kept, out): (Vec<usize>, Vec<usize>) = (0..ds.len()).partition(|&i| !held[i]);
    Ok((ds.subset(&kept), ds.subset(&out)))
}

/// A digest of the data's *content*: for files, a BLAKE3 hash over their names and bytes; for
/// synthetic data, the generator version (the generator's parameters are in the spec itself).
/// Split parameters are not included: callers key on the spec alongside this.
pub fn content_digest(spec: &DataSpec) -> Result<String, DataError> {
    let (train, test) = match &spec.source {
        Source::Synthetic => return Ok(format!("synthetic-v{GENERATOR_VERSION}")),
        Source::Cifar10 { dir } => {
            let mut paths = batch_paths(dir)?;
            let test = paths.split_off(paths.len() - 1);
            (paths, test)
        }
        Source::Files { train, test } => (train.clone(), test.clone()),
    };
    let mut hasher = blake3::Hasher::new();
    for (tag, list) in [(&b"train\0"[..], &train), (&b"test\0"[..], &test)] {
        // Tags and names fix which file is in which split and their order; contents are what
        // matter.
        hasher.update(tag);
        for path in list {
            hasher.update(path.file_name().unwrap_or_default().as_encoded_bytes());
            hasher.update(b"\0");
            hash_file(&mut hasher, path)?;
        }
    }
    Ok(format!("blake3:{}", hasher.finalize().to_hex()))
}

fn hash_file(hasher: &mut blake3::Hasher, path: &Path) -> Result<(), DataError> {
    let mut file = std::fs::File::open(path).map_err(DataError::io(path))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(DataError::io(path))?;
        if n == 0 {
            return Ok(());
        }
        hasher.update(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{IMAGE_BYTES, RECORD_BYTES};

    fn spec(train: Option<usize>, test: Option<usize>, validation: usize) -> DataSpec {
        DataSpec {
            source: Source::Synthetic,
            train_per_class: train,
            test_per_class: test,
            validation_per_class: validation,
            seed: 5,
        }
    }

    #[test]
    fn synthetic_splits_have_the_requested_sizes() {
        let s = load(&spec(Some(12), Some(4), 3)).unwrap();
        assert_eq!(s.train.class_counts(), [12; NUM_CLASSES]);
        assert_eq!(s.validation.class_counts(), [3; NUM_CLASSES]);
        assert_eq!(s.test.class_counts(), [4; NUM_CLASSES]);
        assert_eq!(s.num_classes(), 10);
        assert_eq!(s.class_names[8], "ship");
        // Validation is held out of train: no image is in both.
        for i in 0..s.validation.len() {
            assert!((0..s.train.len()).all(|j| s.train.image(j) != s.validation.image(i)));
        }
        let none = load(&spec(Some(12), Some(4), 0)).unwrap();
        assert!(none.validation.is_empty());
    }

    #[test]
    fn validation_draw_is_deterministic_and_seeded() {
        let a = load(&spec(Some(10), Some(1), 4)).unwrap();
        let b = load(&spec(Some(10), Some(1), 4)).unwrap();
        assert_eq!(a.validation, b.validation);
        assert_eq!(a.train, b.train);
        let c = load(&DataSpec {
            seed: 6,
            ..spec(Some(10), Some(1), 4)
        })
        .unwrap();
        assert_ne!(a.validation, c.validation);
    }

    #[test]
    fn hold_out_rejects_a_validation_set_as_large_as_a_class() {
        let ds = Dataset::new(vec![0; 3 * IMAGE_BYTES], vec![0, 0, 1]);
        let err = hold_out(&ds, 1, 0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "class 1 (automobile) has 1 training images, too few to hold out validation-per-class = 1 and still train on it"
        );
        let (rest, held) = hold_out(&ds.filter_classes(&[0], &[]), 1, 0).unwrap();
        assert_eq!((rest.len(), held.len()), (1, 1));
    }

    #[test]
    fn files_source_reads_caps_and_digests_content() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, n: usize, byte: u8| {
            let p = dir.path().join(name);
            let recs: Vec<u8> = (0..n)
                .flat_map(|r| std::iter::once((r % 10) as u8).chain([byte; IMAGE_BYTES]))
                .collect();
            std::fs::write(&p, recs).unwrap();
            p
        };
        let (a, b, t) = (
            write("a.bin", 20, 1),
            write("b.bin", 10, 2),
            write("t.bin", 30, 3),
        );
        let files = Source::Files {
            train: vec![a.clone(), b.clone()],
            test: vec![t.clone()],
        };
        let s = DataSpec {
            source: files.clone(),
            train_per_class: Some(3),
            test_per_class: None,
            validation_per_class: 0,
            seed: 0,
        };
        let splits = load(&s).unwrap();
        assert_eq!(splits.train.class_counts(), [3; NUM_CLASSES]);
        assert_eq!(splits.test.len(), 30);
        let d1 = content_digest(&s).unwrap();
        assert!(d1.starts_with("blake3:"));
        assert_eq!(d1, content_digest(&s).unwrap());
        std::fs::write(&b, vec![1u8; RECORD_BYTES]).unwrap();
        assert_ne!(
            d1,
            content_digest(&s).unwrap(),
            "content changes change the digest"
        );
        let swapped = Source::Files {
            train: vec![a],
            test: vec![b, t],
        };
        assert_ne!(
            content_digest(&DataSpec {
                source: swapped,
                ..s.clone()
            })
            .unwrap(),
            content_digest(&s).unwrap()
        );
        assert_eq!(
            content_digest(&spec(None, None, 0)).unwrap(),
            "synthetic-v1"
        );
    }

    #[test]
    fn missing_cifar_folder_is_reported() {
        let s = DataSpec {
            source: Source::Cifar10 {
                dir: "/nonexistent/cifar".into(),
            },
            ..spec(None, None, 0)
        };
        let msg = load(&s).unwrap_err().to_string();
        assert!(
            msg.contains("`/nonexistent/cifar` has no `data_batch_1.bin`"),
            "{msg}"
        );
        assert!(content_digest(&s).is_err());
    }
}
