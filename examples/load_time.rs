//! Times loading each embedded encoding: `cargo run --release --example load_time`.

use std::io::Write;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for name in ferrotok::registry::names() {
        let mut best = f64::MAX;
        for _ in 0..20 {
            let t = Instant::now();
            let bpe = ferrotok::registry::load(name)?;
            best = best.min(t.elapsed().as_secs_f64() * 1e3);
            drop(bpe);
        }
        writeln!(std::io::stdout(), "{name}: best of 20 loads {best:.2} ms")?;
    }
    Ok(())
}
