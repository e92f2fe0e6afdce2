//! Reader for CIFAR-10's binary format (Krizhevsky, 2009; the `cifar-10-batches-bin` folder).
//!
//! A file is a sequence of 3073-byte records: one label byte (0-9), then 1024 red, 1024 green
//! and 1024 blue bytes, each plane 32 rows of 32. That is already [`Dataset`]'s layout, so
//! reading is a validation pass and a copy.

use std::path::{Path, PathBuf};

use super::{DataError, Dataset, IMAGE_BYTES, NUM_CLASSES, RECORD_BYTES};

/// The official training batches, in order.
pub const TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
/// The official test batch.
pub const TEST_FILE: &str = "test_batch.bin";

/// Reads one CIFAR-10 binary file.
pub fn read_cifar_file(path: &Path) -> Result<Dataset, DataError> {
    let bytes = std::fs::read(path).map_err(DataError::io(path))?;
    parse_records(path, &bytes)
}

/// Reads several CIFAR-10 binary files and concatenates them in the given order.
pub fn read_cifar_files(paths: &[PathBuf]) -> Result<Dataset, DataError> {
    let mut all = Dataset::default();
    for p in paths {
        all.extend(&read_cifar_file(p)?);
    }
    Ok(all)
}

/// Reads the official `cifar-10-batches-bin` folder: `(train, test)`, 50,000 and 10,000 images
/// for the full download. All six files must be present, so a half-extracted folder is
/// reported rather than silently giving a smaller training set.
pub fn read_cifar_dir(dir: &Path) -> Result<(Dataset, Dataset), DataError> {
    let train = batch_paths(dir)?;
    let (test, train) = train.split_last().expect("six files");
    Ok((read_cifar_files(train)?, read_cifar_file(test)?))
}

/// The six batch files of a `cifar-10-batches-bin` folder, train first and test last; an error
/// names the first one missing.
pub fn batch_paths(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    TRAIN_FILES
        .iter()
        .chain([&TEST_FILE])
        .map(|&file| {
            let p = dir.join(file);
            if p.is_file() {
                Ok(p)
            } else {
                Err(DataError::MissingBatch {
                    dir: dir.to_owned(),
                    file,
                })
            }
        })
        .collect()
}

/// Validates and unpacks the records in `bytes`; `path` is only for error messages.
pub fn parse_records(path: &Path, bytes: &[u8]) -> Result<Dataset, DataError> {
    let len = bytes.len() as u64;
    if bytes.is_empty() {
        return Err(DataError::Empty {
            path: path.to_owned(),
        });
    }
    let whole = bytes.len() / RECORD_BYTES;
    if !bytes.len().is_multiple_of(RECORD_BYTES) {
        let offset = (whole * RECORD_BYTES) as u64;
        return Err(DataError::Truncated {
            path: path.to_owned(),
            offset,
            len,
        });
    }
    let mut images = Vec::with_capacity(whole * IMAGE_BYTES);
    let mut labels = Vec::with_capacity(whole);
    for (r, record) in bytes.chunks_exact(RECORD_BYTES).enumerate() {
        let label = record[0];
        if usize::from(label) >= NUM_CLASSES {
            let offset = (r * RECORD_BYTES) as u64;
            return Err(DataError::BadLabel {
                path: path.to_owned(),
                offset,
                label,
            });
        }
        labels.push(label);
        images.extend_from_slice(&record[1..]);
    }
    Ok(Dataset::new(images, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Record `r` has label `r % 10` and every pixel byte `r`.
    fn records(n: usize) -> Vec<u8> {
        (0..n)
            .flat_map(|r| std::iter::once((r % 10) as u8).chain([r as u8; IMAGE_BYTES]))
            .collect()
    }

    #[test]
    fn reads_records_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.bin");
        std::fs::write(&p, records(3)).unwrap();
        let ds = read_cifar_file(&p).unwrap();
        assert_eq!(ds.labels(), &[0, 1, 2]);
        assert!(ds.image(2).iter().all(|&b| b == 2));
    }

    #[test]
    fn truncated_file_names_file_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.bin");
        let mut bytes = records(3);
        bytes.truncate(6200);
        std::fs::write(&p, bytes).unwrap();
        let msg = read_cifar_file(&p).unwrap_err().to_string();
        assert!(
            msg.contains("x.bin`: truncated record at byte offset 6146"),
            "{msg}"
        );
        assert!(
            msg.contains("file length 6200 is not a multiple of 3073"),
            "{msg}"
        );
    }

    #[test]
    fn bad_label_names_its_offset() {
        let mut bytes = records(3);
        bytes[2 * RECORD_BYTES] = 10;
        let err = parse_records(Path::new("y.bin"), &bytes).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`y.bin`: label 10 at byte offset 6146 is not a CIFAR-10 class (0-9)"
        );
    }

    #[test]
    fn missing_and_empty_files_are_reported_with_their_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.bin");
        let err = read_cifar_file(&missing).unwrap_err();
        assert!(
            matches!(&err, DataError::Io { path, .. } if path == &missing),
            "{err}"
        );
        std::fs::write(dir.path().join("data_batch_1.bin"), records(1)).unwrap();
        let msg = read_cifar_dir(dir.path()).unwrap_err().to_string();
        assert!(msg.contains("has no `data_batch_2.bin`"), "{msg}");
        std::fs::write(&missing, b"").unwrap();
        assert!(matches!(
            read_cifar_file(&missing),
            Err(DataError::Empty { .. })
        ));
    }

    #[test]
    fn reads_a_complete_folder_train_then_test() {
        let dir = tempfile::tempdir().unwrap();
        for f in TRAIN_FILES {
            std::fs::write(dir.path().join(f), records(2)).unwrap();
        }
        std::fs::write(dir.path().join(TEST_FILE), records(3)).unwrap();
        let (train, test) = read_cifar_dir(dir.path()).unwrap();
        assert_eq!((train.len(), test.len()), (10, 3));
        assert_eq!(&train.labels()[..4], &[0, 1, 0, 1]);
    }

    /// Real CIFAR-10 test images shipped in `shared/cifar10`, when this checkout has them
    /// (`shared/` beside the repository, or inside it).
    fn shared_test_file() -> Option<PathBuf> {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let found = ["../../../shared", "../../shared"]
            .iter()
            .map(|s| manifest.join(s).join("cifar10/cifar10-jpeg-test-200pc.bin"))
            .find(|p| p.is_file());
        if found.is_none() {
            println!("note: shared/cifar10/cifar10-jpeg-test-200pc.bin not found; skipping");
        }
        found
    }

    #[test]
    fn reads_real_cifar10_records() {
        let Some(p) = shared_test_file() else { return };
        let ds = read_cifar_file(&p).unwrap();
        assert_eq!(ds.len(), 2000);
        assert!(
            ds.labels()
                .iter()
                .enumerate()
                .all(|(r, &l)| usize::from(l) == r % 10)
        );
        assert_eq!(ds.class_counts(), [200; NUM_CLASSES]);
        // Real photographs use the whole byte range and are not constant.
        let img = ds.image(0);
        assert!(img.iter().min() < img.iter().max());
    }

    #[test]
    fn truncated_real_file_gives_the_offset() {
        let Some(p) = shared_test_file() else { return };
        let bytes = std::fs::read(&p).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cut = dir.path().join("cut.bin");
        std::fs::write(&cut, &bytes[..10 * RECORD_BYTES + 100]).unwrap();
        let msg = read_cifar_file(&cut).unwrap_err().to_string();
        assert!(
            msg.contains("cut.bin`: truncated record at byte offset 30730 (file length 30830"),
            "{msg}"
        );
    }
}
