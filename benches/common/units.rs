//! What the bench binaries share to size and print a run (included with `#[path]`: each
//! bench is its own crate, and the peer comparison its own package).

/// True when `SEGLOG_BENCH_QUICK` asks for a scaled-down run.
pub fn quick_from_env() -> bool {
    std::env::var("SEGLOG_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// `1234567` → `1.23M`.
pub fn si(x: f64) -> String {
    let (v, unit) = if x >= 1e9 {
        (x / 1e9, "G")
    } else if x >= 1e6 {
        (x / 1e6, "M")
    } else if x >= 1e3 {
        (x / 1e3, "k")
    } else {
        (x, "")
    };
    if v >= 100.0 {
        format!("{v:.0}{unit}")
    } else if v >= 10.0 {
        format!("{v:.1}{unit}")
    } else {
        format!("{v:.2}{unit}")
    }
}
