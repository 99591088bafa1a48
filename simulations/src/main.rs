//! `minga-simulations`: runs a scenario file and writes its report, or runs several and
//! regenerates the summary table of `docs/simulations.md`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use minga_simulations::{Report, Scenario};

mod table;

#[derive(Parser)]
#[command(about = "Seeded simulations of Minga's sync core")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs one scenario; prints the summary and writes CSV and PNG files.
    Run {
        scenario: PathBuf,
        /// Seed (default: the scenario's; also read from MINGA_SIM_SEED).
        #[arg(long, env = "MINGA_SIM_SEED")]
        seed: Option<u64>,
        /// Directory for the report (default: target/simulations/NAME-SEED).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Runs scenarios with their own seeds and rewrites the table in a Markdown file.
    Docs {
        scenarios: Vec<PathBuf>,
        #[arg(long, default_value = "docs/simulations.md")]
        doc: PathBuf,
        /// Where each run's report goes (one directory per scenario).
        #[arg(long, default_value = "target/simulations")]
        out: PathBuf,
    },
}

fn run_one(path: &Path, seed: Option<u64>, out: Option<PathBuf>, root: &Path) -> Result<Report> {
    let scenario = Scenario::load(path)?;
    let seed = seed.unwrap_or(scenario.seed);
    eprintln!("running {} with seed {seed}", scenario.name);
    let started = Instant::now();
    let report = minga_simulations::run(&scenario, seed);
    eprintln!(
        "ran in {:.1} s of wall time",
        started.elapsed().as_secs_f64()
    );
    let dir = out.unwrap_or_else(|| root.join(format!("{}-{seed}", scenario.name)));
    report
        .write(&dir)
        .with_context(|| format!("writing the report to {}", dir.display()))?;
    print!("{}", report.summary());
    println!("report written to {}", dir.display());
    Ok(report)
}

fn main() -> Result<()> {
    let args = Args::parse();
    match args.command {
        Command::Run {
            scenario,
            seed,
            out,
        } => {
            run_one(&scenario, seed, out, Path::new("target/simulations"))?;
        }
        Command::Docs {
            scenarios,
            doc,
            out,
        } => {
            let mut reports = Vec::new();
            for path in &scenarios {
                reports.push(run_one(path, None, None, &out)?);
            }
            table::rewrite(&doc, &reports)?;
            println!("table rewritten in {}", doc.display());
        }
    }
    Ok(())
}
