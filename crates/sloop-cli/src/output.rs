//! The CLI's only ways to print: results on stdout, one-line errors on stderr.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use serde::Serialize;

/// Prints text as is. A reader that went away (`sloop … | head`) ends the output quietly.
pub fn text(s: &str) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(s.as_bytes()).and_then(|()| stdout.flush())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("sloop: cannot write to standard output: {e}");
    }
}

/// Prints `value` as pretty JSON.
pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints the error and its causes on one line, and returns the failure status.
pub fn fail(error: &anyhow::Error) -> ExitCode {
    let chain: Vec<String> = error.chain().map(ToString::to_string).collect();
    eprintln!("sloop: {}", chain.join(": "));
    ExitCode::from(2)
}

/// Prints `value` as JSON on one line: for streams of objects (`proxy watch`).
pub fn json_line<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

/// Prints a warning line on stderr.
pub fn warn(message: &str) {
    eprintln!("sloop: {message}");
}

/// Prints a line about what is going on (waiting, progress) on stderr, apart from results.
pub fn note(message: &str) {
    eprintln!("{message}");
}

/// A byte count in decimal units, as download tools show them: `22.1 MB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
