//! ferrotok: fast, exact tokenizers. The core knows nothing of Python; the binding layer
//! (`py`, behind the `python` feature) is the only place that does.

pub mod batch;
pub mod bert;
pub mod bpe;
pub(crate) mod cache;
pub mod charbpe;
pub mod error;
pub mod hf;
pub mod hf_bpe;
pub mod hf_unigram;
pub(crate) mod huge;
pub mod metaspace;
pub mod pipeline;
pub mod pretok;
pub mod registry;
pub mod special;
pub mod spm;
pub mod train;
pub mod trie;
pub mod vocab;

#[cfg(feature = "python")]
mod py;

pub use bpe::Bpe;
pub use error::{Error, Result};
pub use pipeline::Pipeline;
pub use pretok::Pretokenizer;
pub use special::{SpecialSet, SpecialTokens};
pub use spm::SentencePiece;
pub use vocab::{Rank, Vocab};
