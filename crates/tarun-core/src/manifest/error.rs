//! Manifest errors: one [`ManifestError`] per mistake, all of them gathered in [`ManifestErrors`].
//!
//! The stages of loading record [`Problem`]s (a kind, an [`Origin`], words); they become miette
//! diagnostics only at the end, when every source text is known, so the stages need not carry
//! the texts around.

use std::fmt;
use std::sync::Arc;

use camino::Utf8PathBuf;
use miette::{Diagnostic, LabeledSpan, NamedSource, SourceCode, SourceSpan};

use super::model::Location;
use super::source::{Origin, Sources};

/// What kind of mistake an error reports. Each has a stable diagnostic code,
/// `tarun::manifest::<snake_case name>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A manifest or include could not be read.
    Io,
    /// The text is not valid TOML.
    Syntax,
    /// A top-level table tarun does not know (`[trian.base]`).
    UnknownTable,
    /// A key the table does not take (`lrr = 0.1`), also one merged in from a recipe.
    UnknownKey,
    /// A value of the wrong type (`lr = "fast"`, `epochs = -1.5`).
    WrongType,
    /// A value of the right type but not allowed (`arch = "resnet50"`, `epochs = 0`, `lr = nan`).
    InvalidValue,
    /// A required key is absent.
    MissingKey,
    /// Keys that cannot go together (`alpha` with `from-select`).
    Conflict,
    /// A reference that is not `NAME` or `NAME[axis=value,...]`.
    BadReference,
    /// A reference that matches no node.
    UnknownNode,
    /// A reference to a node of a kind the key does not take.
    WrongKind,
    /// A reference that must match one node and matches several.
    AmbiguousReference,
    /// Two tables with the same name (names are unique across kinds).
    DuplicateId,
    /// Nodes that depend on each other.
    Cycle,
    /// An axis not in `[matrix]` or not in the node's `for-each`.
    UnknownAxis,
    /// An axis with no values (`class = []`, `linspace` with count 0).
    EmptyAxis,
    /// An axis that is not a list of distinct scalars or a valid `linspace`.
    InvalidAxis,
    /// A `--set` argument that is malformed or names a table that does not exist.
    BadOverride,
    /// A `recipe` that names no `[recipe.*]` table.
    UnknownRecipe,
    /// An include that cannot be read.
    IncludeMissing,
    /// A file that includes itself, directly or not.
    IncludeCycle,
    /// A study that expands to more nodes, or more references, than tarun takes.
    TooLarge,
    /// A `select` expression that reads a metric its `over` nodes do not write.
    UnknownMetric,
}

impl ErrorKind {
    /// The stable diagnostic code.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::Io => "tarun::manifest::io",
            ErrorKind::Syntax => "tarun::manifest::syntax",
            ErrorKind::UnknownTable => "tarun::manifest::unknown_table",
            ErrorKind::UnknownKey => "tarun::manifest::unknown_key",
            ErrorKind::WrongType => "tarun::manifest::wrong_type",
            ErrorKind::InvalidValue => "tarun::manifest::invalid_value",
            ErrorKind::MissingKey => "tarun::manifest::missing_key",
            ErrorKind::Conflict => "tarun::manifest::conflict",
            ErrorKind::BadReference => "tarun::manifest::bad_reference",
            ErrorKind::UnknownNode => "tarun::manifest::unknown_node",
            ErrorKind::WrongKind => "tarun::manifest::wrong_kind",
            ErrorKind::AmbiguousReference => "tarun::manifest::ambiguous_reference",
            ErrorKind::DuplicateId => "tarun::manifest::duplicate_id",
            ErrorKind::Cycle => "tarun::manifest::cycle",
            ErrorKind::UnknownAxis => "tarun::manifest::unknown_axis",
            ErrorKind::EmptyAxis => "tarun::manifest::empty_axis",
            ErrorKind::InvalidAxis => "tarun::manifest::invalid_axis",
            ErrorKind::BadOverride => "tarun::manifest::bad_override",
            ErrorKind::UnknownRecipe => "tarun::manifest::unknown_recipe",
            ErrorKind::IncludeMissing => "tarun::manifest::include_missing",
            ErrorKind::IncludeCycle => "tarun::manifest::include_cycle",
            ErrorKind::TooLarge => "tarun::manifest::too_large",
            ErrorKind::UnknownMetric => "tarun::manifest::unknown_metric",
        }
    }
}

/// A mistake found by one of the stages, not yet tied to its source text.
#[derive(Clone, Debug)]
pub(crate) struct Problem(Box<Details>);

/// Boxed so that `Result<_, Problem>` stays small.
#[derive(Clone, Debug)]
struct Details {
    kind: ErrorKind,
    origin: Option<Origin>,
    message: String,
    label: Option<String>,
    help: Option<String>,
    /// Other places worth showing (the first definition of a duplicate, say).
    notes: Vec<(Origin, String)>,
}

impl Problem {
    pub(crate) fn new(kind: ErrorKind, origin: Option<Origin>, message: impl Into<String>) -> Self {
        Problem(Box::new(Details {
            kind,
            origin,
            message: message.into(),
            label: None,
            help: None,
            notes: Vec::new(),
        }))
    }

    pub(crate) fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    pub(crate) fn origin(&self) -> Option<&Origin> {
        self.0.origin.as_ref()
    }

    pub(crate) fn label(mut self, label: impl Into<String>) -> Self {
        self.0.label = Some(label.into());
        self
    }

    pub(crate) fn help(mut self, help: impl Into<String>) -> Self {
        self.0.help = Some(help.into());
        self
    }

    pub(crate) fn maybe_help(mut self, help: Option<String>) -> Self {
        self.0.help = help.or(self.0.help.take());
        self
    }

    pub(crate) fn note(mut self, origin: Origin, text: impl Into<String>) -> Self {
        self.0.notes.push((origin, text.into()));
        self
    }

    /// Ties the problem to its text. Notes in another text than the main one cannot be labels
    /// (a diagnostic has one source), so they are written into the help instead.
    pub(crate) fn into_error(self, sources: &Sources) -> ManifestError {
        let d = *self.0;
        let Some(origin) = d.origin else {
            return ManifestError {
                kind: d.kind,
                message: d.message,
                help: d.help,
                source_code: None,
                labels: Vec::new(),
                location: None,
            };
        };
        let primary = LabeledSpan::new_primary_with_span(d.label, sources.span(&origin));
        let mut labels = vec![primary];
        let mut help = d.help;
        for (note, text) in d.notes {
            if note.source == origin.source {
                labels.push(LabeledSpan::new_with_span(Some(text), sources.span(&note)));
            } else {
                let line = format!("{text} at {}", sources.location(&note));
                help = Some(help.map_or(line.clone(), |h| format!("{h}\n{line}")));
            }
        }
        ManifestError {
            kind: d.kind,
            message: d.message,
            help,
            source_code: Some(sources.named(origin.source)),
            labels,
            location: Some(sources.location(&origin)),
        }
    }
}

/// One mistake in a manifest, with the place it was written.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ManifestError {
    kind: ErrorKind,
    message: String,
    help: Option<String>,
    source_code: Option<NamedSource<Arc<str>>>,
    /// The primary label first.
    labels: Vec<LabeledSpan>,
    location: Option<Location>,
}

impl ManifestError {
    /// A manifest that cannot be read: there is no text to point into.
    pub(crate) fn io(path: &camino::Utf8Path, error: &std::io::Error) -> Self {
        ManifestError {
            kind: ErrorKind::Io,
            message: format!("cannot read manifest `{path}`: {error}"),
            help: None,
            source_code: None,
            labels: Vec::new(),
            location: None,
        }
    }

    /// What kind of mistake this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Where it was written (file, 1-based line and column); `None` only for a manifest that
    /// could not be read at all.
    pub fn location(&self) -> Option<Location> {
        self.location.clone()
    }

    /// The primary span, for tests.
    pub fn span(&self) -> Option<SourceSpan> {
        self.labels.first().map(|l| *l.inner())
    }
}

impl Diagnostic for ManifestError {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.kind.code()))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source_code.as_ref().map(|s| s as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.labels.is_empty() {
            return None;
        }
        Some(Box::new(self.labels.iter().cloned()))
    }
}

/// Every mistake found in a manifest, its includes and its `--set` arguments.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("manifest `{path}` has {} error{}", errors.len(), if errors.len() == 1 { "" } else { "s" })]
#[diagnostic(code(tarun::manifest::invalid))]
pub struct ManifestErrors {
    path: Utf8PathBuf,
    #[related]
    errors: Vec<ManifestError>,
}

impl ManifestErrors {
    pub(crate) fn new(path: Utf8PathBuf, errors: Vec<ManifestError>) -> Self {
        ManifestErrors { path, errors }
    }

    /// The manifest as given.
    pub fn path(&self) -> &camino::Utf8Path {
        &self.path
    }

    /// The mistakes, in the order they were found (files first, then nodes in manifest order).
    pub fn errors(&self) -> &[ManifestError] {
        &self.errors
    }
}

/// "did you mean `x`?" for the closest of `candidates` to `name`, if any is close.
pub(crate) fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(name, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

/// "did you mean ...?" if something is close, else "expected one of `a`, `b`".
pub(crate) fn suggest(name: &str, candidates: &[&str]) -> Option<String> {
    did_you_mean(name, candidates.iter().copied()).or_else(|| one_of(candidates))
}

/// "expected one of `a`, `b`, `c`", or `None` for no candidates.
pub(crate) fn one_of(candidates: &[&str]) -> Option<String> {
    if candidates.is_empty() {
        return None;
    }
    let list: Vec<String> = candidates.iter().map(|c| format!("`{c}`")).collect();
    Some(format!("expected one of {}", list.join(", ")))
}
