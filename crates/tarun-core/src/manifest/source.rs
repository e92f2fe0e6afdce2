//! The texts a manifest is read from (the file, its includes, each `--set` argument) and the
//! byte spans that point into them.
//!
//! Every value keeps an [`Origin`] (which text, which bytes) from parsing to validation, so an error
//! about a value merged in from an include or a `--set` points at the place it was written.

use std::ops::Range;
use std::sync::Arc;

use camino::{Utf8Path, Utf8PathBuf};
use miette::{NamedSource, SourceSpan};

use super::model::Location;

/// Index of a text in [`Sources`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct SourceId(usize);

/// Where a key or value was written: a text and a byte range in it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Origin {
    pub(crate) source: SourceId,
    pub(crate) span: Range<usize>,
}

impl Origin {
    pub(crate) fn new(source: SourceId, span: Range<usize>) -> Self {
        Origin { source, span }
    }

    /// A sub-range of this origin, `range` relative to its start (for parts of a string, such as
    /// one `[axis=value]` of a reference). Only meaningful when the origin is a plain string whose
    /// bytes are written verbatim; callers check that with [`Sources::is_verbatim`].
    pub(crate) fn sub(&self, range: Range<usize>) -> Origin {
        let start = self.span.start + range.start;
        Origin::new(
            self.source,
            start..(self.span.start + range.end).min(self.span.end),
        )
    }
}

/// One text: a manifest file, an included file or a `--set` argument.
#[derive(Debug)]
struct SourceText {
    /// The name errors show: a path, or `--set` for an override.
    name: String,
    text: Arc<str>,
    /// Byte offset of the start of each line, for line/column conversion.
    line_starts: Vec<usize>,
    /// The file on disk, when the text is one.
    path: Option<Utf8PathBuf>,
}

/// All the texts one load has read, indexed by [`SourceId`].
#[derive(Debug, Default)]
pub(crate) struct Sources {
    texts: Vec<SourceText>,
}

impl Sources {
    /// Registers a text and returns its id.
    pub(crate) fn add(&mut self, name: &str, text: &str, path: Option<&Utf8Path>) -> SourceId {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        self.texts.push(SourceText {
            name: name.to_owned(),
            text: Arc::from(text),
            line_starts,
            path: path.map(Utf8Path::to_path_buf),
        });
        SourceId(self.texts.len() - 1)
    }

    /// The first text added: the manifest itself.
    pub(crate) fn first(&self) -> SourceId {
        SourceId(0)
    }

    pub(crate) fn text(&self, id: SourceId) -> &str {
        &self.texts[id.0].text
    }

    /// The files read from disk, in the order they were read.
    pub(crate) fn files(&self) -> Vec<Utf8PathBuf> {
        self.texts.iter().filter_map(|t| t.path.clone()).collect()
    }

    /// blake3 over the files read from disk, in order, each as its length (8 bytes, little
    /// endian) then its text: the same files give the same digest wherever they are.
    pub(crate) fn digest(&self) -> String {
        let mut hasher = blake3::Hasher::new();
        for t in self.texts.iter().filter(|t| t.path.is_some()) {
            hasher.update(&(t.text.len() as u64).to_le_bytes());
            hasher.update(t.text.as_bytes());
        }
        hasher.finalize().to_hex().to_string()
    }

    /// The text as a miette source, cheap to clone into every error.
    pub(crate) fn named(&self, id: SourceId) -> NamedSource<Arc<str>> {
        let t = &self.texts[id.0];
        NamedSource::new(&t.name, Arc::clone(&t.text)).with_language("TOML")
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub(crate) fn location(&self, origin: &Origin) -> Location {
        let t = &self.texts[origin.source.0];
        let offset = origin.span.start.min(t.text.len());
        let line = t.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = t.line_starts[line];
        // Offsets from the TOML parser are on character boundaries; be safe anyway.
        let column = t
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count())
            + 1;
        Location {
            file: Utf8PathBuf::from(&t.name),
            line: line + 1,
            column,
        }
    }

    /// The span of an origin, clamped to its text, for miette.
    pub(crate) fn span(&self, origin: &Origin) -> SourceSpan {
        let len = self.texts[origin.source.0].text.len();
        let start = origin.span.start.min(len);
        let end = origin.span.end.clamp(start, len);
        (start, end - start).into()
    }

    /// Whether the bytes of `origin` are a quoted string whose content is `content` verbatim
    /// (no escapes), so that offsets into `content` are offsets into the text after the quote.
    pub(crate) fn is_verbatim(&self, origin: &Origin, content: &str) -> bool {
        let text = self.text(origin.source);
        let written = text.get(origin.span.clone()).unwrap_or("");
        written.len() == content.len() + 2 && written.get(1..written.len() - 1) == Some(content)
    }
}

/// Joins `relative` onto the folder of `base` and removes `.` and `..` components lexically, so
/// `experiments/../configs/r.toml` is shown (and compared) as `configs/r.toml`.
pub(crate) fn join_normalized(base: &Utf8Path, relative: &str) -> Utf8PathBuf {
    let joined = base.parent().unwrap_or(Utf8Path::new("")).join(relative);
    let mut out = Utf8PathBuf::new();
    for part in joined.components() {
        match part {
            camino::Utf8Component::CurDir => {}
            camino::Utf8Component::ParentDir
                if matches!(
                    out.components().next_back(),
                    Some(camino::Utf8Component::Normal(_))
                ) =>
            {
                out.pop();
            }
            other => out.push(other.as_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based_in_characters() {
        let mut sources = Sources::default();
        let id = sources.add("a.toml", "x = 1\né = \"y\"\n", None);
        let loc = sources.location(&Origin::new(id, 10..13));
        assert_eq!((loc.line, loc.column), (2, 4));
        assert_eq!(sources.location(&Origin::new(id, 0..1)).column, 1);
    }

    #[test]
    fn paths_are_normalized_lexically() {
        let p = join_normalized(Utf8Path::new("experiments/x.toml"), "../configs/r.toml");
        assert_eq!(p, "configs/r.toml");
        let p = join_normalized(Utf8Path::new("x.toml"), "../c/r.toml");
        assert_eq!(p, "../c/r.toml");
    }
}
