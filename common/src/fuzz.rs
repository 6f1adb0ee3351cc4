//! A time-budgeted driver for the property-based fuzz targets of this
//! workspace (the `fuzz` feature; tests only).
//!
//! Each target runs random cases in chunks until its budget is spent:
//! `DISCOVERD_FUZZ_SECONDS` (default 2) per target, so CI can give every
//! target the same bounded time and a person can run one for an hour. A
//! failure panics with proptest's shrunk input, to be turned into a named
//! regression test. Every target appends one line, `name executions
//! seconds crashes`, to the file named by `DISCOVERD_FUZZ_REPORT` if set.

use std::fmt::Debug;
use std::io::Write;
use std::time::{Duration, Instant};

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, TestCaseResult, TestRunner};

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
    loop {
        let mut runner = TestRunner::new(Config {
            cases: CHUNK,
            failure_persistence: None,
            ..Config::default()
        });
        if let Err(e) = runner.run(&strategy, &test) {
            report(name, executions, start.elapsed(), 1);
            panic!("fuzz target {name} failed after {executions} executions: {e}");
        }
        executions += u64::from(CHUNK);
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
