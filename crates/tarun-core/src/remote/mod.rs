//! The remote cache: node records and their objects shared through object storage (S3 and
//! S3-compatible servers, GCS, Azure, HTTP/WebDAV, or a shared filesystem with `file://`).
//!
//! Layout under the URL's prefix, mirroring the local store:
//!
//! ```text
//! objects/<blake3 hex>     an output's bytes, named by their blake3
//! records/<key>.json       a node record; uploaded last, only if absent: the commit point
//! ```
//!
//! Guarantees:
//! - a record is put after every object it names, with a create-if-absent put
//!   (`PutMode::Create`: `If-None-Match: *` on S3, a hard link on a filesystem), so a reader
//!   never sees a record of a half-finished upload, and two machines pushing the same key leave
//!   the first record in place (same key, same inputs; either is right);
//! - a downloaded object is hashed and checked against its digest and size before it enters the
//!   local store; a corrupt or truncated one is refused with a warning naming the remote, the
//!   node, its key and the object, and the node is computed here;
//! - a record whose objects are missing is a miss, not an error;
//! - the local commit point stays the local record, written after the objects are in place;
//! - a large object goes up in parts ([`upload`]), aborted on any error, so that no half object
//!   is ever visible either.
//!
//! Where a store cannot put if absent (object_store's HTTP/WebDAV store), the record is put
//! after a lookup finds none: still last, so never ahead of its objects, but two machines
//! pushing the same key at once may both write it (the same key's record either way).
//!
//! Credentials come from each service's usual environment variables (and, for the clouds,
//! instance metadata), and for S3 also from the AWS CLI's files ([`aws_profile`]); only
//! `scheme://bucket/prefix` is ever printed, never a query string or an option's value.
//!
//! `object_store` is async; [`RemoteCache`] owns a small runtime of its own and offers a
//! blocking API, callable from any thread, inside a tokio runtime or not.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex};

use camino::Utf8Path;
use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};

use crate::digest::{NodeKey, ObjectDigest};
use crate::graph::Graph;
use crate::manifest::Study;
use crate::plan::{KeyContext, node_key};
use crate::store::{NodeRecord, OutputRef, Store};

pub mod aws_profile;
pub mod upload;

/// The environment variable naming a remote cache when `--remote` is not given.
pub const REMOTE_ENV: &str = "TARUN_REMOTE";

/// A remote cache could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("remote cache `{url}`: {reason}")]
    Url { url: String, reason: String },
    #[error("remote cache {remote}: {what}: {reason}")]
    Io {
        remote: String,
        what: String,
        reason: String,
    },
}

/// Where the remote cache is and whether runs upload to it: `--remote`/`--no-push`, then
/// `TARUN_REMOTE`, then the manifest's `[cache]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteConfig {
    pub url: String,
    pub push: bool,
}

impl RemoteConfig {
    /// The remote a command uses: `flag` (`--remote`) over `TARUN_REMOTE` over `[cache] remote`;
    /// `no_push` (`--no-push`) over `[cache] push` (default true). `None`: no remote.
    pub fn resolve(study: &Study, flag: Option<&str>, no_push: bool) -> Option<RemoteConfig> {
        let env = std::env::var(REMOTE_ENV).ok().filter(|s| !s.is_empty());
        let url = flag
            .map(str::to_owned)
            .or(env)
            .or_else(|| study.cache.get("remote")?.as_str().map(str::to_owned))?;
        let push = !no_push
            && study
                .cache
                .get("push")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(true);
        Some(RemoteConfig { url, push })
    }
}

/// Retries of a failed request: a few, quickly. A remote that stays unreachable costs a run
/// little (each lookup is a miss, each push a warning) where object_store's default (ten
/// retries, up to three minutes) would hold every node that long.
fn retry() -> object_store::RetryConfig {
    object_store::RetryConfig {
        max_retries: 3,
        retry_timeout: std::time::Duration::from_secs(30),
        ..object_store::RetryConfig::default()
    }
}

/// What a lookup found.
#[derive(Debug)]
pub enum Fetched {
    /// The record and every object are now in the local store.
    Hit(Box<NodeRecord>),
    /// No usable record: none there, or one whose objects are missing or were refused.
    Miss,
}

/// What a push did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pushed {
    /// Objects uploaded (those already there are not).
    pub objects: usize,
    pub bytes: u64,
    /// Whether this push put the record; false when it was there already.
    pub record: bool,
}

/// A remote cache, opened.
pub struct RemoteCache {
    objects: Arc<dyn ObjectStore>,
    prefix: Path,
    shown: String,
    /// Whether the store puts if absent (`PutMode::Create`); object_store's HTTP store does not.
    put_if_absent: bool,
    /// Whether the store offers multipart uploads; object_store's HTTP store does not.
    multipart: bool,
    /// Objects of at least this many bytes go up in parts.
    multipart_threshold: u64,
    /// Whether runs upload what they compute.
    pub push: bool,
    runtime: Option<tokio::runtime::Runtime>,
    /// Uploads started by a run, awaited at its end.
    pending: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    failed_pushes: Arc<Mutex<Vec<String>>>,
    /// Remote objects this process refused as corrupt: a push of a node that has one uploads
    /// the local (checked) copy over it, even where the node's record is already there.
    suspect: Arc<Mutex<BTreeSet<ObjectDigest>>>,
    /// Set when a lookup failed (an unreachable remote, refused credentials): the rest of the
    /// run looks nothing more up there, rather than paying the retries for every node.
    lookups_off: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for RemoteCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteCache")
            .field("remote", &self.shown)
            .field("push", &self.push)
            .finish_non_exhaustive()
    }
}

impl Drop for RemoteCache {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which tokio forbids inside another runtime.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// The URL as it may be printed: scheme, host (the bucket), port and path; no user, password,
/// query or fragment.
pub fn display_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}{}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port().map(|p| format!(":{p}")).unwrap_or_default(),
            u.path()
        ),
        Err(_) => url.split(['?', '#']).next().unwrap_or_default().to_owned(),
    }
}

impl RemoteCache {
    /// Opens the remote cache at `config.url`. Credentials and endpoints come from the
    /// environment of each service: `AWS_*` (`AWS_ENDPOINT`/`AWS_ENDPOINT_URL` and
    /// `AWS_ALLOW_HTTP` for S3-compatible servers) and then the AWS CLI's profile files,
    /// `GOOGLE_*`, `AZURE_*`.
    pub fn open(config: &RemoteConfig) -> Result<RemoteCache, RemoteError> {
        let shown = display_url(&config.url);
        let bad = |reason: String| RemoteError::Url {
            url: shown.clone(),
            reason,
        };
        // A plain absolute path is a shared directory, as `file://` would name it.
        let url = if config.url.starts_with('/') {
            url::Url::from_file_path(&config.url)
                .map_err(|()| bad("not an absolute path".into()))?
        } else {
            url::Url::parse(&config.url).map_err(|e| bad(e.to_string()))?
        };
        let (scheme, path) =
            object_store::ObjectStoreScheme::parse(&url).map_err(|e| bad(e.to_string()))?;
        // object_store 0.12's scheme parser reads `az://account/container/path`, but its Azure
        // builder (which decides where objects go) reads `az://container/path`: without this,
        // the first segment of the prefix was dropped and every prefix shared one root.
        let prefix = if url.scheme() == "az" {
            Path::from_url_path(url.path())
        } else {
            Path::parse(path)
        }
        .map_err(|e| bad(e.to_string()))?;
        let url_text = url.as_str();
        use object_store::ObjectStoreScheme as S;
        let objects: Arc<dyn ObjectStore> = match scheme {
            S::Local => {
                // A shared directory: create it, so that the first push to a new one works.
                let dir = url
                    .to_file_path()
                    .map_err(|()| bad("not a local path".into()))?;
                std::fs::create_dir_all(&dir).map_err(|e| bad(e.to_string()))?;
                Arc::new(object_store::local::LocalFileSystem::new())
            }
            S::AmazonS3 => Arc::new(
                aws_profile::apply(object_store::aws::AmazonS3Builder::from_env(), |k| {
                    std::env::var(k).ok()
                })
                .map_err(bad)?
                .with_retry(retry())
                .with_url(url_text)
                .build()
                .map_err(|e| bad(e.to_string()))?,
            ),
            S::GoogleCloudStorage => Arc::new(
                object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_retry(retry())
                    .with_url(url_text)
                    .build()
                    .map_err(|e| bad(e.to_string()))?,
            ),
            S::MicrosoftAzure => Arc::new(
                object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_retry(retry())
                    .with_url(url_text)
                    .build()
                    .map_err(|e| bad(e.to_string()))?,
            ),
            S::Http => Arc::new(
                object_store::http::HttpBuilder::new()
                    .with_retry(retry())
                    // A plain `http://` URL is taken at its word (object_store refuses it by
                    // default).
                    .with_client_options(
                        object_store::ClientOptions::new().with_allow_http(url.scheme() == "http"),
                    )
                    .with_url(&url[..url::Position::BeforePath])
                    .build()
                    .map_err(|e| bad(e.to_string()))?,
            ),
            other => return Err(bad(format!("unsupported scheme ({other:?})"))),
        };
        let http = matches!(scheme, S::Http);
        let multipart_threshold = upload::threshold_from_env().map_err(bad)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tarun-remote")
            .enable_all()
            .build()
            .map_err(|e| bad(format!("starting its I/O threads: {e}")))?;
        Ok(RemoteCache {
            objects,
            prefix,
            shown,
            put_if_absent: !http,
            multipart: !http,
            multipart_threshold,
            push: config.push,
            runtime: Some(runtime),
            pending: Mutex::default(),
            failed_pushes: Arc::default(),
            suspect: Arc::default(),
            lookups_off: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// `scheme://bucket/prefix`, as printed.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// What a push needs, owned, so that it can run in the background.
    fn target(&self) -> Target {
        Target {
            objects: self.objects.clone(),
            prefix: self.prefix.clone(),
            shown: self.shown.clone(),
            put_if_absent: self.put_if_absent,
            multipart: self.multipart,
            multipart_threshold: self.multipart_threshold,
        }
    }

    fn object_path(&self, digest: &ObjectDigest) -> Path {
        self.prefix.child("objects").child(digest.to_hex())
    }

    fn record_path(&self, key: &NodeKey) -> Path {
        self.prefix.child("records").child(format!("{key}.json"))
    }

    fn io(&self, what: impl Into<String>, e: impl std::fmt::Display) -> RemoteError {
        RemoteError::Io {
            remote: self.shown.clone(),
            what: what.into(),
            reason: e.to_string(),
        }
    }

    /// Runs `f` on this cache's runtime, from a thread of its own so that the caller may be
    /// inside another runtime.
    fn block<F>(&self, f: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        let rt = self.runtime.as_ref().expect("taken only on drop");
        std::thread::scope(|s| {
            s.spawn(|| rt.block_on(f))
                .join()
                .expect("remote cache thread panicked")
        })
    }

    /// The record of `key` on the remote, read and checked, without its objects.
    pub fn record(&self, key: &NodeKey) -> Result<Option<NodeRecord>, RemoteError> {
        self.block(self.get_record(key))
    }

    async fn get_record(&self, key: &NodeKey) -> Result<Option<NodeRecord>, RemoteError> {
        let path = self.record_path(key);
        let bytes = match self.objects.get(&path).await {
            Ok(r) => r
                .bytes()
                .await
                .map_err(|e| self.io(format!("record {key}"), e))?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.io(format!("record {key}"), e)),
        };
        let record: NodeRecord = serde_json::from_slice(&bytes)
            .map_err(|e| self.io(format!("record {key}"), format!("unreadable: {e}")))?;
        if record.key != *key {
            return Err(self.io(
                format!("record {key}"),
                format!("it is the record of another key, {}", record.key),
            ));
        }
        Ok(Some(record))
    }

    /// Looks `key` up; on a hit, downloads the objects the local store lacks, checks each, and
    /// commits the record locally (under `id`, the node's id in this study). Never fails: a
    /// remote that cannot be reached, or that holds something corrupt, is a miss with a warning.
    pub fn fetch(&self, store: &Store, study: &str, id: &str, key: &NodeKey) -> Fetched {
        use std::sync::atomic::Ordering;
        if self.lookups_off.load(Ordering::Relaxed) {
            return Fetched::Miss;
        }
        match self.block(self.fetch_async(store, study, id, key)) {
            Ok(f) => f,
            Err(e) => {
                if !self.lookups_off.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "looking up `{id}` (key {key}) failed: {e}; nothing more is looked up \
                         on {} in this command",
                        self.shown
                    );
                }
                Fetched::Miss
            }
        }
    }

    async fn fetch_async(
        &self,
        store: &Store,
        study: &str,
        id: &str,
        key: &NodeKey,
    ) -> Result<Fetched, RemoteError> {
        let Some(mut record) = self.get_record(key).await? else {
            tracing::debug!(
                "remote miss: no record of `{id}` (key {key}) on {}",
                self.shown
            );
            return Ok(Fetched::Miss);
        };
        let dir = store
            .job_dir("pull")
            .map_err(|e| self.io("a download directory", e))?;
        let dir_path = Utf8Path::from_path(dir.path()).expect("store paths are UTF-8");
        let mut seen = BTreeSet::new();
        for (name, out) in &record.outputs {
            if !seen.insert(out.digest) || local_object_ok(store, out) {
                continue;
            }
            let tmp = dir_path.join(out.digest.to_hex());
            match self.download(out, &tmp).await {
                Ok(()) => {}
                Err(Download::Missing) => {
                    tracing::debug!(
                        "remote miss: `{id}` (key {key}) has a record on {} but its output \
                         `{name}` (object {}) is not there",
                        self.shown,
                        out.digest
                    );
                    return Ok(Fetched::Miss);
                }
                Err(Download::Corrupt(why)) => {
                    self.suspect
                        .lock()
                        .expect("not poisoned")
                        .insert(out.digest);
                    tracing::warn!(
                        "refused `{id}` from the remote cache {}: its output `{name}` (object {}, \
                         key {key}) is corrupt ({why}); `{id}` is computed here",
                        self.shown,
                        out.digest
                    );
                    return Ok(Fetched::Miss);
                }
                Err(Download::Failed(e)) => return Err(e),
            }
            let stored = store
                .put_file(&tmp)
                .map_err(|e| self.io(format!("storing object {}", out.digest), e))?;
            debug_assert_eq!(stored.digest, out.digest);
        }
        if record.id != id {
            // The same key under another node id (another study): this study's id heads it here.
            record.id = id.to_owned();
        }
        store
            .commit(study, &record)
            .map_err(|e| self.io(format!("committing the record of `{id}` locally"), e))?;
        tracing::debug!("remote hit: `{id}` (key {key}) pulled from {}", self.shown);
        Ok(Fetched::Hit(Box::new(record)))
    }

    /// Downloads one object to `dest`, hashing as it goes; refuses it unless its blake3 and size
    /// are the recorded ones.
    async fn download(&self, out: &OutputRef, dest: &Utf8Path) -> Result<(), Download> {
        use futures_util::StreamExt as _;
        let what = || format!("object {}", out.digest);
        let get = match self.objects.get(&self.object_path(&out.digest)).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => return Err(Download::Missing),
            Err(e) => return Err(Download::Failed(self.io(what(), e))),
        };
        let mut file = std::fs::File::create(dest)
            .map_err(|e| Download::Failed(self.io(format!("{}: writing {dest}", what()), e)))?;
        let mut hasher = blake3::Hasher::new();
        let mut size = 0u64;
        let mut stream = get.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| Download::Failed(self.io(what(), e)))?;
            hasher.update(&chunk);
            size += chunk.len() as u64;
            if size > out.size {
                return Err(Download::Corrupt(format!(
                    "more than the recorded {} bytes",
                    out.size
                )));
            }
            file.write_all(&chunk)
                .map_err(|e| Download::Failed(self.io(format!("{}: writing {dest}", what()), e)))?;
        }
        if size != out.size {
            return Err(Download::Corrupt(format!(
                "{size} bytes, not the recorded {}",
                out.size
            )));
        }
        let found = ObjectDigest::from_hash(hasher.finalize());
        if found != out.digest {
            return Err(Download::Corrupt(format!("its blake3 is {found}")));
        }
        file.sync_all()
            .map_err(|e| Download::Failed(self.io(format!("{}: writing {dest}", what()), e)))?;
        Ok(())
    }

    /// Uploads a committed node: each object the remote lacks (checked against its digest as it
    /// is read), then the record, only if absent. `id` names the node in messages.
    pub fn push_record(&self, store: &Store, record: &NodeRecord) -> Result<Pushed, RemoteError> {
        self.block(push_async(
            self.target(),
            store.clone(),
            record.clone(),
            self.suspect.clone(),
        ))
    }

    /// Starts uploading a node committed by a run, in the background; [`Self::finish_pushes`]
    /// waits for every upload started. A failed upload is a warning, never a failed run.
    pub fn push_later(&self, store: &Store, record: &NodeRecord) {
        let rt = self.runtime.as_ref().expect("taken only on drop");
        let fut = push_async(
            self.target(),
            store.clone(),
            record.clone(),
            self.suspect.clone(),
        );
        let failed = self.failed_pushes.clone();
        let id = record.id.clone();
        let handle = rt.spawn(async move {
            // After one failure the others are only counted: one warning, not one per node.
            if !failed.lock().expect("not poisoned").is_empty() {
                failed.lock().expect("not poisoned").push(id);
                return;
            }
            match fut.await {
                Ok(p) => tracing::debug!(
                    "pushed `{id}`: {} object{}, {} bytes{}",
                    p.objects,
                    if p.objects == 1 { "" } else { "s" },
                    p.bytes,
                    if p.record {
                        ""
                    } else {
                        " (its record was there)"
                    }
                ),
                Err(e) => {
                    let mut failed = failed.lock().expect("not poisoned");
                    if failed.is_empty() {
                        tracing::warn!(
                            "could not push `{id}`: {e}; nothing more is pushed in this run"
                        );
                    }
                    failed.push(id);
                }
            }
        });
        self.pending.lock().expect("not poisoned").push(handle);
    }

    /// Waits for every upload [`Self::push_later`] started; returns the ids that failed.
    pub fn finish_pushes(&self) -> Vec<String> {
        let handles: Vec<_> = std::mem::take(&mut *self.pending.lock().expect("not poisoned"));
        self.block(async {
            for h in handles {
                let _ = h.await;
            }
        });
        std::mem::take(&mut *self.failed_pushes.lock().expect("not poisoned"))
    }
}

enum Download {
    /// Not on the remote.
    Missing,
    /// There, but not the recorded bytes: why.
    Corrupt(String),
    Failed(RemoteError),
}

/// Whether the local store holds `out` with its recorded size (a stat, as the engine checks).
fn local_object_ok(store: &Store, out: &OutputRef) -> bool {
    std::fs::metadata(store.object_path(&out.digest)).is_ok_and(|m| m.len() == out.size)
}

/// The remote as a push uses it (see [`RemoteCache`]'s fields).
struct Target {
    objects: Arc<dyn ObjectStore>,
    prefix: Path,
    shown: String,
    put_if_absent: bool,
    multipart: bool,
    multipart_threshold: u64,
}

/// [`RemoteCache::push_record`]'s work, owning what it uses so that it can run in the
/// background.
async fn push_async(
    target: Target,
    store: Store,
    record: NodeRecord,
    suspect: Arc<Mutex<BTreeSet<ObjectDigest>>>,
) -> Result<Pushed, RemoteError> {
    let Target {
        objects,
        prefix,
        shown,
        ..
    } = &target;
    let id = &record.id;
    let key = record.key;
    let io = |what: String, e: &dyn std::fmt::Display| RemoteError::Io {
        remote: shown.clone(),
        what,
        reason: e.to_string(),
    };
    let record_path = prefix.child("records").child(format!("{key}.json"));
    let repair: BTreeSet<ObjectDigest> = {
        let suspect = suspect.lock().expect("not poisoned");
        record
            .outputs
            .values()
            .map(|o| o.digest)
            .filter(|d| suspect.contains(d))
            .collect()
    };
    match objects.head(&record_path).await {
        Ok(_) if repair.is_empty() => return Ok(Pushed::default()),
        Ok(_) => {}
        Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(io(format!("record of `{id}` (key {key})"), &e)),
    }
    let mut pushed = Pushed::default();
    let mut seen = BTreeSet::new();
    for (name, out) in &record.outputs {
        if !seen.insert(out.digest) {
            continue;
        }
        let what = || {
            format!(
                "output `{name}` of `{id}` (object {}, key {key})",
                out.digest
            )
        };
        let path = prefix.child("objects").child(out.digest.to_hex());
        match objects.head(&path).await {
            Ok(meta) if meta.size == out.size && !repair.contains(&out.digest) => continue,
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(io(what(), &e)),
        }
        let local = store.object_path(&out.digest);
        // A local object damaged since it was committed is not spread: the upload checks it.
        match upload::put_object(
            objects.as_ref(),
            &path,
            &local,
            out,
            target.multipart,
            target.multipart_threshold,
        )
        .await
        {
            Ok(upload::Uploaded::Whole) => {}
            Ok(upload::Uploaded::Parts(n)) => {
                tracing::debug!("uploaded {} in {n} parts", what());
            }
            // Another machine uploading the same object at once can make this upload fail
            // (on Azure, committing its block list discards this one's blocks). The object is
            // named by its digest, so one of the recorded size that is there now is this one
            // (and checked on every download).
            Err(upload::UploadError::Remote(e))
                if !repair.contains(&out.digest)
                    && objects
                        .head(&path)
                        .await
                        .is_ok_and(|meta| meta.size == out.size) =>
            {
                tracing::debug!("{} was uploaded meanwhile by another push ({e})", what());
                continue;
            }
            Err(e) => return Err(io(what(), &e)),
        }
        pushed.bytes += out.size;
        pushed.objects += 1;
        if repair.contains(&out.digest) {
            tracing::warn!("replaced the corrupt {} on {shown}", what());
            suspect.lock().expect("not poisoned").remove(&out.digest);
        }
    }
    // Test hook: a pause between the objects and the record (`sleep<S>:push-record:<id>`).
    let cancel = tokio_util::sync::CancellationToken::new();
    crate::fault::inject(&format!("push-record:{id}"), &cancel)
        .map_err(|e| io(what_record(id, key), &e))?;
    let json = serde_json::to_vec_pretty(&record).expect("records serialise");
    if !target.put_if_absent {
        // Looked up again just before: a record put meanwhile is kept, not written over.
        match objects.head(&record_path).await {
            Ok(_) => return Ok(pushed),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(io(what_record(id, key), &e)),
        }
        objects
            .put(&record_path, PutPayload::from(json))
            .await
            .map_err(|e| io(what_record(id, key), &e))?;
        pushed.record = true;
        return Ok(pushed);
    }
    let opts = PutOptions {
        mode: PutMode::Create,
        ..PutOptions::default()
    };
    match objects
        .put_opts(&record_path, PutPayload::from(json), opts)
        .await
    {
        Ok(_) => pushed.record = true,
        // Pushed meanwhile by another machine: the same key, so a record as good as this one.
        Err(object_store::Error::AlreadyExists { .. }) => {}
        Err(e) => return Err(io(what_record(id, key), &e)),
    }
    Ok(pushed)
}

fn what_record(id: &str, key: NodeKey) -> String {
    format!("record of `{id}` (key {key})")
}

/// Where a node's record was found by [`resolve`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// In the local store, with its outputs.
    Local,
    /// On the remote only (or pulled from it, when pulling).
    Remote,
}

/// How many remote lookups [`resolve`] keeps in flight.
const RESOLVE_LOOKUPS: usize = 8;

/// Walks the selected nodes in topological order, computing each key from its inputs' records,
/// local or remote: what a run would find. With `pull`, remote hits are downloaded and committed
/// locally on the way; without it only records are read (for `status`). A node whose inputs are
/// not all found is not looked up (its key depends on outputs not computed yet).
///
/// Nodes are taken a depth at a time (a node's depth is one more than its deepest input's), and
/// the remote lookups of one depth run [`RESOLVE_LOOKUPS`] at a time, so a study of thousands of
/// nodes costs about depth x (width / 8) round trips, not one per node.
#[allow(clippy::too_many_arguments)]
pub fn resolve(
    remote: &RemoteCache,
    study: &Study,
    graph: &Graph,
    store: &Store,
    ctx: &dyn KeyContext,
    data_digest: &crate::digest::DataDigest,
    selected: &BTreeSet<usize>,
    pull: bool,
) -> Vec<Option<(NodeRecord, Found)>> {
    let mut out: Vec<Option<(NodeRecord, Found)>> = vec![None; study.nodes.len()];
    let unreachable = std::sync::atomic::AtomicBool::new(false);
    for level in depths(graph, selected) {
        // Keys and local records first; what is missing here is looked up remotely below.
        let mut missing: Vec<(usize, NodeKey)> = Vec::new();
        for i in level {
            let inputs: Option<Vec<&NodeRecord>> = graph
                .inputs(i)
                .map(|j| out[j].as_ref().map(|(r, _)| r))
                .collect();
            let Some(inputs) = inputs else { continue };
            let node = &study.nodes[i];
            let (key, _) = node_key(
                study,
                node,
                &inputs,
                ctx.algorithm_version(node.kind),
                data_digest,
            );
            match store
                .read_record(&key)
                .ok()
                .flatten()
                .filter(|r| store.outputs_present(r))
            {
                Some(r) => out[i] = Some((r, Found::Local)),
                None => missing.push((i, key)),
            }
        }
        let lookup = |i: usize, key: &NodeKey| -> Option<NodeRecord> {
            use std::sync::atomic::Ordering::Relaxed;
            if pull {
                return match remote.fetch(store, &study.name, &study.nodes[i].id, key) {
                    Fetched::Hit(r) => Some(*r),
                    Fetched::Miss => None,
                };
            }
            if unreachable.load(Relaxed) {
                return None;
            }
            match remote.record(key) {
                Ok(r) => r,
                Err(e) => {
                    if !unreachable.swap(true, Relaxed) {
                        tracing::warn!("{e}; nothing more is looked up there");
                    }
                    None
                }
            }
        };
        let next = std::sync::atomic::AtomicUsize::new(0);
        let found: Vec<(usize, NodeRecord)> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..RESOLVE_LOOKUPS.min(missing.len()))
                .map(|_| {
                    scope.spawn(|| {
                        let mut hits = Vec::new();
                        loop {
                            let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some((i, key)) = missing.get(n) else {
                                break hits;
                            };
                            if let Some(r) = lookup(*i, key) {
                                hits.push((*i, r));
                            }
                        }
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().expect("a remote lookup panicked"))
                .collect()
        });
        for (i, r) in found {
            out[i] = Some((r, Found::Remote));
        }
    }
    out
}

/// The selected nodes grouped by depth (0: no selected input), each group in topological order.
pub(crate) fn depths(graph: &Graph, selected: &BTreeSet<usize>) -> Vec<Vec<usize>> {
    let mut depth: BTreeMap<usize, usize> = BTreeMap::new();
    let mut levels: Vec<Vec<usize>> = Vec::new();
    for &i in graph.topo_order() {
        if !selected.contains(&i) {
            continue;
        }
        let d = graph
            .inputs(i)
            .filter_map(|j| depth.get(&j).map(|d| d + 1))
            .max()
            .unwrap_or(0);
        depth.insert(i, d);
        if levels.len() <= d {
            levels.resize_with(d + 1, Vec::new);
        }
        levels[d].push(i);
    }
    levels
}
