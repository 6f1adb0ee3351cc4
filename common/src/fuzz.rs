//! A time-budgeted driver for the property-based fuzz targets of this
//! workspace (the `fuzz` feature; tests only).
//!
//! Each target runs random cases in chunks until its budget is spent:
//! `DISCOVERD_FUZZ_SECONDS` (default 2) per target, so CI can give every
//! target the same bounded time and a person can run one for an hour. A
//! failure panics with proptest's shrunk input, to be turned into a named
//! regression test. Each chunk runs from its own printed seed; set
//! `DISCOVERD_FUZZ_SEED` to that seed to replay the failing chunk first
//! (the same cases in the same order). Every target appends one line, `name executions
//! seconds crashes`, to the file named by `DISCOVERD_FUZZ_REPORT` if set.

use std::fmt::Debug;
use std::io::Write;
use std::time::{Duration, Instant};

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseResult, TestRng, TestRunner};

/// Cases per chunk: small enough to stop close to the budget.
const CHUNK: u32 = 256;

/// The per-target budget from `DISCOVERD_FUZZ_SECONDS` (default 2 s).
pub fn budget() -> Duration {
    let secs = std::env::var("DISCOVERD_FUZZ_SECONDS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(2.0);
    Duration::from_secs_f64(secs)
}

/// Runs `test` on values of `strategy` until the budget is spent, each
/// chunk from a fresh random seed; panics on the first failure.
pub fn run<S>(name: &str, strategy: S, test: impl Fn(S::Value) -> TestCaseResult)
where
    S: Strategy,
    S::Value: Debug,
{
    let budget = budget();
    let start = Instant::now();
    let mut executions: u64 = 0;
    let mut seed = first_seed();
    eprintln!("fuzz: {name} starts from seed {seed} (DISCOVERD_FUZZ_SEED={seed} replays it)");
    loop {
        let mut runner = TestRunner::new_with_rng(
            Config {
                cases: CHUNK,
                failure_persistence: None,
                ..Config::default()
            },
            rng(seed),
        );
        if let Err(e) = runner.run(&strategy, &test) {
            report(name, executions, start.elapsed(), 1);
            panic!(
                "fuzz target {name} failed after {executions} executions: {e}\n\
                 replay: DISCOVERD_FUZZ_SEED={seed} cargo test … {name}"
            );
        }
        executions += u64::from(CHUNK);
        seed = next_seed(seed);
        if start.elapsed() >= budget {
            break;
        }
    }
    report(name, executions, start.elapsed(), 0);
}

fn report(name: &str, executions: u64, took: Duration, crashes: u32) {
    let line = format!("{name} {executions} {:.1} {crashes}", took.as_secs_f64());
    eprintln!("fuzz: {line}");
    if let Some(path) = std::env::var_os("DISCOVERD_FUZZ_REPORT") {
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = appended {
            eprintln!("fuzz: cannot append to {}: {e}", path.to_string_lossy());
        }
    }
}

/// `DISCOVERD_FUZZ_SEED`, or one from the clock and the process id.
fn first_seed() -> u64 {
    if let Some(s) = std::env::var("DISCOVERD_FUZZ_SEED")
        .ok()
        .and_then(|v| v.trim().parse().ok())
    {
        return s;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    next_seed(nanos ^ u64::from(std::process::id()).rotate_left(32))
}

/// splitmix64: the next chunk's seed.
fn next_seed(s: u64) -> u64 {
    let mut z = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn rng(seed: u64) -> TestRng {
    let mut bytes = [0u8; 32];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&next_seed(seed.wrapping_add(i as u64)).to_le_bytes());
    }
    TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::ValueTree;

    #[test]
    fn a_seed_replays_the_same_cases() {
        let draw = |seed| {
            let mut runner = TestRunner::new_with_rng(Config::default(), rng(seed));
            (0..20)
                .map(|_| {
                    proptest::collection::vec(proptest::num::u8::ANY, 0..32)
                        .new_tree(&mut runner)
                        .map(|t| t.current())
                        .unwrap_or_default()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(42), draw(42));
        assert_ne!(draw(42), draw(43));
    }
}
