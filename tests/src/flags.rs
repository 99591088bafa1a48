//! The command lines of the benchmark binaries: `--flag value` or `--flag=value` pairs, read
//! the same way by each of them.

use anyhow::{Context, Result};

/// The `(flag, value)` pairs of the command line, in order. `-h` or `--help` prints `usage`
/// and exits; a flag without a value is an error that shows `usage`.
pub fn flag_values(usage: &str) -> Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        if arg == "-h" || arg == "--help" {
            println!("{usage}");
            std::process::exit(0);
        }
        let pair = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), value.to_owned()),
            None => {
                let value = it
                    .next()
                    .with_context(|| format!("{arg} needs a value\n{usage}"))?;
                (arg, value)
            }
        };
        pairs.push(pair);
    }
    Ok(pairs)
}
