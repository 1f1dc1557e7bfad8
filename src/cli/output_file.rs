//! Files the command line writes whole or not at all: made under a temporary name of their own
//! beside the destination and renamed over it once complete, so a run that fails (or is
//! interrupted) leaves what the user had as it was. `events --out` and `verify --checkpoint`.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use jiff::Timestamp;

use super::error::CliError;

/// What may be removed if the run is interrupted (Ctrl-C, SIGTERM): the unfinished output and
/// the folder the sort spills to.
static UNFINISHED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

pub(crate) fn unfinished() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    UNFINISHED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Removes what [`UNFINISHED`] names; for an interrupted run and for one that failed.
pub(crate) fn remove_unfinished() {
    for path in unfinished().drain(..) {
        let _ = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
    }
}

/// Makes something new at `dir/PREFIX-PID-NANOS-N` with `make`, trying other names while one is
/// taken: nobody can make the run fail, or write where it writes, by making a name first.
pub(crate) fn new_exclusive<T>(
    dir: &Path,
    prefix: &str,
    make: impl Fn(&Path) -> io::Result<T>,
) -> Result<(PathBuf, T), CliError> {
    let nanos = Timestamp::now().as_nanosecond();
    let mut last = io::Error::other("no name was free");
    for n in 0..1000u32 {
        let path = dir.join(format!("{prefix}-{}-{nanos}-{n}", std::process::id()));
        match make(&path) {
            Ok(made) => return Ok((path, made)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = e,
            Err(source) => return Err(CliError::Write { path, source }),
        }
    }
    Err(CliError::Write {
        path: dir.to_owned(),
        source: last,
    })
}

/// Where the records go.
pub(crate) enum Destination {
    /// Standard output (no `--out`, or `--out -`).
    Stdout,
    /// Something that is not a regular file (a device such as /dev/null, a FIFO): written to
    /// as it is, never replaced.
    Through,
    /// A regular file, new or not: written under a temporary name beside it and renamed over
    /// it once complete (a run that fails leaves it as it was). A symbolic link is followed:
    /// the file it leads to is replaced, the link stays.
    File { part: PathBuf, path: PathBuf },
}

impl Destination {
    /// `--out`, checked against what the user gave: never inside the evidence directory and
    /// never one of `inputs` (the public-key file), however named.
    pub(crate) fn new(
        out: Option<&Path>,
        evidence: Option<&Path>,
        inputs: &[&Path],
    ) -> Result<(Self, Box<dyn Write + Send>), CliError> {
        let stdout = || -> Box<dyn Write + Send> {
            Box::new(BufWriter::with_capacity(1 << 16, io::stdout()))
        };
        let Some(out) = out.filter(|o| *o != Path::new("-")) else {
            return Ok((Destination::Stdout, stdout()));
        };
        let target = resolve(out)?;
        let given = |p: &Path| std::fs::canonicalize(p).ok();
        if let Some(root) = evidence.and_then(given) {
            if target.starts_with(&root) {
                return Err(CliError::OutputIsInput {
                    path: out.to_owned(),
                    input: root,
                });
            }
        }
        if let Some(input) = inputs.iter().find(|i| given(i).as_ref() == Some(&target)) {
            return Err(CliError::OutputIsInput {
                path: out.to_owned(),
                input: input.to_path_buf(),
            });
        }
        let existing = std::fs::metadata(&target).ok();
        if existing
            .as_ref()
            .is_some_and(|m| !m.is_file() && !m.is_dir())
        {
            let file = File::options()
                .write(true)
                .open(&target)
                .map_err(|source| CliError::Write {
                    path: out.to_owned(),
                    source,
                })?;
            return Ok((Destination::Through, Box::new(BufWriter::new(file))));
        }
        let dir = target.parent().unwrap_or(Path::new("."));
        let name = target.file_name().unwrap_or_default().to_string_lossy();
        let (part, file) = new_exclusive(dir, &format!(".{name}.trailproof"), |p| {
            File::options().write(true).create_new(true).open(p)
        })?;
        unfinished().push(part.clone());
        // The records are no more readable than the file they replace was.
        if let Some(m) = existing.filter(|m| m.is_file()) {
            let _ = std::fs::set_permissions(&part, m.permissions());
        }
        let dest = Destination::File { part, path: target };
        Ok((dest, Box::new(BufWriter::with_capacity(1 << 16, file))))
    }

    /// The output is complete: put it in place.
    pub(crate) fn keep(self) -> io::Result<()> {
        match self {
            Destination::Stdout | Destination::Through => Ok(()),
            Destination::File { part, path } => {
                unfinished().retain(|p| *p != part);
                std::fs::rename(&part, &path).inspect_err(|_| {
                    let _ = std::fs::remove_file(&part);
                })
            }
        }
    }

    /// Syncs what was written to disk (a file under its temporary name; nothing else).
    pub(crate) fn sync(&self) -> io::Result<()> {
        match self {
            Destination::File { part, .. } => File::open(part).and_then(|f| f.sync_all()),
            Destination::Stdout | Destination::Through => Ok(()),
        }
    }

    /// As [`Destination::keep`], and the rename on disk when it returns (the folder synced);
    /// after [`Destination::sync`].
    pub(crate) fn keep_durable(self) -> io::Result<()> {
        let folder = match &self {
            Destination::File { path, .. } => {
                Some(path.parent().unwrap_or(Path::new(".")).to_owned())
            }
            Destination::Stdout | Destination::Through => None,
        };
        self.keep()?;
        match folder {
            Some(dir) => File::open(dir).and_then(|d| d.sync_all()),
            None => Ok(()),
        }
    }

    /// The output is not complete: take away what was written.
    pub(crate) fn discard(self) {
        if let Destination::File { part, .. } = self {
            unfinished().retain(|p| *p != part);
            let _ = std::fs::remove_file(part);
        }
    }
}

/// Where `out` really is: symbolic links followed (also in its folders), the file itself
/// possibly not there yet.
fn resolve(out: &Path) -> Result<PathBuf, CliError> {
    let failed = |source| CliError::Write {
        path: out.to_owned(),
        source,
    };
    match std::fs::canonicalize(out) {
        Ok(p) => Ok(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let parent = match out.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            let name = out.file_name().ok_or_else(|| {
                failed(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "not a file name",
                ))
            })?;
            Ok(std::fs::canonicalize(parent).map_err(failed)?.join(name))
        }
        Err(e) => Err(failed(e)),
    }
}
