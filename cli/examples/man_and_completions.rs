//! Writes the man pages and shell completions the Debian package ships, from the CLI's own
//! clap definition, so they never drift from `minga --help`:
//! `cargo run -p minga --example man_and_completions -- OUT_DIR` writes `OUT_DIR/man/*.1` and
//! `OUT_DIR/completions/{minga.bash,_minga,minga.fish}` (see `packaging/build-deb.sh`).

// The binary's argument definitions, compiled here as they are in `minga`.
#[path = "../src/args.rs"]
#[allow(dead_code)]
mod args;

use std::path::PathBuf;

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;

fn main() -> anyhow::Result<()> {
    let out = PathBuf::from(
        std::env::args_os()
            .nth(1)
            .context("usage: man_and_completions OUT_DIR")?,
    );
    let (man, completions) = (out.join("man"), out.join("completions"));
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;
    let mut command = args::Cli::command();
    // One page for `minga` and one for each subcommand (`minga-node.1`, ...).
    clap_mangen::generate_to(command.clone(), &man)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut command, "minga", &completions)?;
    }
    Ok(())
}
