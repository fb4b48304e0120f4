//! Mirrors seglog topics to a Kafka cluster (see `seglog::bridge::Mirror`).
//!
//! ```text
//! cargo run --release --example mirror -- --data DIR --bootstrap HOST:PORT --topic NAME... \
//!     [--once] [--create-topics] [--durable-only]
//! ```
//!
//! Each `--topic` of the store in `DIR` goes to the remote topic of the same name,
//! partition to partition. `--once` sends everything there is, then exits 0; without it the
//! mirror follows new appends until killed, printing records/s, MB/s and lag every five
//! seconds. Progress is committed to the group `seglog-mirror` of the store: run it again
//! and it goes on where it stopped, without duplicates. `--create-topics` creates missing
//! remote topics; `--durable-only` sends only flushed records.
//!
//! Exit status: 0 on success, 1 on an error (printed), 2 for a usage error.

#[path = "bridge/args.rs"]
mod args;

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use seglog::bridge::{Mirror, MirrorConfig};
use seglog::Store;

const USAGE: &str = "mirror --data DIR --bootstrap HOST:PORT --topic NAME... [--once] [--create-topics] [--durable-only]";

fn main() -> ExitCode {
    let args = match args::parse(USAGE, &["--create-topics", "--durable-only"]) {
        Ok(a) => a,
        Err(code) => return code,
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mirror: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(args: &args::Args) -> seglog::Result<()> {
    let store = Store::open(&args.data)?;
    let mut config = MirrorConfig::new(&args.bootstrap)
        .create_topics(args.flags.iter().any(|f| f == "--create-topics"))
        .durable_only(args.flags.iter().any(|f| f == "--durable-only"));
    for t in &args.topics {
        config = config.topic(t);
    }
    let mut mirror = Mirror::new(&store, config)?;
    let mut report = args::Reporter::new(Duration::from_secs(5));
    if args.once {
        mirror.catch_up()?;
    } else {
        // Until killed: broker failures are retried (reconnecting) until they outlast
        // the delivery timeout; a refusal ends the run with its error.
        let never = AtomicBool::new(false);
        mirror.run_with(&never, |totals| report.tick("mirror", *totals))?;
    }
    report.done("mirror", mirror.totals());
    store.close()
}
