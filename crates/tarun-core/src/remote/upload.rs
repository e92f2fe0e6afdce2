//! Uploading one object: in one PUT when it is small, in parts (a multipart upload) when it is
//! large, checking as it is read that the local copy is still the bytes its digest names.
//!
//! A multipart upload is invisible until it is completed: S3, GCS and Azure show the object only
//! once its parts are committed, and object_store's filesystem store writes it to a staging
//! file renamed at the end. Whatever goes wrong (a part refused, the local copy found damaged
//! after some parts went up, the server gone) the upload is aborted, so no half object is ever
//! visible under the object's name and no parts are left to be billed.

use object_store::path::Path;
use object_store::{MultipartUpload, ObjectStore, PutPayload};

use crate::digest::ObjectDigest;
use crate::store::OutputRef;

/// Objects of at least this many bytes go up in parts: large enough that every checkpoint of
/// this project's studies goes in one PUT, small enough that a large model's is never held in
/// memory whole nor resent whole after a dropped connection.
pub const MULTIPART_THRESHOLD: u64 = 64 << 20;

/// A test knob: the multipart threshold in bytes (also the part size when smaller than
/// [`PART_SIZE`]), so that tests upload small objects in several parts. S3 refuses parts under
/// 5 MiB but the last; SeaweedFS and the filesystem store do not.
pub const MULTIPART_ENV: &str = "TARUN_MULTIPART_THRESHOLD";

/// The size of each part but the last: within S3's limits (5 MiB to 5 GiB, at most 10,000
/// parts, so objects up to 160 GB), and four of them in flight bound the memory an upload uses.
pub const PART_SIZE: u64 = 16 << 20;

/// Parts uploaded at once.
const PARTS_IN_FLIGHT: usize = 4;

/// The threshold in use: [`MULTIPART_ENV`], else [`MULTIPART_THRESHOLD`].
pub fn threshold_from_env() -> Result<u64, String> {
    match std::env::var(MULTIPART_ENV) {
        Err(_) => Ok(MULTIPART_THRESHOLD),
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!(
                "{MULTIPART_ENV}=`{v}` is not a positive number of bytes"
            )),
        },
    }
}

/// Why an upload failed.
#[derive(Debug)]
pub enum UploadError {
    /// The local file could not be read.
    Local(std::io::Error),
    /// The local copy is not the bytes its digest and size name: nothing was made visible.
    Damaged,
    /// The remote refused or could not be reached.
    Remote(object_store::Error),
}

impl std::fmt::Display for UploadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UploadError::Local(e) => write!(f, "reading the local copy: {e}"),
            UploadError::Damaged => f.write_str(
                "the local copy does not match its digest (run `tarun verify`); nothing uploaded",
            ),
            UploadError::Remote(e) => write!(f, "{e}"),
        }
    }
}

/// How an object went up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Uploaded {
    Whole,
    /// In this many parts.
    Parts(usize),
}

/// Uploads the local file `local` as `path`. It must hold `out`'s bytes: they are hashed as they
/// are read, and a mismatch uploads nothing (a whole PUT is not sent; a multipart upload is
/// aborted before it is completed). `multipart` says whether the store offers multipart
/// uploads; `threshold` is [`threshold_from_env`]'s.
pub async fn put_object(
    objects: &dyn ObjectStore,
    path: &Path,
    local: &camino::Utf8Path,
    out: &OutputRef,
    multipart: bool,
    threshold: u64,
) -> Result<Uploaded, UploadError> {
    if !multipart || out.size < threshold {
        let bytes = std::fs::read(local).map_err(UploadError::Local)?;
        if bytes.len() as u64 != out.size || ObjectDigest::of_bytes(&bytes) != out.digest {
            return Err(UploadError::Damaged);
        }
        objects
            .put(path, PutPayload::from(bytes))
            .await
            .map_err(UploadError::Remote)?;
        return Ok(Uploaded::Whole);
    }
    let part_size = threshold.min(PART_SIZE);
    let upload = objects
        .put_multipart(path)
        .await
        .map_err(UploadError::Remote)?;
    let mut parts = Parts {
        upload,
        in_flight: tokio::task::JoinSet::new(),
        count: 0,
    };
    match parts.send_file(local, out, part_size).await {
        Ok(()) => match parts.upload.complete().await {
            Ok(_) => Ok(Uploaded::Parts(parts.count)),
            Err(e) => {
                parts.abort().await;
                Err(UploadError::Remote(e))
            }
        },
        Err(e) => {
            parts.abort().await;
            Err(e)
        }
    }
}

/// A multipart upload under way.
struct Parts {
    upload: Box<dyn MultipartUpload>,
    in_flight: tokio::task::JoinSet<object_store::Result<()>>,
    count: usize,
}

impl Parts {
    /// Reads `local` in parts of `part_size`, hashing each and sending it, at most
    /// [`PARTS_IN_FLIGHT`] at a time; returns once every part is acknowledged and the whole
    /// file was `out`'s bytes.
    async fn send_file(
        &mut self,
        local: &camino::Utf8Path,
        out: &OutputRef,
        part_size: u64,
    ) -> Result<(), UploadError> {
        use std::io::Read as _;
        let mut file = std::fs::File::open(local).map_err(UploadError::Local)?;
        let mut hasher = blake3::Hasher::new();
        let mut size = 0u64;
        loop {
            let mut buf = Vec::with_capacity(part_size as usize);
            (&mut file)
                .take(part_size)
                .read_to_end(&mut buf)
                .map_err(UploadError::Local)?;
            if buf.is_empty() {
                break;
            }
            size += buf.len() as u64;
            if size > out.size {
                return Err(UploadError::Damaged);
            }
            hasher.update(&buf);
            while self.in_flight.len() >= PARTS_IN_FLIGHT {
                self.join_one().await?;
            }
            // Parts are numbered in the order `put_part` is called, whatever order they finish.
            self.in_flight
                .spawn(self.upload.put_part(PutPayload::from(buf)));
            self.count += 1;
        }
        while !self.in_flight.is_empty() {
            self.join_one().await?;
        }
        if size != out.size || ObjectDigest::from_hash(hasher.finalize()) != out.digest {
            return Err(UploadError::Damaged);
        }
        Ok(())
    }

    async fn join_one(&mut self) -> Result<(), UploadError> {
        match self.in_flight.join_next().await {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(UploadError::Remote(e)),
            Some(Err(e)) => Err(UploadError::Remote(object_store::Error::Generic {
                store: "multipart upload",
                source: Box::new(e),
            })),
        }
    }

    /// Stops the parts in flight and aborts the upload. A failed abort leaves parts the
    /// server expires (a bucket lifecycle rule on S3), never a visible object: it is a debug
    /// line, the upload's own error is what the caller reports.
    async fn abort(&mut self) {
        self.in_flight.shutdown().await;
        if let Err(e) = self.upload.abort().await {
            tracing::debug!("aborting a multipart upload: {e}");
        }
    }
}
