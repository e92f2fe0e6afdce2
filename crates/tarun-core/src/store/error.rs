//! Store errors: every one names the path it concerns.

use camino::Utf8PathBuf;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum StoreError {
    /// The cause is in the message (not only in the error's source chain) because job failures
    /// and statuses show errors on one line: "No space left on device" must not be lost there.
    #[error("store I/O failed on `{path}`: {error}")]
    #[diagnostic(code(tarun::store::io))]
    Io {
        path: Utf8PathBuf,
        error: std::io::Error,
    },
    #[error(
        "store `{root}` has format version {found} (in `{path}`), this tarun reads version \
         {supported}; nothing was changed"
    )]
    #[diagnostic(
        code(tarun::store::version),
        help("use a tarun that reads this version, or point --store at another directory")
    )]
    FormatVersion {
        root: Utf8PathBuf,
        path: Utf8PathBuf,
        found: String,
        supported: u32,
    },
    #[error("node record `{path}` is corrupt: {reason}")]
    #[diagnostic(code(tarun::store::corrupt_record))]
    CorruptRecord { path: Utf8PathBuf, reason: String },
    #[error("object `{path}` is corrupt: expected digest {expected}, found {found}")]
    #[diagnostic(code(tarun::store::corrupt_object))]
    CorruptObject {
        path: Utf8PathBuf,
        expected: String,
        found: String,
    },
    #[error("object `{path}` is missing")]
    #[diagnostic(code(tarun::store::missing_object))]
    MissingObject { path: Utf8PathBuf },
    #[error("job output `{name}` is not a plain file in the job's output directory")]
    #[diagnostic(code(tarun::store::bad_output))]
    BadOutput { name: String },
}

impl StoreError {
    pub(crate) fn io(path: impl Into<Utf8PathBuf>) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.into();
        move |error| StoreError::Io { path, error }
    }
}
