//! Encodes a file of NUL-separated documents as one batch and prints MB/s, first pass:
//! `cargo run --release --example batch_scale -- cl100k_base docs.txt THREADS`.
//! A profiling aid for the batch path without Python in the way.

use std::io::Write;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: batch_scale NAME FILE THREADS";
    let name = args.get(1).ok_or(usage)?;
    let text = std::fs::read_to_string(args.get(2).ok_or(usage)?)?;
    let threads: usize = args.get(3).ok_or(usage)?.parse()?;
    let docs: Vec<&str> = text.split('\0').collect();
    let bpe = ferrotok::registry::load(name)?;
    for pass in 0..2 {
        let t = Instant::now();
        let batch = ferrotok::batch::encode_all(&docs, threads, |_, d, out| {
            bpe.encode_ordinary_into(d, out)
        })?;
        let secs = t.elapsed().as_secs_f64();
        writeln!(
            std::io::stdout(),
            "pass {pass}: {} tokens, {:.1} MB/s",
            batch.ids.len(),
            text.len() as f64 / secs / 1e6
        )?;
    }
    Ok(())
}
