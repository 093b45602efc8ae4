use std::path::PathBuf;

/// Verify an index: every file's size and checksum (recorded at commit; tantivy's own for the
/// lexical index), the structure, every document's record; names each damaged file.
#[derive(clap::Args)]
pub struct Args {
    /// Index directory
    #[arg(long)]
    index: PathBuf,
    /// Print the report as JSON
    #[arg(long)]
    json: bool,
}

pub fn main(a: Args) -> anyhow::Result<()> {
    let report = ferret_index::checksum::check_index(&a.index)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{}: generation {}, {} files ({:.1} MB) with recorded checksums, and the lexical index's",
            a.index.display(),
            report.generation,
            report.files,
            report.bytes as f64 / 1e6
        );
        for p in &report.problems {
            println!("damaged: {p}");
        }
    }
    if report.problems.is_empty() {
        if !a.json {
            println!("ok");
        }
        Ok(())
    } else {
        anyhow::bail!(
            "{}: {} problem(s) found; rebuild the index or restore a copy",
            a.index.display(),
            report.problems.len()
        )
    }
}
