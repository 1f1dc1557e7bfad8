//! External sort by (eventTime, eventID), for `trailproof events`.
//!
//! Entries (a key and an opaque payload, such as an output line) are held in memory up to a
//! budget, then sorted and spilled to a run file in a directory the caller chooses; the result
//! is a merge of the runs and what is still in memory. Equal keys come out in the order they
//! were pushed, so copies of one record (same eventTime and eventID) come out next to each
//! other, where a caller can merge them exactly.
//!
//! **Memory**: the payloads and event IDs held before a spill (about `memory_budget` bytes,
//! plus one entry, plus about 64 bytes per entry; with [`ExternalSort::push_deferred`], also
//! each [`Spill`] its callers are writing), then, while merging, one entry and a 64 KiB read
//! buffer per run. Runs are merged into one whenever [`FAN_IN`] of them exist, so no more
//! than [`FAN_IN`] run files are read at once (plus the one a merge writes).
//!
//! Run files are named `trailproof-sort-PID-N.run`, created new (never overwriting a file) and
//! removed when the sorter or the merge that holds them is dropped.
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::PathBuf;

use jiff::Timestamp;

/// At most this many runs wait to be merged; reaching it merges them into one.
pub const FAN_IN: usize = 64;

/// Bytes an entry costs besides its payload and event ID, for the budget.
const ENTRY_OVERHEAD: usize = 64;

/// One entry: its sort key and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `eventTime`; entries without one sort first.
    pub time: Option<Timestamp>,
    /// `eventID`; the empty string when the record has none.
    pub event_id: String,
    /// What the caller wants back, untouched.
    pub payload: Vec<u8>,
}

impl Entry {
    fn cost(&self) -> usize {
        self.payload.len() + self.event_id.len() + ENTRY_OVERHEAD
    }

    fn key_cmp(&self, other: &Entry) -> Ordering {
        (self.time, &self.event_id).cmp(&(other.time, &other.event_id))
    }
}

/// A run file, removed when dropped.
#[derive(Debug)]
pub struct Run {
    path: PathBuf,
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Sorts entries by (eventTime, eventID) within a memory budget, spilling sorted runs to files.
#[derive(Debug)]
pub struct ExternalSort {
    dir: PathBuf,
    budget: usize,
    buffer: Vec<Entry>,
    buffered: usize,
    runs: Vec<Run>,
    next_name: u64,
    spilled: usize,
}

impl ExternalSort {
    /// Spills to files in `dir` (which must exist) once the held entries cost more than
    /// `memory_budget` bytes.
    pub fn new(dir: impl Into<PathBuf>, memory_budget: usize) -> Self {
        ExternalSort {
            dir: dir.into(),
            budget: memory_budget,
            buffer: Vec::new(),
            buffered: 0,
            runs: Vec::new(),
            next_name: 0,
            spilled: 0,
        }
    }

    /// Adds one entry; may spill a run. A payload or event ID of 4 GiB or more is refused.
    /// After an I/O error the sorter has lost entries: drop it.
    pub fn push(&mut self, entry: Entry) -> io::Result<()> {
        check_size(&entry)?;
        self.buffered += entry.cost();
        self.buffer.push(entry);
        if self.buffered > self.budget {
            self.spill()?;
        }
        Ok(())
    }

    /// As [`ExternalSort::push`], but a run to spill is handed back to be written by the
    /// caller ([`Spill::write`], then [`ExternalSort::add_run`]): a sorter that threads share
    /// behind a lock is then not held while 64 MiB are sorted and written.
    pub fn push_deferred(&mut self, entry: Entry) -> io::Result<Option<Spill>> {
        check_size(&entry)?;
        self.buffered += entry.cost();
        self.buffer.push(entry);
        if self.buffered <= self.budget {
            return Ok(None);
        }
        self.buffered = 0;
        Ok(Some(Spill {
            entries: std::mem::take(&mut self.buffer),
            path: self.run_path(),
        }))
    }

    /// Adds a run written from a [`Spill`] of this sorter.
    pub fn add_run(&mut self, run: Run) -> io::Result<()> {
        self.spilled += 1;
        self.runs.push(run);
        self.merge_if_full()
    }

    /// How many runs were written so far (merges included).
    pub fn runs_written(&self) -> usize {
        self.spilled
    }

    /// Every entry pushed, in (eventTime, eventID) order, equal keys in push order.
    pub fn finish(mut self) -> io::Result<Sorted> {
        self.buffer.sort_by(Entry::key_cmp);
        let memory = std::mem::take(&mut self.buffer).into_iter();
        let runs = std::mem::take(&mut self.runs);
        Sorted::new(runs, memory)
    }

    fn spill(&mut self) -> io::Result<()> {
        self.buffered = 0;
        let spill = Spill {
            entries: std::mem::take(&mut self.buffer),
            path: self.run_path(),
        };
        let run = spill.write()?;
        self.add_run(run)
    }

    fn merge_if_full(&mut self) -> io::Result<()> {
        if self.runs.len() >= FAN_IN {
            let runs = std::mem::take(&mut self.runs);
            let merged = Sorted::new(runs, Vec::new().into_iter())?;
            let run = write_run(self.run_path(), merged)?;
            self.spilled += 1;
            self.runs.push(run);
        }
        Ok(())
    }

    /// A name for the next run file (made new when written: an existing file is not reused).
    fn run_path(&mut self) -> PathBuf {
        let name = format!(
            "trailproof-sort-{}-{}.run",
            std::process::id(),
            self.next_name
        );
        self.next_name += 1;
        self.dir.join(name)
    }
}

/// Entries that went over the budget, to be sorted and written as one run.
#[derive(Debug)]
pub struct Spill {
    entries: Vec<Entry>,
    path: PathBuf,
}

impl Spill {
    /// Sorts the entries and writes them to their run file.
    pub fn write(mut self) -> io::Result<Run> {
        self.entries.sort_by(Entry::key_cmp);
        write_run(self.path, self.entries.into_iter().map(Ok))
    }
}

fn check_size(entry: &Entry) -> io::Result<()> {
    if u32::try_from(entry.payload.len()).is_err() || u32::try_from(entry.event_id.len()).is_err() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "an entry of 4 GiB or more",
        ));
    }
    Ok(())
}

fn write_run(path: PathBuf, entries: impl Iterator<Item = io::Result<Entry>>) -> io::Result<Run> {
    // Never overwrite: a file of that name is not ours.
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    let run = Run { path };
    let mut out = BufWriter::with_capacity(1 << 16, file);
    for entry in entries {
        write_entry(&mut out, &entry?)?;
    }
    // Scratch data: flushed, not synced.
    out.flush()?;
    Ok(run)
}

fn write_entry(out: &mut impl Write, e: &Entry) -> io::Result<()> {
    match e.time {
        None => out.write_all(&[0])?,
        Some(t) => {
            out.write_all(&[1])?;
            out.write_all(&t.as_second().to_le_bytes())?;
            out.write_all(&t.subsec_nanosecond().to_le_bytes())?;
        }
    }
    for part in [e.event_id.as_bytes(), &e.payload] {
        let len = u32::try_from(part.len()).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, "an entry of 4 GiB or more")
        })?;
        out.write_all(&len.to_le_bytes())?;
        out.write_all(part)?;
    }
    Ok(())
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("sort run: {what}"))
}

fn read_array<const N: usize>(input: &mut impl Read) -> io::Result<[u8; N]> {
    let mut b = [0u8; N];
    input.read_exact(&mut b)?;
    Ok(b)
}

fn read_part(input: &mut impl Read) -> io::Result<Vec<u8>> {
    let len = u32::from_le_bytes(read_array(input)?);
    // Room for the whole part first: growing from empty copied each payload several times,
    // and the merge is the one step that does not run in parallel. Capped, so that a damaged
    // length costs what the file holds, not what it claims.
    let mut v = Vec::with_capacity((len as usize).min(1 << 20));
    input.take(u64::from(len)).read_to_end(&mut v)?;
    if v.len() != len as usize {
        return Err(invalid("truncated"));
    }
    Ok(v)
}

/// The next entry of a run, `None` at its end.
fn read_entry(input: &mut BufReader<File>) -> io::Result<Option<Entry>> {
    if input.fill_buf()?.is_empty() {
        return Ok(None);
    }
    let [flag] = read_array(input)?;
    let time = match flag {
        0 => None,
        1 => {
            let secs = i64::from_le_bytes(read_array(input)?);
            let nanos = i32::from_le_bytes(read_array(input)?);
            Some(Timestamp::new(secs, nanos).map_err(|_| invalid("bad time"))?)
        }
        _ => return Err(invalid("bad flag")),
    };
    let event_id = String::from_utf8(read_part(input)?).map_err(|_| invalid("bad event ID"))?;
    let payload = read_part(input)?;
    Ok(Some(Entry {
        time,
        event_id,
        payload,
    }))
}

enum Source {
    File(BufReader<File>),
    Memory(std::vec::IntoIter<Entry>),
}

impl Source {
    fn next(&mut self) -> io::Result<Option<Entry>> {
        match self {
            Source::File(r) => read_entry(r),
            Source::Memory(it) => Ok(it.next()),
        }
    }
}

/// An entry waiting in the merge, ordered by key then by source (earlier runs hold earlier
/// pushes), so that equal keys keep push order.
struct Head {
    entry: Entry,
    source: usize,
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        self.entry
            .key_cmp(&other.entry)
            .then(self.source.cmp(&other.source))
    }
}

/// The sorted entries: a merge of the runs and the entries still in memory. Iterating gives
/// each entry or the I/O error that stopped the merge (then nothing more). Removes its run
/// files when dropped.
pub struct Sorted {
    sources: Vec<Source>,
    heap: BinaryHeap<Reverse<Head>>,
    _runs: Vec<Run>,
    /// A source's read error, given after the entry popped when it happened.
    error: Option<io::Error>,
    failed: bool,
}

impl Sorted {
    fn new(runs: Vec<Run>, memory: std::vec::IntoIter<Entry>) -> io::Result<Self> {
        let mut sources = Vec::with_capacity(runs.len() + 1);
        for run in &runs {
            sources.push(Source::File(BufReader::with_capacity(
                1 << 16,
                File::open(&run.path)?,
            )));
        }
        sources.push(Source::Memory(memory));
        let mut heap = BinaryHeap::with_capacity(sources.len());
        for (i, s) in sources.iter_mut().enumerate() {
            if let Some(entry) = s.next()? {
                heap.push(Reverse(Head { entry, source: i }));
            }
        }
        Ok(Sorted {
            sources,
            heap,
            _runs: runs,
            error: None,
            failed: false,
        })
    }
}

impl Iterator for Sorted {
    type Item = io::Result<Entry>;

    fn next(&mut self) -> Option<io::Result<Entry>> {
        if self.failed {
            return None;
        }
        if let Some(e) = self.error.take() {
            self.failed = true;
            return Some(Err(e));
        }
        let Reverse(head) = self.heap.pop()?;
        let refill = match self.sources.get_mut(head.source) {
            Some(s) => s.next(),
            None => Ok(None),
        };
        match refill {
            Ok(Some(entry)) => self.heap.push(Reverse(Head {
                entry,
                source: head.source,
            })),
            Ok(None) => {}
            // Entries after the popped one may be missing from that source, so nothing
            // more is given once the error is.
            Err(e) => self.error = Some(e),
        }
        Some(Ok(head.entry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn entry(secs: Option<i64>, id: &str, payload: &str) -> Entry {
        Entry {
            time: secs.map(|s| Timestamp::new(s, 7).unwrap()),
            event_id: id.to_owned(),
            payload: payload.as_bytes().to_vec(),
        }
    }

    fn run_files(dir: &Path) -> usize {
        std::fs::read_dir(dir).unwrap().count()
    }

    #[test]
    fn sorts_in_memory_without_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ExternalSort::new(dir.path(), 1 << 20);
        for e in [
            entry(Some(5), "b", "5b"),
            entry(None, "z", "none"),
            entry(Some(5), "a", "5a"),
            entry(Some(1), "x", "1x"),
            entry(Some(5), "a", "5a again"),
        ] {
            s.push(e).unwrap();
        }
        assert_eq!(s.runs_written(), 0);
        let out: Vec<String> = s
            .finish()
            .unwrap()
            .map(|e| String::from_utf8(e.unwrap().payload).unwrap())
            .collect();
        assert_eq!(out, ["none", "1x", "5a", "5a again", "5b"]);
        assert_eq!(run_files(dir.path()), 0);
    }

    #[test]
    fn spills_merges_keeps_push_order_for_equal_keys_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        // A budget of about two entries: hundreds of runs, so merges of FAN_IN runs happen.
        let mut s = ExternalSort::new(dir.path(), 2 * (ENTRY_OVERHEAD + 16));
        let n = 2_000u64;
        let mut pushed = Vec::new();
        for i in 0..n {
            // A scrambled order, with many equal keys.
            let k = (i * 7919) % 97;
            let e = entry(
                (k % 5 != 0).then_some(k as i64 / 3),
                &format!("id{}", k % 4),
                &format!("{i:06}"),
            );
            pushed.push(e.clone());
            s.push(e).unwrap();
        }
        assert!(s.runs_written() > FAN_IN, "{}", s.runs_written());
        assert!(run_files(dir.path()) < FAN_IN);
        let out: Vec<Entry> = s.finish().unwrap().map(Result::unwrap).collect();
        // A stable sort of what was pushed.
        pushed.sort_by(Entry::key_cmp);
        assert_eq!(out, pushed);
        assert_eq!(run_files(dir.path()), 0);
    }

    #[test]
    fn dropping_a_merge_midway_removes_its_files_and_a_bad_dir_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ExternalSort::new(dir.path(), 0);
        for i in 0..10 {
            s.push(entry(Some(i), "e", "x")).unwrap();
        }
        assert_eq!(run_files(dir.path()), 10);
        let mut sorted = s.finish().unwrap();
        assert!(sorted.next().unwrap().is_ok());
        drop(sorted);
        assert_eq!(run_files(dir.path()), 0);

        let mut s = ExternalSort::new(dir.path().join("absent"), 0);
        assert!(s.push(entry(None, "", "")).is_err());
    }

    /// Takes the last 3 bytes off the one run file in `dir`.
    fn cut_the_run(dir: &std::path::Path) {
        let run = std::fs::read_dir(dir)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let bytes = std::fs::read(&run).unwrap();
        std::fs::write(&run, &bytes[..bytes.len() - 3]).unwrap();
    }

    #[test]
    fn a_corrupt_run_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ExternalSort::new(dir.path(), 0);
        s.push(entry(Some(1), "a", "payload")).unwrap();
        cut_the_run(dir.path());
        s.push(entry(Some(2), "b", "more")).unwrap();
        // The first entry of each run is read when the merge starts.
        assert!(s.finish().is_err());

        // Corrupt after the first entry: an error from the iterator, then nothing.
        let dir = tempfile::tempdir().unwrap();
        let mut s = ExternalSort::new(dir.path(), 200);
        s.push(entry(Some(1), "a", "payload")).unwrap();
        s.push(entry(Some(2), "b", &"x".repeat(300))).unwrap();
        assert_eq!(s.runs_written(), 1);
        cut_the_run(dir.path());
        let out: Vec<io::Result<Entry>> = s.finish().unwrap().collect();
        assert_eq!(out.len(), 2);
        assert!(out[0].is_ok() && out[1].is_err());
    }
}
