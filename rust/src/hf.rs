//! Loading Hugging Face `tokenizer.json` files (WordPiece / BERT family) and BERT
//! `vocab.txt` files. Any component or option ferrotok does not implement is an
//! [`Error::Unsupported`] naming it, never a silently different tokenizer.

use std::path::Path;

use serde_json::{Map, Value};

use crate::bert::BertNormalizer;
use crate::error::{Error, Result};
use crate::wordpiece::{
    AddedToken, Decoder, Model, Padding, Piece, Settings, Template, Truncation, TruncationStrategy,
    WordPiece,
};

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Loads a `tokenizer.json` file.
pub fn from_file(path: &Path) -> Result<WordPiece> {
    from_json(&read(path)?, &path.display().to_string())
}

fn kind<'a>(v: &'a Value, origin: &str, component: &str) -> Result<&'a str> {
    v.get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::invalid(origin, format!("{component} has no \"type\": {v}")))
}

fn get_bool(o: &Value, key: &str, default: bool, origin: &str) -> Result<bool> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(Error::invalid(
            origin,
            format!("{key} must be a boolean, got {v}"),
        )),
    }
}

fn get_usize(o: &Value, key: &str, origin: &str) -> Result<Option<usize>> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(|n| Some(n as usize)).ok_or_else(|| {
            Error::invalid(origin, format!("{key} must be an integer >= 0, got {v}"))
        }),
    }
}

fn get_u32(o: &Value, key: &str, origin: &str) -> Result<Option<u32>> {
    get_usize(o, key, origin)?
        .map(|n| {
            u32::try_from(n)
                .map_err(|_| Error::invalid(origin, format!("{key} {n} does not fit in 32 bits")))
        })
        .transpose()
}

fn get_str<'a>(o: &'a Value, key: &str, origin: &str) -> Result<Option<&'a str>> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(Error::invalid(
            origin,
            format!("{key} must be a string, got {v}"),
        )),
    }
}

/// The JSON of a `tokenizer.json`; a syntax error names `origin` and the line.
pub(crate) fn parse(text: &str, origin: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| Error::Parse {
        origin: origin.to_string(),
        line: e.line(),
        msg: e.to_string(),
    })
}

/// Parses the text of a `tokenizer.json`; `origin` names it in errors.
pub fn from_json(text: &str, origin: &str) -> Result<WordPiece> {
    let root = parse(text, origin)?;
    let root = root
        .as_object()
        .ok_or_else(|| Error::invalid(origin, "not a JSON object".into()))?;
    let null = Value::Null;
    let field = |k: &str| root.get(k).unwrap_or(&null);

    let normalizer = parse_normalizer(field("normalizer"), origin)?;
    let pre = field("pre_tokenizer");
    if pre.is_null() {
        return Err(Error::unsupported(
            origin,
            "pre_tokenizer",
            "null",
            "ferrotok implements BertPreTokenizer",
        ));
    }
    let pre_kind = kind(pre, origin, "pre_tokenizer")?;
    if pre_kind != "BertPreTokenizer" {
        return Err(Error::unsupported(
            origin,
            "pre_tokenizer",
            pre_kind,
            "ferrotok implements BertPreTokenizer",
        ));
    }
    let model = parse_model(field("model"), origin)?;
    let added = parse_added(field("added_tokens"), origin)?;
    let template = parse_post(field("post_processor"), &model, &added, origin)?;
    let decoder = parse_decoder(field("decoder"), origin)?;
    let settings = Settings {
        truncation: parse_truncation(field("truncation"), origin)?,
        padding: parse_padding(field("padding"), origin)?,
    };
    WordPiece::new(normalizer, model, added, template, decoder, settings)
}

fn parse_normalizer(v: &Value, origin: &str) -> Result<BertNormalizer> {
    if v.is_null() {
        return Ok(BertNormalizer::identity());
    }
    let k = kind(v, origin, "normalizer")?;
    if k != "BertNormalizer" {
        return Err(Error::unsupported(
            origin,
            "normalizer",
            k,
            "ferrotok implements BertNormalizer (or none)",
        ));
    }
    let strip = match v.get("strip_accents") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(x) => {
            return Err(Error::invalid(
                origin,
                format!("strip_accents must be a boolean or null, got {x}"),
            ))
        }
    };
    Ok(BertNormalizer::new(
        get_bool(v, "clean_text", true, origin)?,
        get_bool(v, "handle_chinese_chars", true, origin)?,
        strip,
        get_bool(v, "lowercase", true, origin)?,
    ))
}

fn parse_model(v: &Value, origin: &str) -> Result<Model> {
    let k = kind(v, origin, "model")?;
    if k != "WordPiece" {
        return Err(Error::unsupported(
            origin,
            "model",
            k,
            "ferrotok's tokenizer.json loader implements WordPiece",
        ));
    }
    let vocab = v
        .get("vocab")
        .and_then(Value::as_object)
        .ok_or_else(|| Error::invalid(origin, "model.vocab must be an object".into()))?;
    let vocab = vocab_pairs(vocab, origin)?;
    Ok(Model::new(
        vocab,
        get_str(v, "unk_token", origin)?
            .unwrap_or("[UNK]")
            .to_string(),
        get_str(v, "continuing_subword_prefix", origin)?
            .unwrap_or("##")
            .to_string(),
        get_usize(v, "max_input_chars_per_word", origin)?.unwrap_or(100),
    ))
}

fn vocab_pairs(vocab: &Map<String, Value>, origin: &str) -> Result<Vec<(String, u32)>> {
    vocab
        .iter()
        .map(|(t, id)| {
            id.as_u64()
                .and_then(|i| u32::try_from(i).ok())
                .map(|i| (t.clone(), i))
                .ok_or_else(|| {
                    Error::invalid(origin, format!("vocabulary id of {t:?} is not a u32: {id}"))
                })
        })
        .collect()
}

fn parse_added(v: &Value, origin: &str) -> Result<Vec<AddedToken>> {
    let Some(list) = v.as_array() else {
        return if v.is_null() {
            Ok(Vec::new())
        } else {
            Err(Error::invalid(origin, "added_tokens must be a list".into()))
        };
    };
    let mut out = Vec::with_capacity(list.len());
    for t in list {
        let content = get_str(t, "content", origin)?
            .ok_or_else(|| Error::invalid(origin, format!("added token without content: {t}")))?;
        let id = get_u32(t, "id", origin)?
            .ok_or_else(|| Error::invalid(origin, format!("added token without id: {t}")))?;
        let special = get_bool(t, "special", false, origin)?;
        for (opt, default) in [
            ("single_word", false),
            ("lstrip", false),
            ("rstrip", false),
            ("normalized", !special),
        ] {
            if get_bool(t, opt, default, origin)? {
                return Err(Error::unsupported(
                    origin,
                    "added token option",
                    &format!("{opt}=true (token {content:?})"),
                    "ferrotok matches added tokens on the original text, whole, without stripping",
                ));
            }
        }
        if content.is_empty() {
            continue;
        }
        out.push(AddedToken {
            content: content.to_string(),
            id,
            special,
        });
    }
    Ok(out)
}

fn special_id(
    name: &str,
    model: &Model,
    added: &[AddedToken],
    origin: &str,
    declared: Option<u32>,
) -> Result<u32> {
    declared
        .or_else(|| added.iter().find(|a| a.content == name).map(|a| a.id))
        .or_else(|| model.token_to_id(name))
        .ok_or_else(|| Error::invalid(origin, format!("special token {name:?} has no id")))
}

fn parse_post(
    v: &Value,
    model: &Model,
    added: &[AddedToken],
    origin: &str,
) -> Result<Option<Template>> {
    if v.is_null() {
        return Ok(None);
    }
    match kind(v, origin, "post_processor")? {
        "BertProcessing" => {
            let pair_of = |key: &str| -> Result<u32> {
                let p = v.get(key).and_then(Value::as_array).ok_or_else(|| {
                    Error::invalid(origin, format!("BertProcessing.{key} must be [token, id]"))
                })?;
                let name = p.first().and_then(Value::as_str).unwrap_or_default();
                let id = p.get(1).and_then(Value::as_u64).map(|i| i as u32);
                special_id(name, model, added, origin, id)
            };
            Ok(Some(Template::bert(pair_of("cls")?, pair_of("sep")?)))
        }
        "TemplateProcessing" => {
            let specials = v.get("special_tokens").and_then(Value::as_object);
            let pieces = |key: &str| -> Result<Vec<Piece>> {
                let list = v.get(key).and_then(Value::as_array).ok_or_else(|| {
                    Error::invalid(origin, format!("TemplateProcessing.{key} must be a list"))
                })?;
                list.iter()
                    .map(|p| {
                        if let Some(s) = p.get("Sequence") {
                            let id = get_str(s, "id", origin)?.unwrap_or("A");
                            Ok(Piece::Sequence {
                                b: id == "B",
                                type_id: get_u32(s, "type_id", origin)?.unwrap_or(0),
                            })
                        } else if let Some(s) = p.get("SpecialToken") {
                            let name = get_str(s, "id", origin)?.unwrap_or_default();
                            let ids = match specials.and_then(|m| m.get(name)) {
                                Some(st) => st
                                    .get("ids")
                                    .and_then(Value::as_array)
                                    .map(|a| {
                                        a.iter()
                                            .filter_map(Value::as_u64)
                                            .map(|i| i as u32)
                                            .collect()
                                    })
                                    .unwrap_or_default(),
                                None => vec![special_id(name, model, added, origin, None)?],
                            };
                            Ok(Piece::Special {
                                ids,
                                type_id: get_u32(s, "type_id", origin)?.unwrap_or(0),
                            })
                        } else {
                            Err(Error::invalid(origin, format!("bad template piece {p}")))
                        }
                    })
                    .collect()
            };
            Ok(Some(Template {
                single: pieces("single")?,
                pair: pieces("pair")?,
            }))
        }
        other => Err(Error::unsupported(
            origin,
            "post_processor",
            other,
            "ferrotok implements TemplateProcessing and BertProcessing (or none)",
        )),
    }
}

fn parse_decoder(v: &Value, origin: &str) -> Result<Option<Decoder>> {
    if v.is_null() {
        return Ok(None);
    }
    let k = kind(v, origin, "decoder")?;
    if k != "WordPiece" {
        return Err(Error::unsupported(
            origin,
            "decoder",
            k,
            "ferrotok implements the WordPiece decoder (or none)",
        ));
    }
    Ok(Some(Decoder {
        prefix: get_str(v, "prefix", origin)?.unwrap_or("##").to_string(),
        cleanup: get_bool(v, "cleanup", true, origin)?,
    }))
}

fn direction_left(v: &Value, origin: &str, what: &str) -> Result<bool> {
    match get_str(v, "direction", origin)? {
        None | Some("Right") => Ok(false),
        Some("Left") => Ok(true),
        Some(d) => Err(Error::unsupported(
            origin,
            what,
            &format!("direction {d:?}"),
            "Left or Right",
        )),
    }
}

fn parse_truncation(v: &Value, origin: &str) -> Result<Option<Truncation>> {
    if v.is_null() {
        return Ok(None);
    }
    let strategy = match get_str(v, "strategy", origin)?.unwrap_or("LongestFirst") {
        "LongestFirst" => TruncationStrategy::LongestFirst,
        "OnlyFirst" => TruncationStrategy::OnlyFirst,
        "OnlySecond" => TruncationStrategy::OnlySecond,
        s => {
            return Err(Error::unsupported(
                origin,
                "truncation strategy",
                s,
                "LongestFirst, OnlyFirst or OnlySecond",
            ))
        }
    };
    Ok(Some(Truncation {
        max_length: get_usize(v, "max_length", origin)?.unwrap_or(512),
        strategy,
        stride: get_usize(v, "stride", origin)?.unwrap_or(0),
        left: direction_left(v, origin, "truncation")?,
    }))
}

fn parse_padding(v: &Value, origin: &str) -> Result<Option<Padding>> {
    if v.is_null() {
        return Ok(None);
    }
    let length = match v.get("strategy") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s == "BatchLongest" => None,
        Some(s) => match s.get("Fixed").and_then(Value::as_u64) {
            Some(n) => Some(n as usize),
            None => {
                return Err(Error::unsupported(
                    origin,
                    "padding strategy",
                    &s.to_string(),
                    "BatchLongest or {\"Fixed\": n}",
                ))
            }
        },
    };
    Ok(Some(Padding {
        length,
        left: direction_left(v, origin, "padding")?,
        pad_to_multiple_of: get_usize(v, "pad_to_multiple_of", origin)?,
        pad_id: get_u32(v, "pad_id", origin)?.unwrap_or(0),
        pad_type_id: get_u32(v, "pad_type_id", origin)?.unwrap_or(0),
        pad_token: get_str(v, "pad_token", origin)?
            .unwrap_or("[PAD]")
            .to_string(),
    }))
}

/// Options of a BERT tokenizer built from `vocab.txt`, as HF's `BertWordPieceTokenizer`.
#[derive(Clone, Debug)]
pub struct VocabOptions {
    pub normalizer: BertNormalizer,
    pub unk_token: String,
    pub sep_token: String,
    pub cls_token: String,
    pub pad_token: String,
    pub mask_token: String,
    pub prefix: String,
    pub max_input_chars_per_word: usize,
}

/// Loads a BERT `vocab.txt` (one token per line, id = line number, trailing whitespace
/// trimmed) into the tokenizer HF's `BertWordPieceTokenizer` builds around it: the BERT
/// normalizer and pre-tokenizer, the special tokens present in the vocabulary as added
/// tokens, `[CLS] A [SEP] B [SEP]`, the WordPiece decoder; no truncation, no padding.
pub fn from_vocab_txt(path: &Path, opts: &VocabOptions) -> Result<WordPiece> {
    from_vocab_text(&read(path)?, &path.display().to_string(), opts)
}

/// [`from_vocab_txt`] from the file's text; `origin` names it in errors.
pub fn from_vocab_text(text: &str, origin: &str, opts: &VocabOptions) -> Result<WordPiece> {
    let vocab: Vec<(String, u32)> = text
        .lines()
        .enumerate()
        .map(|(i, line)| (line.trim_end().to_string(), i as u32))
        .collect();
    let model = Model::new(
        vocab,
        opts.unk_token.clone(),
        opts.prefix.clone(),
        opts.max_input_chars_per_word,
    );
    let mut added: Vec<AddedToken> = Vec::new();
    for t in [
        &opts.unk_token,
        &opts.sep_token,
        &opts.cls_token,
        &opts.pad_token,
        &opts.mask_token,
    ] {
        if let Some(id) = model.token_to_id(t) {
            if !added.iter().any(|a| &a.content == t) && !t.is_empty() {
                added.push(AddedToken {
                    content: t.clone(),
                    id,
                    special: true,
                });
            }
        }
    }
    let cls = model.token_to_id(&opts.cls_token);
    let sep = model.token_to_id(&opts.sep_token);
    let (Some(cls), Some(sep)) = (cls, sep) else {
        return Err(Error::invalid(
            origin,
            format!(
                "the vocabulary lacks {:?} or {:?} (cls_token / sep_token)",
                opts.cls_token, opts.sep_token
            ),
        ));
    };
    WordPiece::new(
        opts.normalizer,
        model,
        added,
        Some(Template::bert(cls, sep)),
        Some(Decoder {
            prefix: opts.prefix.clone(),
            cleanup: true,
        }),
        Settings::default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINI: &str = r###"{
      "version": "1.0", "truncation": null, "padding": null,
      "added_tokens": [
        {"id": 1, "content": "[UNK]", "special": true, "normalized": false},
        {"id": 2, "content": "[CLS]", "special": true, "normalized": false},
        {"id": 3, "content": "[SEP]", "special": true, "normalized": false}],
      "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                     "strip_accents": null, "lowercase": true},
      "pre_tokenizer": {"type": "BertPreTokenizer"},
      "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]},
      "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
      "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                "max_input_chars_per_word": 100,
                "vocab": {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "hello": 4, "##s": 5}}
    }"###;

    #[test]
    fn loads_a_small_file() {
        let wp = from_json(MINI, "mini").unwrap();
        let e = wp
            .encode("HELLOS x", None, true, &Settings::default())
            .unwrap();
        assert_eq!(e.ids, vec![2, 4, 5, 1, 3]);
        assert_eq!(wp.vocab_size(), 6);
    }

    #[test]
    fn unknown_components_are_named() {
        let bad = MINI.replace("\"BertPreTokenizer\"", "\"Metaspace\"");
        let err = from_json(&bad, "mini").err().unwrap().to_string();
        assert!(
            err.contains("pre_tokenizer") && err.contains("Metaspace"),
            "{err}"
        );
        let bad = MINI.replace("\"type\": \"WordPiece\", \"unk", "\"type\": \"BPE\", \"unk");
        let err = from_json(&bad, "mini").err().unwrap().to_string();
        assert!(err.contains("model") && err.contains("BPE"), "{err}");
    }
}
