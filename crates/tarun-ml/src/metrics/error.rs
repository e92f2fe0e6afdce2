//! Errors of the metrics: malformed inputs, never numerical failure.

/// Why a metric could not be computed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MetricsError {
    /// A logits buffer whose length is not a multiple of the class count, or zero classes.
    #[error("logits of length {len} do not split into rows of {classes} classes")]
    RaggedLogits {
        /// Length of the buffer.
        len: usize,
        /// Requested number of classes.
        classes: usize,
    },
    /// Two inputs that must describe the same samples differ in size.
    #[error("{what}: {left} vs {right}")]
    LengthMismatch {
        /// Which inputs.
        what: &'static str,
        /// Size of the first.
        left: usize,
        /// Size of the second.
        right: usize,
    },
    /// A metric over an empty set of samples.
    #[error("{what} is empty")]
    Empty {
        /// Which set.
        what: &'static str,
    },
    /// A label or class index outside `0..classes`.
    #[error("class {class} is out of range for {classes} classes")]
    ClassOutOfRange {
        /// The offending index.
        class: u32,
        /// Number of classes.
        classes: usize,
    },
    /// A score that cannot be ranked (NaN).
    #[error("{what} contains NaN")]
    NotANumber {
        /// Which input.
        what: &'static str,
    },
    /// A parameter outside its valid range.
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
}
