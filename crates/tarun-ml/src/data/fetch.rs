//! Downloading the official CIFAR-10 binary archive: resumable, checksummed, then extracted.
//!
//! The steps are separate functions so that each can be tested without the network:
//! [`download_to`] appends to a `.part` file with an HTTP `Range` request, and
//! [`verify_and_extract`] checks an archive's md5 and unpacks it. [`fetch_cifar10`] chains them.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use md5::{Digest, Md5};

use super::DataError;
use super::cifar::batch_paths;

/// Where the official binary version of CIFAR-10 is published.
pub const CIFAR10_URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
/// Its published md5 (on the CIFAR-10 page).
pub const CIFAR10_MD5: &str = "c32a1d4ab5d03f1284b67883e8d87530";
/// The folder the archive extracts to.
pub const CIFAR10_DIR: &str = "cifar-10-batches-bin";
const ARCHIVE_NAME: &str = "cifar-10-binary.tar.gz";
/// Each batch file holds 10,000 records of 3073 bytes.
const BATCH_FILE_LEN: u64 = 10_000 * super::RECORD_BYTES as u64;

/// Makes sure `dest/cifar-10-batches-bin` holds CIFAR-10 and returns that folder.
///
/// Does nothing when the six batch files are already there with their official sizes.
/// Otherwise downloads [`CIFAR10_URL`] to `dest/cifar-10-binary.tar.gz.part` (resuming a
/// previous partial download), checks [`CIFAR10_MD5`], extracts, and deletes the archive.
/// `progress(done, total)` is called as bytes arrive; `total` is `None` when the server does
/// not say.
pub fn fetch_cifar10(
    dest: &Path,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<PathBuf, DataError> {
    let dir = dest.join(CIFAR10_DIR);
    if is_complete(&dir) {
        return Ok(dir);
    }
    fs::create_dir_all(dest).map_err(DataError::io(dest))?;
    let archive = dest.join(ARCHIVE_NAME);
    if !archive.is_file() {
        let part = dest.join(format!("{ARCHIVE_NAME}.part"));
        download_to(CIFAR10_URL, &part, progress)?;
        fs::rename(&part, &archive).map_err(DataError::io(&part))?;
    }
    verify_and_extract(&archive, CIFAR10_MD5, dest)?;
    fs::remove_file(&archive).map_err(DataError::io(&archive))?;
    Ok(dir)
}

/// Whether `dir` already holds the six official batch files at their full size.
fn is_complete(dir: &Path) -> bool {
    batch_paths(dir).is_ok_and(|paths| {
        paths
            .iter()
            .all(|p| fs::metadata(p).is_ok_and(|m| m.len() == BATCH_FILE_LEN))
    })
}

/// Downloads `url` into `part`, resuming after the bytes `part` already holds, and returns the
/// file's final length.
///
/// A server that ignores the `Range` header answers 200 with the whole file; the partial file
/// is then restarted from zero rather than corrupted by appending. A transport failure
/// (no network, refused connection, unknown host, timeout) is [`DataError::Offline`], an
/// error status is [`DataError::HttpStatus`].
pub fn download_to(
    url: &str,
    part: &Path,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<u64, DataError> {
    let have = fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    let agent = agent();
    let mut request = agent.get(url);
    if have > 0 {
        request = request.header("Range", format!("bytes={have}-"));
    }
    let response = match request.call() {
        // The part is already whole: nothing after its last byte.
        Err(ureq::Error::StatusCode(416)) if have > 0 => return Ok(have),
        other => other.map_err(|e| transport_error(url, e))?,
    };
    let resumed = response.status().as_u16() == 206;
    let start = if resumed { have } else { 0 };
    let total = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .map(|len| start + len);
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .append(resumed)
        .truncate(!resumed)
        .open(part)
        .map_err(DataError::io(part))?;
    let mut body = response.into_body().into_reader();
    copy_with_progress(&mut body, &mut file, part, url, start, total, progress)
}

/// The HTTP client: fail fast when the host is unreachable, but give a slow transfer all the
/// time it needs (no global timeout on a 170 MB body).
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(20)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .build()
        .new_agent()
}

fn transport_error(url: &str, e: ureq::Error) -> DataError {
    match e {
        ureq::Error::StatusCode(status) => DataError::HttpStatus {
            url: url.to_owned(),
            status,
        },
        other => DataError::Offline {
            url: url.to_owned(),
            reason: other.to_string(),
        },
    }
}

/// Streams `body` into `file`, reporting progress; read errors are network errors (the
/// connection dropped), write errors belong to the file.
fn copy_with_progress(
    body: &mut impl Read,
    file: &mut File,
    part: &Path,
    url: &str,
    start: u64,
    total: Option<u64>,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<u64, DataError> {
    let mut buf = vec![0u8; 1 << 20];
    let mut done = start;
    progress(done, total);
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let reason =
                    format!("connection lost after {done} bytes: {e}; run again to resume");
                return Err(DataError::Offline {
                    url: url.to_owned(),
                    reason,
                });
            }
        };
        file.write_all(&buf[..n]).map_err(DataError::io(part))?;
        done += n as u64;
        progress(done, total);
    }
    file.flush().map_err(DataError::io(part))?;
    Ok(done)
}

/// Checks `archive`'s md5 against `expected_md5` (hex, any case), then extracts the `.tar.gz`
/// into `dest`.
///
/// A mismatching archive is deleted, so the next fetch downloads it afresh, and nothing is
/// extracted. Extraction goes to a staging folder inside `dest` first and each top-level entry
/// is then moved into place, so an interrupted extraction never leaves a folder that looks
/// complete.
pub fn verify_and_extract(
    archive: &Path,
    expected_md5: &str,
    dest: &Path,
) -> Result<(), DataError> {
    let actual = md5_hex(archive)?;
    if !actual.eq_ignore_ascii_case(expected_md5) {
        fs::remove_file(archive).map_err(DataError::io(archive))?;
        return Err(DataError::Checksum {
            path: archive.to_owned(),
            expected: expected_md5.to_ascii_lowercase(),
            actual,
        });
    }
    let staging = dest.join(".tarun-extract");
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(DataError::io(&staging))?;
    }
    fs::create_dir_all(&staging).map_err(DataError::io(&staging))?;
    unpack(archive, &staging)?;
    move_entries(&staging, dest)?;
    fs::remove_dir(&staging).map_err(DataError::io(&staging))
}

/// The md5 of a file, lower-case hex.
fn md5_hex(path: &Path) -> Result<String, DataError> {
    let mut file = File::open(path).map_err(DataError::io(path))?;
    let mut hasher = Md5::new();
    io::copy(&mut file, &mut hasher).map_err(DataError::io(path))?;
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn unpack(archive: &Path, into: &Path) -> Result<(), DataError> {
    let file = File::open(archive).map_err(DataError::io(archive))?;
    let gz = flate2::read::GzDecoder::new(io::BufReader::new(file));
    // `tar` refuses entries that would escape `into` (absolute paths, `..`).
    tar::Archive::new(gz)
        .unpack(into)
        .map_err(|source| DataError::Extract {
            path: archive.to_owned(),
            source,
        })
}

/// Moves every entry of `from` into `to`, replacing what is there.
fn move_entries(from: &Path, to: &Path) -> Result<(), DataError> {
    for entry in fs::read_dir(from).map_err(DataError::io(from))? {
        let entry = entry.map_err(DataError::io(from))?;
        let target = to.join(entry.file_name());
        if target.is_dir() {
            fs::remove_dir_all(&target).map_err(DataError::io(&target))?;
        } else if target.exists() {
            fs::remove_file(&target).map_err(DataError::io(&target))?;
        }
        fs::rename(entry.path(), &target).map_err(DataError::io(&target))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::data::{IMAGE_BYTES, read_cifar_dir};

    /// A `cifar-10-binary.tar.gz` look-alike: the official layout with 2 records per file,
    /// record `r` labelled `r % 10`.
    fn make_archive(path: &Path) {
        let records: Vec<u8> = (0..2u8)
            .flat_map(|r| std::iter::once(r).chain([r + 7; IMAGE_BYTES]))
            .collect();
        let gz = flate2::write::GzEncoder::new(File::create(path).unwrap(), Default::default());
        let mut tar = tar::Builder::new(gz);
        for name in super::super::cifar::TRAIN_FILES
            .iter()
            .chain([&"test_batch.bin"])
        {
            let mut header = tar::Header::new_gnu();
            header.set_size(records.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, format!("{CIFAR10_DIR}/{name}"), &records[..])
                .unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap();
    }

    #[test]
    fn verified_archive_extracts_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("a.tar.gz");
        make_archive(&archive);
        let md5 = md5_hex(&archive).unwrap();
        verify_and_extract(&archive, &md5.to_ascii_uppercase(), dir.path()).unwrap();
        let (train, test) = read_cifar_dir(&dir.path().join(CIFAR10_DIR)).unwrap();
        assert_eq!((train.len(), test.len()), (10, 2));
        assert_eq!(test.labels(), &[0, 1]);
        assert!(test.image(1).iter().all(|&b| b == 8));
        assert!(
            !dir.path().join(".tarun-extract").exists(),
            "staging folder removed"
        );
        // Extracting again replaces the folder rather than failing on it.
        make_archive(&archive);
        verify_and_extract(&archive, &md5, dir.path()).unwrap();
    }

    #[test]
    fn corrupted_archive_fails_checksum_and_extracts_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("a.tar.gz");
        make_archive(&archive);
        let md5 = md5_hex(&archive).unwrap();
        let mut bytes = fs::read(&archive).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xFF;
        fs::write(&archive, bytes).unwrap();
        let err = verify_and_extract(&archive, &md5, dir.path()).unwrap_err();
        assert!(
            matches!(&err, DataError::Checksum { expected, .. } if *expected == md5),
            "{err}"
        );
        assert!(err.to_string().contains("a.tar.gz`: md5"), "{err}");
        assert!(!dir.path().join(CIFAR10_DIR).exists());
        assert!(
            !archive.exists(),
            "the corrupt archive is removed so a rerun re-downloads"
        );
    }

    #[test]
    fn unreachable_server_is_a_clear_offline_error() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("x.part");
        let started = Instant::now();
        let err =
            download_to("http://127.0.0.1:9/cifar.tar.gz", &part, &mut |_, _| {}).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10), "fails fast");
        let msg = err.to_string();
        assert!(
            msg.starts_with("could not reach http://127.0.0.1:9/cifar.tar.gz"),
            "{msg}"
        );
        assert!(msg.contains("set `path` in `[data]`"), "{msg}");
    }

    #[test]
    fn complete_folder_is_not_fetched_again() {
        let dir = tempfile::tempdir().unwrap();
        let cifar = dir.path().join(CIFAR10_DIR);
        fs::create_dir(&cifar).unwrap();
        for name in super::super::cifar::TRAIN_FILES
            .iter()
            .chain([&"test_batch.bin"])
        {
            File::create(cifar.join(name))
                .unwrap()
                .set_len(BATCH_FILE_LEN)
                .unwrap();
        }
        // Would need the network (and fail offline) if it did not see the folder is complete.
        let got = fetch_cifar10(dir.path(), &mut |_, _| panic!("no download")).unwrap();
        assert_eq!(got, cifar);
    }
}
