//! The crate's one error type. The binding layer maps each variant to a Python exception.

/// Everything that can go wrong in ferrotok's core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A line of a text file could not be parsed.
    #[error("{origin}, line {line}: {msg}")]
    Parse {
        origin: String,
        line: usize,
        msg: String,
    },
    /// Data that parsed but is not a valid vocabulary or configuration.
    #[error("{origin}: {msg}")]
    Invalid { origin: String, msg: String },
    /// A split pattern that the regex engine rejects.
    #[error("invalid split pattern: {0}")]
    Pattern(String),
    /// The regex engine gave up on the input (only possible with custom patterns).
    #[error("the split pattern failed on the input at byte {pos}: {msg}")]
    Split { pos: usize, msg: String },
    /// An encoding name that is not embedded.
    #[error("unknown encoding {name:?}; the embedded encodings are: {known}")]
    UnknownEncoding { name: String, known: String },
    /// A token id that the vocabulary does not have.
    #[error("token id {id} is not in the vocabulary (n_vocab = {n_vocab})")]
    UnknownId { id: i64, n_vocab: usize },
    /// An error in one text of a batch.
    #[error("texts[{index}]: {source}")]
    InText {
        index: usize,
        #[source]
        source: Box<Error>,
    },
    /// The thread pool could not be started.
    #[error("could not start the thread pool: {0}")]
    Threads(String),
    /// Text contains a special token that the caller did not allow.
    #[error(
        "Encountered text corresponding to disallowed special token {token:?} at character offset {pos}.\n\
         If you want this text to be encoded as a special token, pass it to `allowed_special`, \
         e.g. `allowed_special={{{token:?}, ...}}`.\n\
         If you want this text to be encoded as normal text, disable the check for this token \
         by passing `disallowed_special=(enc.special_tokens_set - {{{token:?}}})`.\n\
         To disable this check for all special tokens, pass `disallowed_special=()`."
    )]
    DisallowedSpecial { token: String, pos: usize },
    /// A tokenizer.json component (normalizer, pre-tokenizer, model, ...) or option that
    /// ferrotok does not implement: refused rather than silently tokenizing differently.
    #[error("{origin}: unsupported {component} {name}; {supported}")]
    Unsupported {
        origin: String,
        component: String,
        name: String,
        supported: String,
    },
    /// Truncation settings that cannot be met (Hugging Face's wording).
    #[error("Truncation error: {0}")]
    Truncation(String),
}

impl Error {
    pub(crate) fn invalid(origin: &str, msg: String) -> Self {
        Error::Invalid {
            origin: origin.to_string(),
            msg,
        }
    }
}

impl Error {
    pub(crate) fn unsupported(origin: &str, component: &str, name: &str, supported: &str) -> Self {
        Error::Unsupported {
            origin: origin.to_string(),
            component: component.to_string(),
            name: name.to_string(),
            supported: supported.to_string(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The bytes of a file, and its path as errors about its content should name it.
pub(crate) fn read_file(path: &std::path::Path) -> Result<(Vec<u8>, String)> {
    let origin = path.display().to_string();
    match std::fs::read(path) {
        Ok(data) => Ok((data, origin)),
        Err(source) => Err(Error::Io {
            path: origin,
            source,
        }),
    }
}
