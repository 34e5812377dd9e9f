//! Best and median wall time of a closure over several runs, shared by the
//! benchmarks (included with `#[path]`; each bench is its own crate).

use std::time::{Duration, Instant};

/// Runs `f` `runs` times, prints best and median with `f`'s last count of
/// `unit`, and returns the median.
pub fn time(label: &str, runs: usize, unit: &str, mut f: impl FnMut() -> usize) -> Duration {
    let mut times = Vec::with_capacity(runs);
    let mut n = 0;
    for _ in 0..runs {
        let t = Instant::now();
        n = std::hint::black_box(f());
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "{label:<44} best {:>7.1} ms   median {:>7.1} ms   ({n} {unit}, {runs} runs)",
        times[0].as_secs_f64() * 1e3,
        times[runs / 2].as_secs_f64() * 1e3
    );
    times[runs / 2]
}
