//! The CLI's only ways to print: results on stdout, one-line errors on stderr.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use serde::Serialize;

/// Prints text as is.
pub fn text(s: &str) {
    print!("{s}");
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
