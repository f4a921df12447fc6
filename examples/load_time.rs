//! Times loading each embedded encoding, and its first encode (which builds the per-thread
//! caches and, the first time in a process, the pre-tokenizers' character tables):
//! `cargo run --release --example load_time`. The first encoding's figures are those of a
//! fresh process.

use std::io::Write;
use std::time::Instant;

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for name in ferrotok::registry::names() {
        let t = Instant::now();
        let bpe = ferrotok::registry::load(name)?;
        let first = ms(t);
        let t = Instant::now();
        bpe.encode_ordinary("hello world")?;
        let encode = ms(t);
        drop(bpe);
        let mut best = f64::MAX;
        for _ in 0..20 {
            let t = Instant::now();
            let bpe = ferrotok::registry::load(name)?;
            best = best.min(ms(t));
            drop(bpe);
        }
        writeln!(
            std::io::stdout(),
            "{name}: first load {first:.2} ms, first encode {encode:.2} ms, best of 20 loads {best:.2} ms"
        )?;
    }
    Ok(())
}
