//! The normalizer and pre-tokenizer of `tokenizer.json` files converted from SentencePiece
//! models: `Prepend` / `Replace` normalizers (legacy Llama files) and the `Metaspace`
//! pre-tokenizer (spaces become `▁`, one is prepended, words optionally split before each
//! `▁`), with Hugging Face's alignments: an inserted character belongs to the original
//! character it was inserted before, a replacement to the character it replaces.

use crate::bert::WordBuf;

/// When the `Metaspace` pre-tokenizer prepends its replacement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrependScheme {
    /// To every section (text between added tokens) that does not start with it.
    Always,
    /// Only to the section at the start of the text.
    First,
    Never,
}

/// One normalizer step.
#[derive(Clone, Debug)]
pub enum Step {
    /// Prepends the string to a non-empty section.
    Prepend(String),
    /// Replaces each occurrence of a character with a string.
    Replace(char, String),
}

/// The `Metaspace` pre-tokenizer.
#[derive(Clone, Copy, Debug)]
pub struct Metaspace {
    pub replacement: char,
    pub prepend: PrependScheme,
    pub split: bool,
}

/// The normalizer steps and the optional `Metaspace` pre-tokenizer, applied to each section.
#[derive(Clone, Debug)]
pub struct MetaspaceSplitter {
    steps: Vec<Step>,
    pre: Option<Metaspace>,
}

impl MetaspaceSplitter {
    pub fn new(steps: Vec<Step>, pre: Option<Metaspace>) -> Self {
        MetaspaceSplitter { steps, pre }
    }

    /// Calls `on_word` with each word of `text` (a section whose first character is original
    /// character `char_base`), its bytes aligned to original characters; returns the number of
    /// characters of `text`.
    pub fn split<E>(
        &self,
        text: &str,
        char_base: u32,
        buf: &mut WordBuf,
        on_word: &mut dyn FnMut(&WordBuf) -> Result<(), E>,
    ) -> Result<u32, E> {
        buf.word.clear();
        buf.align.clear();
        let mut ci = char_base;
        for c in text.chars() {
            push(buf, c, ci);
            ci += 1;
        }
        let chars = ci - char_base;
        for step in &self.steps {
            match step {
                Step::Prepend(s) => prepend(buf, s),
                Step::Replace(from, to) => replace(buf, *from, to),
            }
        }
        if let Some(m) = &self.pre {
            let mut rep = [0u8; 4];
            let rep: &str = m.replacement.encode_utf8(&mut rep);
            replace(buf, ' ', rep);
            let prepend_here = match m.prepend {
                PrependScheme::Always => true,
                PrependScheme::First => char_base == 0,
                PrependScheme::Never => false,
            };
            if prepend_here && !buf.word.starts_with(m.replacement) {
                prepend(buf, rep);
            }
            if m.split {
                // MergedWithNext: each replacement starts a new word
                let whole = std::mem::take(buf);
                let mut start = 0;
                let cuts = whole
                    .word
                    .match_indices(m.replacement)
                    .map(|(p, _)| p)
                    .chain(std::iter::once(whole.word.len()));
                for p in cuts {
                    if p > start {
                        buf.word.clear();
                        buf.word.push_str(&whole.word[start..p]);
                        buf.align.clear();
                        buf.align.extend_from_slice(&whole.align[start..p]);
                        on_word(buf)?;
                    }
                    start = p;
                }
                *buf = whole;
                return Ok(chars);
            }
        }
        if !buf.word.is_empty() {
            on_word(buf)?;
        }
        Ok(chars)
    }
}

fn push(buf: &mut WordBuf, c: char, ci: u32) {
    buf.word.push(c);
    buf.align.extend(std::iter::repeat_n(ci, c.len_utf8()));
}

/// HF's `NormalizedString::prepend`: nothing on an empty string; otherwise the new characters
/// share the first character's alignment.
fn prepend(buf: &mut WordBuf, s: &str) {
    let Some(&first) = buf.align.first() else {
        return;
    };
    buf.word.insert_str(0, s);
    buf.align.splice(0..0, std::iter::repeat_n(first, s.len()));
}

fn replace(buf: &mut WordBuf, from: char, to: &str) {
    if !buf.word.contains(from) {
        return;
    }
    let old = std::mem::take(buf);
    for (i, c) in old.word.char_indices() {
        if c == from {
            buf.word.push_str(to);
            buf.align
                .extend(std::iter::repeat_n(old.align[i], to.len()));
        } else {
            buf.word.push(c);
            buf.align.extend_from_slice(&old.align[i..i + c.len_utf8()]);
        }
    }
}
