//! The study's data: CIFAR-10 and an embedded synthetic stand-in, split, filtered, augmented
//! and streamed to the model as Candle tensors.
//!
//! * [`cifar`] reads the official binary format (`cifar-10-batches-bin`): records of one label
//!   byte and 3072 pixel bytes (R, G, B planes of 32x32, row-major). Corrupt files fail with the
//!   file and byte offset.
//! * [`fetch`] downloads the official archive resumably, checks its md5 and extracts it.
//! * [`synthetic`](mod@synthetic) generates a deterministic 10-class dataset with the CIFAR-10 class names and
//!   deliberately similar class pairs, so that unlearning has something to re-route; it is the
//!   default source and needs no file and no network.
//! * [`splits`] turns a [`DataSpec`] into train / validation / test [`Splits`].
//! * [`loader`] applies the seed's augmentation (pad 4 + random crop, horizontal flip) and
//!   normalisation on a background thread and yields [`Batch`]es.
//!
//! Every image is held as 3072 `u8` in CHW order, exactly the CIFAR-10 record layout, so the
//! reader copies bytes straight in and the loader converts to `f32` only per batch.

pub mod cifar;
mod dataset;
pub mod fetch;
pub mod loader;
mod render;
pub mod splits;
pub mod synthetic;

use std::path::PathBuf;

pub use cifar::{read_cifar_dir, read_cifar_file, read_cifar_files};
pub use dataset::Dataset;
pub use fetch::{CIFAR10_MD5, CIFAR10_URL, download_to, fetch_cifar10, verify_and_extract};
pub use loader::{Batch, Loader, MEAN, STD, batches};
pub use splits::{DataSpec, Source, Splits, content_digest, load};
pub use synthetic::{SyntheticConfig, synthetic};

/// Image side in pixels.
pub const SIDE: usize = 32;
/// Bytes (and pixels per channel times channels) of one image: 3 planes of 32x32.
pub const IMAGE_BYTES: usize = 3 * SIDE * SIDE;
/// Bytes of one CIFAR-10 binary record: the label byte, then the image.
pub const RECORD_BYTES: usize = 1 + IMAGE_BYTES;
/// Number of classes, for CIFAR-10 and the synthetic set alike.
pub const NUM_CLASSES: usize = 10;
/// CIFAR-10's class names in label order (`batches.meta.txt`); the synthetic set reuses them.
pub const CLASS_NAMES: [&str; NUM_CLASSES] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Everything that can go wrong while reading, fetching or splitting data. Every variant about a
/// file names it, so a message is actionable without a backtrace.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// An operating-system error on a file or folder.
    #[error("`{path}`: {source}")]
    Io {
        /// The file or folder the operation was on.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file ends in the middle of a record.
    #[error(
        "`{path}`: truncated record at byte offset {offset} (file length {len} is not a multiple of {RECORD_BYTES})"
    )]
    Truncated {
        /// The CIFAR-10 binary file.
        path: PathBuf,
        /// Where the incomplete record starts.
        offset: u64,
        /// The file's length in bytes.
        len: u64,
    },
    /// A record's label byte is not a class index.
    #[error("`{path}`: label {label} at byte offset {offset} is not a CIFAR-10 class (0-9)")]
    BadLabel {
        /// The CIFAR-10 binary file.
        path: PathBuf,
        /// The label byte's offset.
        offset: u64,
        /// The label found.
        label: u8,
    },
    /// A file holds no record at all.
    #[error("`{path}`: empty file, no CIFAR-10 records")]
    Empty {
        /// The CIFAR-10 binary file.
        path: PathBuf,
    },
    /// A `cifar-10-batches-bin` folder lacks one of its six batch files.
    #[error(
        "`{dir}` has no `{file}`: expected the `cifar-10-batches-bin` folder (data_batch_1.bin .. \
         data_batch_5.bin and test_batch.bin); `tarun data fetch cifar10` downloads it, or set \
         `path` in `[data]` to an existing copy"
    )]
    MissingBatch {
        /// The folder searched.
        dir: PathBuf,
        /// The missing file name.
        file: &'static str,
    },
    /// The download server could not be reached (no network, DNS, refused connection, timeout).
    #[error(
        "could not reach {url} ({reason}). Without network access, download \
         cifar-10-binary.tar.gz on another machine, extract it, and set `path` in `[data]` to \
         its `cifar-10-batches-bin` folder (or use source = \"synthetic\")"
    )]
    Offline {
        /// The URL requested.
        url: String,
        /// What the HTTP client reported.
        reason: String,
    },
    /// The server answered, but not with the file.
    #[error("{url}: the server answered HTTP {status}")]
    HttpStatus {
        /// The URL requested.
        url: String,
        /// The HTTP status code.
        status: u16,
    },
    /// The downloaded archive is not the published one.
    #[error(
        "`{path}`: md5 {actual} does not match the published {expected}; the file is corrupt or \
         incomplete and was removed, run the fetch again"
    )]
    Checksum {
        /// The archive.
        path: PathBuf,
        /// The published digest (lower-case hex).
        expected: String,
        /// The digest of the file on disk.
        actual: String,
    },
    /// The archive passed its checksum but could not be unpacked.
    #[error("`{path}`: cannot extract the archive: {source}")]
    Extract {
        /// The archive.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The split parameters ask for more images than a class has.
    #[error(
        "class {class} ({name}) has {have} training images, too few to hold out \
         validation-per-class = {want} and still train on it",
        name = CLASS_NAMES[usize::from(*class)]
    )]
    ValidationTooLarge {
        /// The class short of images.
        class: u8,
        /// Its number of training images.
        have: usize,
        /// The validation images requested per class.
        want: usize,
    },
    /// Building a batch tensor on the device failed.
    #[error("building a batch tensor: {0}")]
    Tensor(#[from] candle_core::Error),
}

impl DataError {
    /// Wraps an IO error with the path it happened on.
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}

/// Mixes several words into one seed (splitmix64 finaliser over a running state), so that every
/// random stream (per image, per epoch, per purpose) is derived directly from its coordinates
/// and never depends on how many numbers an earlier stream consumed.
pub(crate) fn mix_seed(parts: &[u64]) -> u64 {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    for &p in parts {
        state = splitmix(state ^ p);
    }
    state
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_seeds_depend_on_every_part_and_its_position() {
        let a = mix_seed(&[1, 2, 3]);
        assert_eq!(a, mix_seed(&[1, 2, 3]));
        assert_ne!(a, mix_seed(&[1, 2, 4]));
        assert_ne!(a, mix_seed(&[2, 1, 3]));
        assert_ne!(mix_seed(&[0]), mix_seed(&[0, 0]));
    }
}
