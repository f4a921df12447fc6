//! The encodings embedded in the crate: OpenAI's official vocabularies, split patterns and
//! special tokens, usable offline with no file on disk.

use crate::bpe::Bpe;
use crate::error::{Error, Result};
use crate::vocab::{Rank, Vocab};

/// GPT-2 / r50k_base split pattern (tiktoken's possessive form of the original).
pub const R50K_PATTERN: &str =
    r"'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s";
/// cl100k_base split pattern.
pub const CL100K_PATTERN: &str = r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s";
/// o200k_base split pattern.
pub const O200K_PATTERN: &str = concat!(
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"|\p{N}{1,3}",
    r"| ?[^\s\p{L}\p{N}]+[\r\n/]*",
    r"|\s*[\r\n]+",
    r"|\s+(?!\S)",
    r"|\s+",
);

/// One embedded encoding.
pub struct Embedded {
    pub name: &'static str,
    pub pattern: &'static str,
    pub specials: &'static [(&'static str, Rank)],
    data: &'static [u8],
}

const ENDOFTEXT: &str = "<|endoftext|>";

/// Every embedded encoding; `r50k_base` shares `gpt2`'s data.
pub const EMBEDDED: &[Embedded] = &[
    Embedded {
        name: "gpt2",
        pattern: R50K_PATTERN,
        specials: &[(ENDOFTEXT, 50256)],
        data: include_bytes!("../data/gpt2.ftok"),
    },
    Embedded {
        name: "r50k_base",
        pattern: R50K_PATTERN,
        specials: &[(ENDOFTEXT, 50256)],
        data: include_bytes!("../data/gpt2.ftok"),
    },
    Embedded {
        name: "cl100k_base",
        pattern: CL100K_PATTERN,
        specials: &[
            (ENDOFTEXT, 100257),
            ("<|fim_prefix|>", 100258),
            ("<|fim_middle|>", 100259),
            ("<|fim_suffix|>", 100260),
            ("<|endofprompt|>", 100276),
        ],
        data: include_bytes!("../data/cl100k_base.ftok"),
    },
    Embedded {
        name: "o200k_base",
        pattern: O200K_PATTERN,
        specials: &[(ENDOFTEXT, 199999), ("<|endofprompt|>", 200018)],
        data: include_bytes!("../data/o200k_base.ftok"),
    },
];

/// Names of the embedded encodings.
pub fn names() -> impl Iterator<Item = &'static str> {
    EMBEDDED.iter().map(|e| e.name)
}

/// Loads embedded encoding `name`; an unknown name is an error listing the known ones.
pub fn load(name: &str) -> Result<Bpe> {
    let e = EMBEDDED
        .iter()
        .find(|e| e.name == name)
        .ok_or_else(|| Error::UnknownEncoding {
            name: name.to_string(),
            known: names().collect::<Vec<_>>().join(", "),
        })?;
    let vocab = Vocab::from_static_compact(e.data, e.name)?;
    let specials = e
        .specials
        .iter()
        .map(|&(t, id)| (t.to_string(), id))
        .collect();
    Bpe::new(vocab, e.pattern, specials, e.name)
}
