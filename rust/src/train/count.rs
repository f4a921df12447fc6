//! Counting pre-tokenized pieces: the first pass of every trainer.
//!
//! Only the distinct pieces and their counts are kept, never the text: documents arrive in
//! batches (from Python) or as files streamed in blocks, each batch is split across the
//! rayon pool, every task counts into its own map of borrowed `&str` keys, and the task maps
//! are folded into the owned total. Memory is therefore O(distinct pieces), whatever the
//! size of the corpus.

use std::io::Read;
use std::path::Path;

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use crate::error::{Error, Result};
use crate::pretok::{safe_cut, Pretokenizer};

/// Bytes read from a file at a time.
const BLOCK: usize = 8 << 20;
/// Target size of the pieces of a block that are counted in parallel.
const SPAN: usize = 256 << 10;

/// Distinct pieces and how often each occurred.
#[derive(Default, Debug)]
pub struct PieceCounts {
    counts: FxHashMap<Box<str>, u64>,
    /// Bytes of text counted so far.
    pub bytes: u64,
}

impl PieceCounts {
    /// An empty count.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of distinct pieces.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// The pieces and their counts, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> + '_ {
        self.counts.iter().map(|(k, &v)| (&**k, v))
    }

    /// Adds one occurrence count for `piece` (used by trainers that split text themselves).
    pub fn add(&mut self, piece: &str, n: u64) {
        bump(&mut self.counts, piece, n);
    }

    fn absorb(&mut self, local: FxHashMap<&str, u64>) {
        self.counts.reserve(local.len() / 4);
        for (piece, n) in local {
            self.add(piece, n);
        }
    }

    /// Counts the pieces `split` makes of each text; texts are independent documents (no piece
    /// spans two of them). Runs on the current rayon pool.
    pub fn add_texts<S: AsRef<str> + Sync>(
        &mut self,
        texts: &[S],
        split: &(impl for<'t> Fn(&'t str, &mut dyn FnMut(&'t str)) -> Result<()> + Sync),
    ) -> Result<()> {
        let local = texts
            .par_iter()
            .enumerate()
            .try_fold(FxHashMap::<&str, u64>::default, |mut m, (i, t)| {
                split(t.as_ref(), &mut |p| *m.entry(p).or_insert(0) += 1).map_err(|e| {
                    Error::InText {
                        index: i,
                        source: Box::new(e),
                    }
                })?;
                Ok(m)
            })
            .try_reduce(FxHashMap::default, |a, b| Ok(merge_maps(a, b)))?;
        self.bytes += texts.iter().map(|t| t.as_ref().len() as u64).sum::<u64>();
        self.absorb(local);
        Ok(())
    }

    /// Counts words that `split` builds (normalized, so not slices of the text) in each text.
    pub fn add_texts_owned<S: AsRef<str> + Sync>(
        &mut self,
        texts: &[S],
        split: &(impl Fn(&str, &mut dyn FnMut(&str)) + Sync),
    ) {
        let local = count_owned(texts.iter().map(|t| t.as_ref()).collect(), split);
        self.bytes += texts.iter().map(|t| t.as_ref().len() as u64).sum::<u64>();
        self.absorb_owned(local);
    }

    fn absorb_owned(&mut self, local: FxHashMap<Box<str>, u64>) {
        if self.counts.is_empty() {
            self.counts = local;
            return;
        }
        for (piece, n) in local {
            *self.counts.entry(piece).or_insert(0) += n;
        }
    }

    /// Counts the pieces of a UTF-8 file, read in blocks so that memory does not grow with
    /// the file.
    ///
    /// With one of the official split patterns the file is cut at [`safe_cut`] points, each
    /// span scanned with one character of look-ahead: the counts are exactly those of the whole
    /// file scanned at once. Any other pattern gives no such guarantee, so the file is scanned
    /// whole.
    pub fn add_file(&mut self, path: &Path, pretok: &Pretokenizer) -> Result<()> {
        if !pretok.cuts_are_safe() {
            let (data, origin) = crate::error::read_file(path)?;
            let text = utf8(&data, 0, &origin)?;
            return self.add_texts(&[text], &|t, f| pretok.for_each_piece(t, f));
        }
        for_each_block(path, |text, spans| {
            let local = spans
                .par_iter()
                .fold(FxHashMap::<&str, u64>::default, |mut m, &(s, e)| {
                    // `text[e]` is an ASCII letter (or `e` is the end of the text).
                    let scan = &text[s..(e + 1).min(text.len())];
                    pretok
                        .for_each_piece(scan, |p| {
                            let at = p.as_ptr() as usize - scan.as_ptr() as usize;
                            if s + at < e {
                                *m.entry(p).or_insert(0) += 1;
                            }
                        })
                        .expect("official scanners cannot fail");
                    m
                })
                .reduce(FxHashMap::default, merge_maps);
            self.absorb(local);
            self.bytes += spans.last().map_or(0, |&(_, e)| e as u64);
        })
    }

    /// Counts the words `split` builds from a UTF-8 file, streamed in blocks cut after a
    /// newline: `split` must treat a newline as the end of a word (BERT's splitter does).
    pub fn add_file_owned(
        &mut self,
        path: &Path,
        split: &(impl Fn(&str, &mut dyn FnMut(&str)) + Sync),
    ) -> Result<()> {
        for_each_block(path, |text, spans| {
            let local = count_owned(spans.iter().map(|&(s, e)| &text[s..e]).collect(), split);
            self.absorb_owned(local);
            self.bytes += spans.last().map_or(0, |&(_, e)| e as u64);
        })
    }
}

fn count_owned(
    texts: Vec<&str>,
    split: &(impl Fn(&str, &mut dyn FnMut(&str)) + Sync),
) -> FxHashMap<Box<str>, u64> {
    texts
        .par_iter()
        .fold(FxHashMap::default, |mut m, t| {
            split(t, &mut |w| bump(&mut m, w, 1));
            m
        })
        .reduce(FxHashMap::default, merge_maps)
}

/// Adds `n` to the count of `word`, allocating its key only the first time.
fn bump(m: &mut FxHashMap<Box<str>, u64>, word: &str, n: u64) {
    match m.get_mut(word) {
        Some(c) => *c += n,
        None => {
            m.insert(word.into(), n);
        }
    }
}

/// Reads a UTF-8 file in blocks and calls `f(text, spans)` for each: `spans` are consecutive
/// `(start, end)` ranges of `text` that end where the next byte is an ASCII letter following
/// a `\n` (or at the end of the file); `text` holds one byte past the last span when there is
/// one, for look-ahead.
fn for_each_block(path: &Path, mut f: impl FnMut(&str, &[(usize, usize)])) -> Result<()> {
    let origin = path.display().to_string();
    let io = |source| Error::Io {
        path: origin.clone(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut buf: Vec<u8> = Vec::with_capacity(BLOCK + SPAN);
    let mut offset = 0u64; // file offset of buf[0], for error messages
    let mut eof = false;
    while !eof || !buf.is_empty() {
        if !eof {
            let want = BLOCK.saturating_sub(buf.len()).max(SPAN);
            let n = (&mut file)
                .take(want as u64)
                .read_to_end(&mut buf)
                .map_err(io)?;
            eof = n == 0;
        }
        let mut spans = Vec::new();
        let mut start = 0;
        while start + SPAN < buf.len() {
            match safe_cut(&buf, start + SPAN) {
                Some(c) => {
                    spans.push((start, c));
                    start = c;
                }
                None => break,
            }
        }
        if eof && start < buf.len() {
            spans.push((start, buf.len()));
            start = buf.len();
        }
        if spans.is_empty() {
            continue; // no cut point yet (a long line): read more
        }
        let text = utf8(&buf[..(start + 1).min(buf.len())], offset, &origin)?;
        f(text, &spans);
        offset += start as u64;
        buf.drain(..start);
    }
    Ok(())
}

/// The sum of two counts, folding the smaller map into the larger.
fn merge_maps<K: std::hash::Hash + Eq>(
    mut a: FxHashMap<K, u64>,
    mut b: FxHashMap<K, u64>,
) -> FxHashMap<K, u64> {
    if a.len() < b.len() {
        std::mem::swap(&mut a, &mut b);
    }
    for (k, v) in b {
        *a.entry(k).or_insert(0) += v;
    }
    a
}

fn utf8<'a>(bytes: &'a [u8], offset: u64, origin: &str) -> Result<&'a str> {
    std::str::from_utf8(bytes).map_err(|e| {
        Error::invalid(
            origin,
            format!(
                "not UTF-8 at byte {}: training reads text files",
                offset + e.valid_up_to() as u64
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{CL100K_PATTERN, O200K_PATTERN, R50K_PATTERN};

    fn whole(text: &str, pretok: &Pretokenizer) -> Vec<(String, u64)> {
        let mut c = PieceCounts::new();
        c.add_texts(&[text], &|t, f| pretok.for_each_piece(t, f))
            .unwrap();
        sorted(&c)
    }

    fn sorted(c: &PieceCounts) -> Vec<(String, u64)> {
        let mut v: Vec<_> = c.iter().map(|(k, n)| (k.to_string(), n)).collect();
        v.sort();
        v
    }

    #[test]
    fn file_blocks_count_like_the_whole_text() {
        // Lines that end in whitespace, blank lines and CRLF around the cut points: the
        // look-aheads of all three patterns are exercised at every span end.
        let mut text = String::new();
        for i in 0..60_000 {
            let line = match i % 7 {
                0 => format!("word{i} and more   \n"),
                1 => "\n\n".to_string(),
                2 => format!("  indented {i}\r\n"),
                3 => format!("Ünïcode {i} ends with space \n \n"),
                4 => "x\n".to_string(),
                5 => format!("{i}{i}{i}!!\n"),
                _ => "tail without newline".to_string(),
            };
            text.push_str(&line);
        }
        let dir = std::env::temp_dir().join(format!("ferrotok-count-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("corpus.txt");
        std::fs::write(&path, &text).unwrap();
        assert!(text.len() > 2 * SPAN);
        for pattern in [R50K_PATTERN, CL100K_PATTERN, O200K_PATTERN] {
            let pretok = Pretokenizer::new(pattern).unwrap();
            let mut c = PieceCounts::new();
            c.add_file(&path, &pretok).unwrap();
            assert_eq!(c.bytes, text.len() as u64);
            assert_eq!(sorted(&c), whole(&text, &pretok), "{pattern}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_utf8_names_the_byte() {
        let dir = std::env::temp_dir().join(format!("ferrotok-utf8-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.txt");
        std::fs::write(&path, b"hello\nworld \xff\n").unwrap();
        let pretok = Pretokenizer::new(CL100K_PATTERN).unwrap();
        let err = PieceCounts::new().add_file(&path, &pretok).unwrap_err();
        assert!(err.to_string().contains("byte 12"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
