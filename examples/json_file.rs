//! Encodes a file of NUL-separated documents with a `tokenizer.json` and prints MB/s:
//! `cargo run --release --example json_file -- tokenizer.json docs.txt [passes]`.
//! A profiling aid for the pipeline without Python in the way.

use std::io::Write;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (file, path) = (
        args.get(1)
            .ok_or("usage: json_file TOKENIZER_JSON FILE [PASSES]")?,
        args.get(2).ok_or("missing FILE")?,
    );
    let passes: usize = args.get(3).map_or(Ok(1), |p| p.parse())?;
    let text = std::fs::read_to_string(path)?;
    let docs: Vec<&str> = text.split('\0').collect();
    let t = Instant::now();
    let tok = ferrotok::hf::from_file(std::path::Path::new(file))?;
    writeln!(
        std::io::stdout(),
        "load {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    )?;
    let settings = ferrotok::pipeline::Settings::default();
    for pass in 0..passes {
        let t = Instant::now();
        let mut tokens = 0;
        for d in &docs {
            tokens += tok.encode(d, None, true, &settings)?.ids.len();
        }
        let secs = t.elapsed().as_secs_f64();
        writeln!(
            std::io::stdout(),
            "pass {pass}: {tokens} tokens, {:.1} MB/s",
            text.len() as f64 / secs / 1e6
        )?;
    }
    Ok(())
}
