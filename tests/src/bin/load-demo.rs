//! `cargo run -p minga-tests --bin load-demo [-- HOST:PORT]`: loads the sample commons into the
//! node whose API listens there (default `127.0.0.1:7878`) and prints what it created.

use anyhow::Context;
use minga_tests::{Api, demo};

fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7878".into());
    let api = Api::new(format!("http://{addr}"));
    let loaded = demo::load(&api, &demo::sample()).context("loading the sample commons")?;
    for (name, id) in &loaded.collections {
        println!("collection {id}  {name}");
    }
    for (title, id) in &loaded.entries {
        println!("entry      {id}  {title}");
    }
    Ok(())
}
