//! Encodes a file of NUL-separated documents as one batch and prints MB/s, first pass:
//! `cargo run --release --example batch_scale -- cl100k_base docs.txt THREADS`.
//! A profiling aid for the batch path without Python in the way. With `SETTLED=1` the timed
//! instance is a second one, loaded after a first batch with another.

use std::io::Write;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: batch_scale NAME FILE THREADS";
    let name = args.get(1).ok_or(usage)?;
    let text = std::fs::read_to_string(args.get(2).ok_or(usage)?)?;
    let threads: usize = args.get(3).ok_or(usage)?.parse()?;
    let docs: Vec<&str> = text.split('\0').collect();
    let mut bpe = ferrotok::registry::load(name)?;
    if std::env::var_os("SETTLED").is_some() {
        // a batch with another instance first: threads made, buffers mapped and freed; the
        // instance timed below still has empty caches
        ferrotok::batch::encode_all(&docs, threads, |_, d, out| bpe.encode_ordinary_into(d, out))?;
        bpe = ferrotok::registry::load(name)?;
    }
    for pass in 0..2 {
        let faults = minor_faults();
        let t = Instant::now();
        let batch = ferrotok::batch::encode_all(&docs, threads, |_, d, out| {
            bpe.encode_ordinary_into(d, out)
        })?;
        let secs = t.elapsed().as_secs_f64();
        writeln!(
            std::io::stdout(),
            "pass {pass}: {} tokens, {:.1} MB/s, {} page faults",
            batch.ids.len(),
            text.len() as f64 / secs / 1e6,
            minor_faults() - faults
        )?;
    }
    Ok(())
}

/// The process's minor page faults so far (Linux; 0 elsewhere): fresh memory is a large part
/// of a process's first batch.
fn minor_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // the fields after the command name, which is in parentheses: minflt is the 8th
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    after
        .split_whitespace()
        .nth(7)
        .and_then(|f| f.parse().ok())
        .unwrap_or(0)
}
