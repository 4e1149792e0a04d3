//! Archives a directory the way source-controller does and prints the digest.
//!
//! `cargo run -p ferroflux-artifact --example archive_dir -- <dir> <out.tar.gz> [spec.ignore text]`
//! (Git defaults and `.sourceignore` files apply.)

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use ferroflux_artifact::archive::{ArchiveOptions, write_archive};
use ferroflux_artifact::ignore::git_source_matcher;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: archive_dir <dir> <out.tar.gz> [spec.ignore]");
        std::process::exit(2);
    }
    let dir = Path::new(&args[1]);
    let matcher = git_source_matcher(dir, args.get(3).map(String::as_str))?;
    let out = BufWriter::new(File::create(&args[2])?);
    let (out, summary) = write_archive(dir, Some(&matcher), &ArchiveOptions::default(), out)?;
    out.into_inner()?.sync_all()?;
    println!(
        "{} {} bytes, {} entries",
        summary.digest, summary.size, summary.entries
    );
    Ok(())
}
