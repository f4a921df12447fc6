//! Encodes a file of NUL-separated documents with a SentencePiece `.model` and prints MB/s:
//! `cargo run --release --example spm_file -- model.model docs.txt [passes]`.
//! A profiling aid for the core without Python in the way. With `COLD=1` every pass loads
//! the model again, so each one starts with empty caches.

use std::io::Write;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (model, path) = (
        args.get(1).ok_or("usage: spm_file MODEL FILE [PASSES]")?,
        args.get(2).ok_or("missing FILE")?,
    );
    let passes: usize = args.get(3).map_or(Ok(1), |p| p.parse())?;
    let text = std::fs::read_to_string(path)?;
    let docs: Vec<&str> = text.split('\0').collect();
    let t = Instant::now();
    let load = || ferrotok::SentencePiece::from_file(std::path::Path::new(model));
    let cold = std::env::var_os("COLD").is_some();
    let mut spm = load()?;
    writeln!(
        std::io::stdout(),
        "load {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    )?;
    for pass in 0..passes {
        if cold && pass > 0 {
            spm = load()?;
        }
        let t = Instant::now();
        let tokens: usize = docs.iter().map(|d| spm.encode(d).len()).sum();
        let secs = t.elapsed().as_secs_f64();
        writeln!(
            std::io::stdout(),
            "pass {pass}: {tokens} tokens, {:.1} MB/s",
            text.len() as f64 / secs / 1e6
        )?;
    }
    Ok(())
}
