//! Byte-level BPE `tokenizer.json` files (the GPT-2 family, as Hugging Face `tokenizers`
//! writes them): read into a tiktoken-style [`Bpe`], and written from one.
//!
//! ferrotok encodes as tiktoken does: a token's id is its rank, and the lowest-ranked adjacent
//! pair whose bytes form a token merges first. A file is read only if its merges are in
//! id order (each merge's result ranks no lower than the previous one's); the ids then equal
//! Hugging Face's whenever the merge list holds every two-token split of each token, as the
//! files [`to_json`] writes do (transformers' tiktoken converter writes them that way too).

use serde_json::{json, Map, Value};

use crate::bpe::Bpe;
use crate::error::{Error, Result};
use crate::registry::{CL100K_PATTERN, O200K_PATTERN, R50K_PATTERN};
use crate::vocab::{gpt2_byte_chars, Rank, Vocab};

fn to_byte_string(table: &[char; 256], token: &[u8]) -> String {
    token.iter().map(|&b| table[b as usize]).collect()
}

/// Oniguruma (Hugging Face's regex engine) reads `{1,3}+` as a repeated group, not as a
/// possessive count; the plain count is equivalent where it ends its alternative.
const POSSESSIVE_DIGITS: &str = r"\p{N}{1,3}+";
const PLAIN_DIGITS: &str = r"\p{N}{1,3}";

/// Writes `bpe` as a `tokenizer.json` that Hugging Face `tokenizers` loads and that
/// [`from_json`] reads back to the same encoding.
///
/// The merges are every split of each token into two lower-ranked tokens, ordered by the
/// merged token's rank: Hugging Face's lowest-merge-first loop then follows tiktoken's
/// lowest-rank-first loop.
pub fn to_json(bpe: &Bpe) -> String {
    let table = gpt2_byte_chars();
    let vocab = bpe.vocab();
    let mut vocab_json = Map::new();
    let mut merges: Vec<(Rank, Rank, Rank)> = Vec::new();
    for (rank, token) in vocab.iter() {
        vocab_json.insert(to_byte_string(&table, token), json!(rank));
        for i in 1..token.len() {
            if let (Some(l), Some(r)) = (vocab.rank(&token[..i]), vocab.rank(&token[i..])) {
                if l < rank && r < rank {
                    merges.push((rank, l, r));
                }
            }
        }
    }
    merges.sort_unstable();
    let piece = |r: Rank| to_byte_string(&table, vocab.token(r).expect("listed ranks exist"));
    let merges: Vec<Value> = merges
        .iter()
        .map(|&(_, l, r)| Value::String(format!("{} {}", piece(l), piece(r))))
        .collect();
    let mut specials: Vec<(&str, Rank)> = bpe
        .specials()
        .tokens()
        .iter()
        .map(|(s, id)| (s.as_str(), *id))
        .collect();
    specials.sort_by_key(|&(_, id)| id);
    let added: Vec<Value> = specials
        .iter()
        .map(|&(content, id)| {
            json!({"id": id, "content": content, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let pattern = bpe.pattern().replace(POSSESSIVE_DIGITS, PLAIN_DIGITS);
    let root = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated",
             "invert": false},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true,
             "use_regex": false},
        ]},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true,
                    "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null,
                  "continuing_subword_prefix": null, "end_of_word_suffix": null,
                  "fuse_unk": false, "byte_fallback": false, "ignore_merges": true,
                  "vocab": vocab_json, "merges": merges},
    });
    serde_json::to_string(&root).expect("JSON values serialize")
}

fn unsupported(origin: &str, component: &str, v: &Value) -> Error {
    let name = v
        .get("type")
        .and_then(Value::as_str)
        .map_or_else(|| v.to_string(), str::to_string);
    Error::unsupported(
        origin,
        component,
        &name,
        "ferrotok reads byte-level BPE files: a Split regex then ByteLevel(use_regex=false), \
         or ByteLevel(use_regex=true), with no normalizer",
    )
}

fn flag(v: &Value, key: &str) -> Option<bool> {
    v.get(key).and_then(Value::as_bool)
}

/// The split pattern of a byte-level pre-tokenizer.
fn pattern_of(pre: &Value, origin: &str) -> Result<String> {
    let kind = pre.get("type").and_then(Value::as_str);
    let byte_level_ok = |b: &Value, use_regex: bool| {
        b.get("type").and_then(Value::as_str) == Some("ByteLevel")
            && flag(b, "add_prefix_space") != Some(true)
            && flag(b, "use_regex").unwrap_or(true) == use_regex
    };
    if kind == Some("ByteLevel") && byte_level_ok(pre, true) {
        return Ok(R50K_PATTERN.to_string());
    }
    let parts = match kind {
        Some("Sequence") => pre.get("pretokenizers").and_then(Value::as_array),
        _ => None,
    };
    let Some([split, byte_level]) = parts.map(Vec::as_slice) else {
        return Err(unsupported(origin, "pre_tokenizer", pre));
    };
    let regex = split
        .get("pattern")
        .and_then(|p| p.get("Regex"))
        .and_then(Value::as_str);
    let ok = split.get("type").and_then(Value::as_str) == Some("Split")
        && split.get("behavior").and_then(Value::as_str) == Some("Isolated")
        && flag(split, "invert") != Some(true)
        && byte_level_ok(byte_level, false);
    match regex {
        Some(p) if ok => Ok([R50K_PATTERN, CL100K_PATTERN, O200K_PATTERN]
            .into_iter()
            .find(|o| o.replace(POSSESSIVE_DIGITS, PLAIN_DIGITS) == p)
            .map_or_else(|| p.to_string(), str::to_string)),
        _ => Err(unsupported(origin, "pre_tokenizer", pre)),
    }
}

/// Reads a byte-level BPE `tokenizer.json`; `origin` names it in errors.
pub fn from_json(text: &str, origin: &str) -> Result<Bpe> {
    let root = crate::hf::parse(text, origin)?;
    let null = Value::Null;
    let field = |k: &str| root.get(k).unwrap_or(&null);
    let model = field("model");
    if model.get("type").and_then(Value::as_str) != Some("BPE") {
        return Err(unsupported(origin, "model", model));
    }
    for key in [
        "dropout",
        "unk_token",
        "continuing_subword_prefix",
        "end_of_word_suffix",
    ] {
        let v = model.get(key).unwrap_or(&null);
        if !(v.is_null() || v.as_str() == Some("")) {
            return Err(Error::unsupported(
                origin,
                "BPE option",
                key,
                "ferrotok reads byte-level BPE without it",
            ));
        }
    }
    if flag(model, "byte_fallback") == Some(true) {
        return Err(Error::unsupported(
            origin,
            "BPE option",
            "byte_fallback",
            "byte-level BPE has no byte fallback",
        ));
    }
    let normalizer = field("normalizer");
    if !normalizer.is_null() {
        return Err(unsupported(origin, "normalizer", normalizer));
    }
    for (component, allowed) in [("post_processor", "ByteLevel"), ("decoder", "ByteLevel")] {
        let v = field(component);
        if !(v.is_null() || v.get("type").and_then(Value::as_str) == Some(allowed)) {
            return Err(unsupported(origin, component, v));
        }
    }
    let pattern = pattern_of(field("pre_tokenizer"), origin)?;

    let mut specials: Vec<(String, Rank)> = Vec::new();
    for (i, t) in field("added_tokens")
        .as_array()
        .map(Vec::as_slice)
        .or_else(|| field("added_tokens").is_null().then_some(&[][..]))
        .ok_or_else(|| Error::invalid(origin, "added_tokens must be a list".into()))?
        .iter()
        .enumerate()
    {
        let content = t.get("content").and_then(Value::as_str);
        let id = t
            .get("id")
            .and_then(Value::as_u64)
            .and_then(|n| Rank::try_from(n).ok());
        match (content, id) {
            (Some(c), Some(id)) => specials.push((c.to_string(), id)),
            _ => {
                return Err(Error::invalid(
                    origin,
                    format!("added_tokens[{i}] needs a content and an id: {t}"),
                ))
            }
        }
    }

    let table = gpt2_byte_chars();
    let mut byte_of = rustc_hash::FxHashMap::default();
    for (b, &c) in table.iter().enumerate() {
        byte_of.insert(c, b as u8);
    }
    let decode = |s: &str| -> Result<Vec<u8>> {
        s.chars()
            .map(|c| byte_of.get(&c).copied())
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(|| {
                Error::invalid(
                    origin,
                    format!("vocab token {s:?} is not a byte-level string"),
                )
            })
    };
    let vocab_json = model
        .get("vocab")
        .and_then(Value::as_object)
        .ok_or_else(|| Error::invalid(origin, "model.vocab must be an object".into()))?;
    let mut pairs = Vec::with_capacity(vocab_json.len());
    for (s, id) in vocab_json {
        let id = id
            .as_u64()
            .and_then(|n| Rank::try_from(n).ok())
            .ok_or_else(|| {
                Error::invalid(origin, format!("vocab token {s:?} has a bad id {id}"))
            })?;
        // GPT-2's files list <|endoftext|> both in the vocab and as an added token.
        if specials.iter().any(|(c, sid)| *sid == id && c == s) {
            continue;
        }
        pairs.push((decode(s)?, id));
    }
    let vocab = Vocab::from_pairs(pairs, origin)?;

    let merges = model
        .get("merges")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::invalid(origin, "model.merges must be a list".into()))?;
    let mut made = vec![false; vocab.n_ids()];
    let mut last = 0;
    for (i, m) in merges.iter().enumerate() {
        let (l, r) = match m {
            Value::String(s) => s.split_once(' ').ok_or_else(|| {
                Error::invalid(origin, format!("merges[{i}] is not two tokens: {s:?}"))
            })?,
            Value::Array(a) => match a.as_slice() {
                [Value::String(l), Value::String(r)] => (l.as_str(), r.as_str()),
                _ => {
                    return Err(Error::invalid(
                        origin,
                        format!("merges[{i}] is not two tokens: {m}"),
                    ))
                }
            },
            _ => {
                return Err(Error::invalid(
                    origin,
                    format!("merges[{i}] is not two tokens: {m}"),
                ))
            }
        };
        let mut bytes = decode(l)?;
        bytes.extend(decode(r)?);
        let rank = vocab.rank(&bytes).ok_or_else(|| {
            Error::invalid(
                origin,
                format!("merges[{i}] ({l:?}, {r:?}) makes a token that is not in the vocab"),
            )
        })?;
        if rank < last {
            return Err(Error::invalid(
                origin,
                format!("merges[{i}] ({l:?}, {r:?}) makes token {rank} after token {last}: ferrotok ranks tokens by id, as tiktoken, so merges must follow id order"),
            ));
        }
        last = rank;
        made[rank as usize] = true;
    }
    // Ranked by id, a token that no merge makes would still be merged here, where Hugging
    // Face never makes it: the ids would differ, so such a file is refused.
    if let Some((id, token)) = vocab
        .iter()
        .find(|&(id, t)| t.len() > 1 && !made[id as usize])
    {
        return Err(Error::invalid(
            origin,
            format!(
                "no merge makes token {id} ({:?}); ferrotok ranks tokens by id, so every token \
                 of two bytes or more needs a merge",
                String::from_utf8_lossy(token)
            ),
        ));
    }
    Bpe::new(vocab, &pattern, specials, origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_matches_gpt2() {
        let t = gpt2_byte_chars();
        assert_eq!(t[b' ' as usize], 'Ġ');
        assert_eq!(t[b'\n' as usize], 'Ċ');
        assert_eq!(t[b'a' as usize], 'a');
        assert_eq!(t[0xAD], '\u{143}');
    }

    #[test]
    fn round_trip_keeps_ids() {
        let bpe = crate::registry::load("gpt2").unwrap();
        let back = from_json(&to_json(&bpe), "test").unwrap();
        assert_eq!(back.pattern(), bpe.pattern());
        let text = "Hello, world! 12345 naïve   spaces\n\n<|endoftext|>";
        assert_eq!(
            back.encode_ordinary(text).unwrap(),
            bpe.encode_ordinary(text).unwrap()
        );
        assert_eq!(back.n_vocab(), bpe.n_vocab());
    }
}
