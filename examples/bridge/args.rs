//! Command line and progress lines shared by `examples/mirror.rs` and `examples/import.rs`
//! (each includes this file with a `#[path]` module).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use seglog::bridge::Progress;

/// `--data DIR --bootstrap HOST:PORT --topic NAME... [--once]` plus the flags a tool
/// accepts beyond those (`extra`), which are returned as given.
#[allow(dead_code)] // `flags`: only the tools that take extra flags read them
pub struct Args {
    pub data: String,
    pub bootstrap: String,
    pub topics: Vec<String>,
    pub once: bool,
    pub flags: Vec<String>,
}

/// Parses the command line, or prints `usage` and returns the exit code 2.
pub fn parse(usage: &str, extra: &[&str]) -> Result<Args, ExitCode> {
    let (mut data, mut bootstrap, mut topics, mut once, mut flags) =
        (None, None, Vec::new(), false, Vec::new());
    let mut it = std::env::args().skip(1);
    let fail = |msg: String| {
        eprintln!("{msg}\nusage: {usage}");
        ExitCode::from(2)
    };
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or_else(|| fail(format!("{name} needs a value")))
        };
        match a.as_str() {
            "--data" => data = Some(value("--data")?),
            "--bootstrap" => bootstrap = Some(value("--bootstrap")?),
            "--topic" => topics.push(value("--topic")?),
            "--once" => once = true,
            "-h" | "--help" => {
                println!("usage: {usage}");
                return Err(ExitCode::SUCCESS);
            }
            f if extra.contains(&f) => flags.push(f.to_string()),
            other => return Err(fail(format!("unknown argument {other}"))),
        }
    }
    match (data, bootstrap) {
        (Some(data), Some(bootstrap)) if !topics.is_empty() => Ok(Args {
            data,
            bootstrap,
            topics,
            once,
            flags,
        }),
        _ => Err(fail(
            "--data, --bootstrap and at least one --topic are required".into(),
        )),
    }
}

/// Prints a progress line every `every` while a long run goes on.
pub struct Reporter {
    start: Instant,
    last: Instant,
    every: Duration,
    at_last: Progress,
}

impl Reporter {
    pub fn new(every: Duration) -> Reporter {
        let now = Instant::now();
        Reporter {
            start: now,
            last: now,
            every,
            at_last: Progress::default(),
        }
    }

    /// Given the totals so far: prints the rates since the last line when it is time.
    pub fn tick(&mut self, what: &str, totals: Progress) {
        let now = Instant::now();
        let dt = now - self.last;
        if dt < self.every {
            return;
        }
        let records = totals.records - self.at_last.records;
        let bytes = totals.bytes - self.at_last.bytes;
        let secs = dt.as_secs_f64();
        eprintln!(
            "{what}: {:.0} records/s, {:.2} MB/s, lag {} (total {} records, {} bytes)",
            records as f64 / secs,
            bytes as f64 / secs / 1e6,
            totals.lag,
            totals.records,
            totals.bytes
        );
        self.last = now;
        self.at_last = totals;
    }

    /// The final line: totals and average rates.
    pub fn done(&self, what: &str, totals: Progress) {
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        println!(
            "{what}: {} records, {} bytes in {} batches ({} re-encoded) in {secs:.2} s: {:.0} records/s, {:.2} MB/s; lag {}",
            totals.records,
            totals.bytes,
            totals.batches,
            totals.reencoded,
            totals.records as f64 / secs,
            totals.bytes as f64 / secs / 1e6,
            totals.lag
        );
    }
}
