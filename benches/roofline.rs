//! The offline roofline: the least work any verifier must do on an evidence copy. It reads,
//! inflates and SHA-256-hashes every log file under DIR (every `*.json.gz` below a
//! `CloudTrail/` folder) with all cores, and nothing else: no digests, no signatures, no
//! budget, no report. `trailproof verify DIR` is measured against it by `benches/offline.sh`.
//!
//!   cargo bench --no-default-features --bench roofline -- DIR
//!
//! It uses the same inflate backend and hash as trailproof (flate2 on zlib-rs, sha2) and one
//! rayon task per file; `RAYON_NUM_THREADS` sets the threads. Prints one line:
//! `files=N inflated_bytes=B seconds=S` (reading the file list is not timed).

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

use flate2::read::GzDecoder;
use rayon::prelude::*;
use sha2::Digest as _;

fn log_files(dir: &Path, in_log_folder: bool, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        if entry.file_type()?.is_dir() {
            log_files(&path, in_log_folder || name == "CloudTrail", out)?;
        } else if in_log_folder && name.to_string_lossy().ends_with(".json.gz") {
            out.push(path);
        }
    }
    Ok(())
}

/// Inflated length, after hashing every inflated byte.
fn inflate_and_hash(path: &Path) -> io::Result<u64> {
    let stored = std::fs::read(path)?;
    let mut decoder = GzDecoder::new(&stored[..]);
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = decoder.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    std::hint::black_box(hasher.finalize());
    Ok(total)
}

fn main() {
    // `cargo bench` passes `--bench`; the first other argument is the directory.
    let Some(dir) = std::env::args().skip(1).find(|a| !a.starts_with("--")) else {
        eprintln!("usage: cargo bench --no-default-features --bench roofline -- DIR");
        std::process::exit(2);
    };
    let mut files = Vec::new();
    if let Err(e) = log_files(Path::new(&dir), false, &mut files) {
        eprintln!("{dir}: {e}");
        std::process::exit(2);
    }
    let start = Instant::now();
    let inflated: io::Result<Vec<u64>> = files.par_iter().map(|p| inflate_and_hash(p)).collect();
    let seconds = start.elapsed().as_secs_f64();
    match inflated {
        Ok(sizes) => println!(
            "files={} inflated_bytes={} seconds={seconds:.4}",
            files.len(),
            sizes.iter().sum::<u64>()
        ),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    }
}
