//! Imports Kafka topics into a seglog store (see `seglog::bridge::Import`).
//!
//! ```text
//! cargo run --release --example import -- --data DIR --bootstrap HOST:PORT --topic NAME... [--once]
//! ```
//!
//! Each remote `--topic` is fetched into the local topic of the same name (created with
//! the remote partition count when missing), batch by batch with the same offsets.
//! `--once` imports up to each partition's end as found at the start, then exits 0; without
//! it the import follows the remote topics until killed, printing records/s, MB/s and lag
//! every five seconds. Run it again and it goes on from the local log end.
//!
//! Exit status: 0 on success, 1 on an error (printed), 2 for a usage error.

#[path = "bridge/args.rs"]
mod args;

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use seglog::bridge::{Import, ImportConfig};
use seglog::Store;

const USAGE: &str = "import --data DIR --bootstrap HOST:PORT --topic NAME... [--once]";

fn main() -> ExitCode {
    let args = match args::parse(USAGE, &[]) {
        Ok(a) => a,
        Err(code) => return code,
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("import: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(args: &args::Args) -> seglog::Result<()> {
    let store = Store::open(&args.data)?;
    let mut config = ImportConfig::new(&args.bootstrap);
    for t in &args.topics {
        config = config.topic(t);
    }
    let mut import = Import::new(&store, config)?;
    let mut report = args::Reporter::new(Duration::from_secs(5));
    if args.once {
        import.catch_up()?;
    } else {
        // Until killed: broker failures are retried (reconnecting) until they outlast
        // the delivery timeout; a refusal ends the run with its error.
        let never = AtomicBool::new(false);
        import.run_with(&never, |totals| report.tick("import", *totals))?;
    }
    report.done("import", import.totals());
    store.close()
}
