//! Encodes a file of NUL-separated documents with an embedded encoding and prints MB/s:
//! `cargo run --release --example encode_file -- o200k_base docs.txt [passes]`.
//! A profiling aid for the core without Python in the way. With `COLD=1` every pass loads
//! the encoding again, so each one starts with empty caches.

use std::io::Write;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (name, path) = (
        args.get(1).ok_or("usage: encode_file NAME FILE [PASSES]")?,
        args.get(2).ok_or("missing FILE")?,
    );
    let passes: usize = args.get(3).map_or(Ok(1), |p| p.parse())?;
    let text = std::fs::read_to_string(path)?;
    let docs: Vec<&str> = text.split('\0').collect();
    let t = Instant::now();
    let cold = std::env::var_os("COLD").is_some();
    let mut bpe = ferrotok::registry::load(name)?;
    writeln!(
        std::io::stdout(),
        "load {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    )?;
    for pass in 0..passes {
        if cold && pass > 0 {
            bpe = ferrotok::registry::load(name)?;
        }
        let t = Instant::now();
        // SPLIT_ONLY=1 times the pre-tokenizer alone (counting pieces instead of tokens).
        let tokens: usize = if std::env::var_os("SPLIT_ONLY").is_some() {
            docs.iter()
                .map(|d| bpe.pretokenizer().pieces(d).map(|p| p.len()))
                .sum::<Result<_, _>>()?
        } else {
            docs.iter()
                .map(|d| bpe.encode_ordinary(d).map(|ids| ids.len()))
                .sum::<Result<_, _>>()?
        };
        let secs = t.elapsed().as_secs_f64();
        writeln!(
            std::io::stdout(),
            "pass {pass}: {tokens} tokens, {:.1} MB/s",
            text.len() as f64 / secs / 1e6
        )?;
    }
    Ok(())
}
