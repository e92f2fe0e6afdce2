//! Reading a study manifest: TOML files, includes and `--set` overrides in; a validated,
//! expanded [`Study`] out, or every mistake at once as [`ManifestErrors`].
//!
//! The language is specified in `docs/manifest.md`. Loading runs in stages, each keeping the
//! origin (file and byte span) of every value so that errors point where a value was written:
//!
//! 1. `raw`: parse the file and its includes into one spanned tree, apply `--set`;
//! 2. `matrix` and `expand`: read the axes, expand families, substitute `${axis}`, merge
//!    recipes;
//! 3. `validate` against the schemas of `kinds` and `params`, resolving references through
//!    `refs`; then cycles (`study`) and `select`'s expressions against the metrics of the nodes
//!    they read (`scores`).

#[macro_use]
mod choice;
mod error;
mod expand;
pub mod expr;
mod kinds;
mod matrix;
mod model;
pub mod params;
mod raw;
mod refs;
mod scores;
mod source;
mod study;
mod tree;
mod validate;

use camino::Utf8Path;

pub use error::{ErrorKind, ManifestError, ManifestErrors};
pub use expand::MAX_NODES;
pub use model::*;
pub use study::MAX_REFERENCES;

/// Loads the manifest at `path` with its includes, applies `overrides` (`a.b.c=value`, as given
/// to `--set`) and validates it.
pub fn load(path: &Utf8Path, overrides: &[String]) -> Result<Study, ManifestErrors> {
    match raw::read_text(path) {
        Ok(text) => study::build(path, &text, overrides),
        Err(e) => Err(ManifestErrors::new(
            path.to_path_buf(),
            vec![ManifestError::io(path, &e)],
        )),
    }
}

/// Like [`load`], with the manifest's text given. `name` is shown in errors and is the path that
/// includes are relative to.
pub fn parse_str(name: &str, text: &str, overrides: &[String]) -> Result<Study, ManifestErrors> {
    study::build(Utf8Path::new(name), text, overrides)
}
