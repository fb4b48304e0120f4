//! Re-running this test binary as a child process, for tests that kill a process, let it
//! exit without closing its store, or run it under other limits.
//!
//! The child runs one `#[test]` of the binary, a *helper*, which returns at once unless the
//! environment variables its parent sets are there; the parent reads what it prints.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread::{self, JoinHandle};
use std::time::Instant;

/// Marks the line a helper reports its result on ([`report`], [`run_for_report`]).
const REPORT: &str = "CHILD-REPORT:";

/// This test binary, as a new process.
pub fn this_binary() -> Command {
    Command::new(std::env::current_exe().unwrap())
}

/// A command running only the test `helper` of this binary, its output not captured by
/// libtest (so the parent sees it; libtest may print "test <helper> ... " before the first
/// line, so look for tags anywhere in a line). Set the helper's variables with `env`.
pub fn helper(helper: &str) -> Command {
    let mut cmd = this_binary();
    cmd.args([helper, "--exact", "--nocapture", "--test-threads=1"]);
    cmd
}

/// In a helper: prints `report` on the line [`run_for_report`] looks for, and flushes it
/// (a helper may end with `std::process::exit`, which flushes nothing).
pub fn report(report: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{REPORT}{report}").unwrap();
    out.flush().unwrap();
}

/// Runs `cmd` to its end; it must exit successfully having printed a [`report`] line.
/// Returns the report.
pub fn run_for_report(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.split_once(REPORT).map(|(_, r)| r.trim_end()))
        .unwrap_or_else(|| panic!("no report from child:\n{stdout}"))
        .to_string()
}

/// A running child whose stdout arrives line by line, each line stamped with its arrival.
pub struct LineChild {
    child: Child,
    /// Whole lines, newline included: a line cut short by a kill is never sent.
    pub lines: Receiver<(Instant, String)>,
    stdout: JoinHandle<()>,
    stderr: JoinHandle<String>,
}

/// What is left of a killed [`LineChild`].
pub struct Killed {
    pub status: ExitStatus,
    /// The lines not received from [`LineChild::lines`] before the kill.
    pub rest: Vec<(Instant, String)>,
    pub stderr: String,
}

/// Starts `cmd` with stdin empty and stdout and stderr piped.
pub fn spawn_lines(cmd: &mut Command) -> LineChild {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let (tx, lines) = mpsc::channel();
    let stdout = thread::spawn(move || {
        let mut r = BufReader::new(out);
        let mut line = String::new();
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(n) if n > 0 && line.ends_with('\n') => {
                    if tx.send((Instant::now(), line.clone())).is_err() {
                        break;
                    }
                }
                _ => break,
            }
        }
    });
    let stderr = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    LineChild {
        child,
        lines,
        stdout,
        stderr,
    }
}

impl LineChild {
    /// Kills the child (SIGKILL; an error only means it had exited already), waits for it
    /// and for its output to end.
    pub fn kill(mut self) -> Killed {
        let _ = self.child.kill();
        let status = self.child.wait().unwrap();
        self.stdout.join().unwrap();
        Killed {
            status,
            rest: self.lines.try_iter().collect(),
            stderr: self.stderr.join().unwrap(),
        }
    }
}
