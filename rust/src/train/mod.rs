//! Training vocabularies: count the pieces of a corpus once (`count`), then merge
//! (`merges`, shared by byte-level BPE and WordPiece).

pub mod bpe;
pub mod count;
pub mod merges;
pub mod unigram;
pub mod wordpiece;

pub use self::count::PieceCounts;
