//! Loading Hugging Face `tokenizer.json` files (WordPiece / BERT family, and the BPE over
//! characters and Unigram models of converted SentencePiece models) and BERT `vocab.txt`
//! files. Any
//! component or option ferrotok does not implement is an [`Error::Unsupported`] naming it,
//! never a silently different tokenizer.

use std::path::Path;

use serde_json::{Map, Value};

use crate::bert::{BertNormalizer, BertSplitter};
use crate::charbpe::CharBpe;
use crate::error::{Error, Result};
use crate::hf_unigram::HfUnigram;
use base64::Engine;

use crate::metaspace::{Metaspace, MetaspaceSplitter, Pattern, PrependScheme, Step};
use crate::pipeline::{
    AddedToken, DecodeStep, Decoder, Model, Padding, Piece, Pipeline, Settings, Splitter, Template,
    Truncation, TruncationStrategy, WordPieceModel,
};
use crate::spm::CharsMap;
use crate::vocab::check_id_span;

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Loads a `tokenizer.json` file.
pub fn from_file(path: &Path) -> Result<Pipeline> {
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
pub fn from_json(text: &str, origin: &str) -> Result<Pipeline> {
    let root = parse(text, origin)?;
    let root = root
        .as_object()
        .ok_or_else(|| Error::invalid(origin, "not a JSON object".into()))?;
    let null = Value::Null;
    let field = |k: &str| root.get(k).unwrap_or(&null);

    let model = parse_model(field("model"), field("pre_tokenizer"), origin)?;
    let splitter = match &model {
        Model::WordPiece(_) => Splitter::Bert(Box::new(parse_bert(
            field("normalizer"),
            field("pre_tokenizer"),
            origin,
        )?)),
        Model::Bpe(_) | Model::Unigram(_) => Splitter::Metaspace(parse_metaspace(
            field("normalizer"),
            field("pre_tokenizer"),
            origin,
        )?),
    };
    let added = parse_added(field("added_tokens"), origin)?;
    let tokens = model.tokens().len() + added.len();
    check_id_span(added.iter().map(|a| a.id), tokens, "added token id")
        .map_err(|far| Error::invalid(origin, far.to_string()))?;
    let template = parse_post(field("post_processor"), &model, &added, origin)?;
    let decoder = parse_decoder(field("decoder"), origin)?;
    let settings = Settings {
        truncation: parse_truncation(field("truncation"), origin)?,
        padding: parse_padding(field("padding"), origin)?,
    };
    Pipeline::new(splitter, model, added, template, decoder, settings)
}

/// BertNormalizer (or none) and BertPreTokenizer.
fn parse_bert(normalizer: &Value, pre: &Value, origin: &str) -> Result<BertSplitter> {
    let normalizer = parse_normalizer(normalizer, origin)?;
    let pre_kind = if pre.is_null() {
        "null"
    } else {
        kind(pre, origin, "pre_tokenizer")?
    };
    if pre_kind != "BertPreTokenizer" {
        return Err(Error::unsupported(
            origin,
            "pre_tokenizer",
            pre_kind,
            "ferrotok implements BertPreTokenizer for WordPiece models",
        ));
    }
    Ok(BertSplitter::new(normalizer))
}

/// The components of a list (`"Sequence"` with `key`) or of a single component.
fn sequence<'a>(v: &'a Value, key: &str, origin: &str, what: &str) -> Result<Vec<&'a Value>> {
    if v.is_null() {
        return Ok(Vec::new());
    }
    if kind(v, origin, what)? == "Sequence" {
        let list = v
            .get(key)
            .and_then(Value::as_array)
            .ok_or_else(|| Error::invalid(origin, format!("{what} Sequence without {key}")))?;
        return Ok(list.iter().collect());
    }
    Ok(vec![v])
}

/// A one-character string option.
fn get_char(o: &Value, key: &str, origin: &str, what: &str) -> Result<char> {
    let s = get_str(o, key, origin)?.unwrap_or("");
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Ok(c),
        _ => Err(Error::unsupported(
            origin,
            what,
            &format!("{key}={s:?}"),
            "ferrotok implements one-character strings here",
        )),
    }
}

fn prepend_scheme(v: &Value, origin: &str) -> Result<PrependScheme> {
    match get_str(v, "prepend_scheme", origin)? {
        Some("always") => Ok(PrependScheme::Always),
        Some("first") => Ok(PrependScheme::First),
        Some("never") => Ok(PrependScheme::Never),
        Some(x) => Err(Error::invalid(
            origin,
            format!("unknown prepend_scheme {x:?}"),
        )),
        // files older than prepend_scheme
        None => Ok(if get_bool(v, "add_prefix_space", true, origin)? {
            PrependScheme::Always
        } else {
            PrependScheme::Never
        }),
    }
}

/// `Replace`: `(pattern, content)`. A `Regex` pattern (Oniguruma syntax in HF) is compiled
/// with fancy-regex, which reads the simple patterns of converted files (` {2,}`) the same way.
fn parse_replace(v: &Value, origin: &str, what: &str) -> Result<(Pattern, String)> {
    let pattern = v.get("pattern");
    let content = get_str(v, "content", origin)?.unwrap_or("").to_string();
    if let Some(p) = pattern
        .and_then(|p| p.get("String"))
        .and_then(Value::as_str)
    {
        if !p.is_empty() {
            return Ok((Pattern::Literal(p.to_string()), content));
        }
    }
    if let Some(p) = pattern.and_then(|p| p.get("Regex")).and_then(Value::as_str) {
        return match fancy_regex::Regex::new(p) {
            Ok(re) => Ok((Pattern::Regex(re), content)),
            Err(e) => Err(Error::unsupported(
                origin,
                what,
                &format!("Replace with Regex {p:?}"),
                &format!("the pattern does not compile here: {e}"),
            )),
        };
    }
    Err(Error::invalid(
        origin,
        format!("{what} Replace needs a non-empty String or Regex pattern: {v}"),
    ))
}

/// The normalizers and pre-tokenizers of a converted SentencePiece model: `Precompiled`,
/// `Replace`, `Prepend` and `Strip` normalizers; `WhitespaceSplit` then `Metaspace`.
fn parse_metaspace(normalizer: &Value, pre: &Value, origin: &str) -> Result<MetaspaceSplitter> {
    let mut steps = Vec::new();
    for n in sequence(normalizer, "normalizers", origin, "normalizer")? {
        match kind(n, origin, "normalizer")? {
            "Prepend" => steps.push(Step::Prepend(
                get_str(n, "prepend", origin)?.unwrap_or("").to_string(),
            )),
            "Replace" => {
                let (pattern, to) = parse_replace(n, origin, "normalizer")?;
                steps.push(Step::Replace(pattern, to));
            }
            "Strip" => steps.push(Step::Strip {
                left: get_bool(n, "strip_left", true, origin)?,
                right: get_bool(n, "strip_right", true, origin)?,
            }),
            "Precompiled" => {
                let blob = get_str(n, "precompiled_charsmap", origin)?.unwrap_or("");
                let blob = base64::engine::general_purpose::STANDARD
                    .decode(blob)
                    .map_err(|e| {
                        Error::invalid(origin, format!("Precompiled precompiled_charsmap: {e}"))
                    })?;
                // an empty map rewrites nothing
                if !blob.is_empty() {
                    steps.push(Step::Precompiled(Box::new(CharsMap::parse(&blob, origin)?)));
                }
            }
            k => {
                return Err(Error::unsupported(
                    origin,
                    "normalizer",
                    k,
                    "ferrotok implements Precompiled, Replace, Prepend and Strip (or none) for \
                     SentencePiece models",
                ))
            }
        }
    }
    let mut whitespace_split = false;
    let mut meta = None;
    for p in sequence(pre, "pretokenizers", origin, "pre_tokenizer")? {
        match kind(p, origin, "pre_tokenizer")? {
            "WhitespaceSplit" if meta.is_none() && !whitespace_split => whitespace_split = true,
            "Metaspace" if meta.is_none() => {
                meta = Some(Metaspace {
                    replacement: get_char(p, "replacement", origin, "pre_tokenizer")?,
                    prepend: prepend_scheme(p, origin)?,
                    split: get_bool(p, "split", true, origin)?,
                })
            }
            "ByteLevel" => {
                return Err(Error::unsupported(
                    origin,
                    "pre_tokenizer",
                    "ByteLevel",
                    "byte-level BPE files load with ferrotok.Encoding.from_file",
                ))
            }
            k => {
                return Err(Error::unsupported(
                    origin,
                    "pre_tokenizer",
                    k,
                    "ferrotok implements WhitespaceSplit and Metaspace, in that order, (or \
                     none) for SentencePiece models",
                ))
            }
        }
    }
    Ok(MetaspaceSplitter::new(steps, whitespace_split, meta))
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

fn parse_model(v: &Value, pre: &Value, origin: &str) -> Result<Model> {
    let k = kind(v, origin, "model")?;
    match k {
        "WordPiece" => parse_wordpiece(v, origin).map(Model::WordPiece),
        "BPE" => parse_bpe(v, pre, origin).map(|m| Model::Bpe(Box::new(m))),
        "Unigram" => parse_unigram(v, origin).map(Model::Unigram),
        _ => Err(Error::unsupported(
            origin,
            "model",
            k,
            "ferrotok's tokenizer.json loader implements WordPiece, BPE and Unigram",
        )),
    }
}

/// HF's Unigram: `vocab` is a list of `[token, score]` by id.
fn parse_unigram(v: &Value, origin: &str) -> Result<HfUnigram> {
    let list = v
        .get("vocab")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::invalid(origin, "model.vocab must be a list".into()))?;
    let mut vocab = Vec::with_capacity(list.len());
    for (i, e) in list.iter().enumerate() {
        match e.as_array().map(Vec::as_slice) {
            Some([Value::String(t), s]) if s.is_number() => {
                vocab.push((t.clone(), s.as_f64().unwrap_or(f64::NAN)))
            }
            _ => {
                return Err(Error::invalid(
                    origin,
                    format!("model.vocab[{i}] must be [token, score], got {e}"),
                ))
            }
        }
    }
    let unk = get_u32(v, "unk_id", origin)?;
    HfUnigram::new(
        vocab,
        unk,
        get_bool(v, "byte_fallback", false, origin)?,
        origin,
    )
}

fn parse_wordpiece(v: &Value, origin: &str) -> Result<WordPieceModel> {
    let vocab = v
        .get("vocab")
        .and_then(Value::as_object)
        .ok_or_else(|| Error::invalid(origin, "model.vocab must be an object".into()))?;
    let vocab = vocab_pairs(vocab, origin)?;
    Ok(WordPieceModel::new(
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

/// HF's BPE model over characters. Byte-level files (a `ByteLevel` pre-tokenizer) are
/// `Encoding`s, not `Tokenizer`s: they are named in the error.
fn parse_bpe(v: &Value, pre: &Value, origin: &str) -> Result<CharBpe> {
    if pre.to_string().contains("\"ByteLevel\"") {
        return Err(Error::unsupported(
            origin,
            "pre_tokenizer",
            "ByteLevel",
            "byte-level BPE files load with ferrotok.Encoding.from_file",
        ));
    }
    if !v.get("dropout").is_none_or(Value::is_null) {
        return Err(Error::unsupported(
            origin,
            "model option",
            "dropout",
            "ferrotok's BPE tokenizer.json models are deterministic",
        ));
    }
    for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
        if !get_str(v, key, origin)?.unwrap_or("").is_empty() {
            return Err(Error::unsupported(
                origin,
                "model option",
                key,
                "ferrotok implements BPE without subword prefixes or suffixes",
            ));
        }
    }
    let vocab = v
        .get("vocab")
        .and_then(Value::as_object)
        .ok_or_else(|| Error::invalid(origin, "model.vocab must be an object".into()))?;
    let vocab = vocab_pairs(vocab, origin)?;
    let list = v
        .get("merges")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::invalid(origin, "model.merges must be a list".into()))?;
    let mut merges = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        // "left right", or ["left", "right"] in newer files
        let pair = match m {
            Value::String(s) => s
                .split_once(' ')
                .map(|(l, r)| (l.to_string(), r.to_string())),
            Value::Array(a) => match a.as_slice() {
                [Value::String(l), Value::String(r)] => Some((l.clone(), r.clone())),
                _ => None,
            },
            _ => None,
        };
        merges.push(
            pair.ok_or_else(|| Error::invalid(origin, format!("merge {i} is not a pair: {m}")))?,
        );
    }
    CharBpe::new(
        vocab,
        &merges,
        get_str(v, "unk_token", origin)?.map(str::to_string),
        get_bool(v, "fuse_unk", false, origin)?,
        get_bool(v, "byte_fallback", false, origin)?,
        get_bool(v, "ignore_merges", false, origin)?,
        origin,
    )
}

fn vocab_pairs(vocab: &Map<String, Value>, origin: &str) -> Result<Vec<(String, u32)>> {
    let pairs: Vec<(String, u32)> = vocab
        .iter()
        .map(|(t, id)| {
            Ok((
                t.clone(),
                token_id(id, origin, &format!("vocabulary token {t:?}"))?,
            ))
        })
        .collect::<Result<_>>()?;
    check_id_span(pairs.iter().map(|p| p.1), pairs.len(), "vocabulary id")
        .map_err(|far| Error::invalid(origin, far.to_string()))?;
    Ok(pairs)
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

/// A token id in a JSON value: an integer below 2^32 (`what` names where, in the error).
fn token_id(v: &Value, origin: &str, what: &str) -> Result<u32> {
    v.as_u64()
        .and_then(|i| u32::try_from(i).ok())
        .ok_or_else(|| Error::invalid(origin, format!("{what}: id {v} is not a u32")))
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
        .or_else(|| model.tokens().token_to_id(name))
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
                let id = p
                    .get(1)
                    .map(|i| token_id(i, origin, &format!("BertProcessing.{key}")))
                    .transpose()?;
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
                            if id != "A" && id != "B" {
                                return Err(Error::invalid(
                                    origin,
                                    format!("TemplateProcessing sequence {id:?} is not A or B"),
                                ));
                            }
                            Ok(Piece::Sequence {
                                b: id == "B",
                                type_id: get_u32(s, "type_id", origin)?.unwrap_or(0),
                            })
                        } else if let Some(s) = p.get("SpecialToken") {
                            let name = get_str(s, "id", origin)?.unwrap_or_default();
                            let ids = match specials.and_then(|m| m.get(name)) {
                                Some(st) => {
                                    let what = format!("TemplateProcessing special token {name:?}");
                                    st.get("ids")
                                        .and_then(Value::as_array)
                                        .ok_or_else(|| {
                                            Error::invalid(origin, format!("{what} has no ids"))
                                        })?
                                        .iter()
                                        .map(|i| token_id(i, origin, &what))
                                        .collect::<Result<_>>()?
                                }
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
    if kind(v, origin, "decoder")? == "WordPiece" {
        return Ok(Some(Decoder::WordPiece {
            prefix: get_str(v, "prefix", origin)?.unwrap_or("##").to_string(),
            cleanup: get_bool(v, "cleanup", true, origin)?,
        }));
    }
    let mut steps = Vec::new();
    for d in sequence(v, "decoders", origin, "decoder")? {
        steps.push(match kind(d, origin, "decoder")? {
            "Replace" => match parse_replace(d, origin, "decoder")? {
                (Pattern::Literal(from), to) => DecodeStep::Replace(from, to),
                (Pattern::Regex(_), _) => {
                    return Err(Error::unsupported(
                        origin,
                        "decoder",
                        "Replace with a Regex pattern",
                        "ferrotok's decoders replace strings",
                    ))
                }
            },
            "ByteFallback" => DecodeStep::ByteFallback,
            "Fuse" => DecodeStep::Fuse,
            "Strip" => DecodeStep::Strip {
                content: get_char(d, "content", origin, "decoder")?,
                start: get_usize(d, "start", origin)?.unwrap_or(0),
                stop: get_usize(d, "stop", origin)?.unwrap_or(0),
            },
            "Metaspace" => DecodeStep::Metaspace {
                replacement: get_char(d, "replacement", origin, "decoder")?,
                prepended: prepend_scheme(d, origin)? != PrependScheme::Never,
            },
            k => {
                return Err(Error::unsupported(
                    origin,
                    "decoder",
                    k,
                    "ferrotok implements WordPiece, Replace, ByteFallback, Fuse, Strip, \
                     Metaspace and their Sequence",
                ))
            }
        });
    }
    Ok(Some(Decoder::Chain(steps)))
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
    let padding = Padding {
        length,
        left: direction_left(v, origin, "padding")?,
        pad_to_multiple_of: get_usize(v, "pad_to_multiple_of", origin)?,
        pad_id: get_u32(v, "pad_id", origin)?.unwrap_or(0),
        pad_type_id: get_u32(v, "pad_type_id", origin)?.unwrap_or(0),
        pad_token: get_str(v, "pad_token", origin)?
            .unwrap_or("[PAD]")
            .to_string(),
    };
    padding.check().map_err(|msg| Error::invalid(origin, msg))?;
    Ok(Some(padding))
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
pub fn from_vocab_txt(path: &Path, opts: &VocabOptions) -> Result<Pipeline> {
    from_vocab_text(&read(path)?, &path.display().to_string(), opts)
}

/// [`from_vocab_txt`] from the file's text; `origin` names it in errors.
pub fn from_vocab_text(text: &str, origin: &str, opts: &VocabOptions) -> Result<Pipeline> {
    let vocab: Vec<(String, u32)> = text
        .lines()
        .enumerate()
        .map(|(i, line)| (line.trim_end().to_string(), i as u32))
        .collect();
    let model = Model::WordPiece(WordPieceModel::new(
        vocab,
        opts.unk_token.clone(),
        opts.prefix.clone(),
        opts.max_input_chars_per_word,
    ));
    let mut added: Vec<AddedToken> = Vec::new();
    for t in [
        &opts.unk_token,
        &opts.sep_token,
        &opts.cls_token,
        &opts.pad_token,
        &opts.mask_token,
    ] {
        if let Some(id) = model.tokens().token_to_id(t) {
            if !added.iter().any(|a| &a.content == t) && !t.is_empty() {
                added.push(AddedToken {
                    content: t.clone(),
                    id,
                    special: true,
                });
            }
        }
    }
    let cls = model.tokens().token_to_id(&opts.cls_token);
    let sep = model.tokens().token_to_id(&opts.sep_token);
    let (Some(cls), Some(sep)) = (cls, sep) else {
        return Err(Error::invalid(
            origin,
            format!(
                "the vocabulary lacks {:?} or {:?} (cls_token / sep_token)",
                opts.cls_token, opts.sep_token
            ),
        ));
    };
    Pipeline::new(
        Splitter::Bert(Box::new(BertSplitter::new(opts.normalizer))),
        model,
        added,
        Some(Template::bert(cls, sep)),
        Some(Decoder::WordPiece {
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
