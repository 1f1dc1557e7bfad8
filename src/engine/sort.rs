//! External sort by (eventTime, eventID), for `trailproof events`.
//!
//! Entries (a key and an opaque payload, such as an output line) are held in memory up to a
//! budget, then sorted and spilled to a run file in a directory the caller chooses; the result
//! is a merge of the runs and what is still in memory. Equal keys come out in the order they
//! were pushed, so copies of one record (same eventTime and eventID) come out next to each
//! other, where a caller can merge them exactly.
//!
//! **Memory**: the entries held before a spill (about `memory_budget` bytes, plus one
//! [`Batch`], plus about 64 bytes per entry; with [`ExternalSort::push_deferred_with`], also each
//! [`Spill`] its callers are writing), then, while merging, one entry and a 64 KiB read buffer
//! per run (with [`Sorted::in_background`], also the batches of merged entries handed over:
//! [`BATCHES_AHEAD`] waiting, one being filled and one being read). Runs are merged into one whenever [`FAN_IN`] of them exist, so no more than
//! [`FAN_IN`] run files are read at once (plus the one a merge writes).
//!
//! Held entries live in one block of `memory_budget` bytes, not one allocation each: where
//! hundreds of thousands of small allocations freed on one thread and made again on another
//! left the allocator's per-thread arenas holding more memory the longer the export ran. A
//! block whose run is written comes back emptied ([`Written`]) and holds the next entries: a
//! new block each time cost a fault of every page as it filled (a tenth of an export's CPU
//! time in a profile, taken under the lock its callers share), and one spare is kept at most.
//!
//! Run files are named `trailproof-sort-PID-N.run`, created new (never overwriting a file) and
//! removed when the sorter or the merge that holds them is dropped.
use std::cmp::{Ordering, Reverse};
use std::collections::binary_heap::PeekMut;
use std::collections::BinaryHeap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use jiff::Timestamp;

/// At most this many runs wait to be merged; reaching it merges them into one.
/// (A run costs a 64 KiB read buffer and one entry while merging: 256 runs are 16 MiB. Fewer
/// meant merging a 10x corpus's runs once more before the final merge, 2 GB written again.)
pub const FAN_IN: usize = 256;

/// Bytes an entry costs besides its payload and event ID, for the budget.
const ENTRY_OVERHEAD: usize = 64;

/// One entry: its sort key and payload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    /// `eventTime`; entries without one sort first.
    pub time: Option<Timestamp>,
    /// `eventID`; the empty string when the record has none.
    pub event_id: String,
    /// What the caller wants back, untouched.
    pub payload: Vec<u8>,
}

impl Entry {
    fn key_cmp(&self, other: &Entry) -> Ordering {
        (self.time, &self.event_id).cmp(&(other.time, &other.event_id))
    }
}

/// Where a held entry's event ID and payload are in its [`Batch`]'s bytes.
#[derive(Debug, Clone, Copy)]
struct Slot {
    time: Option<Timestamp>,
    start: usize,
    id_len: u32,
    payload_len: u32,
}

/// Entries held together: their event IDs and payloads back to back in one buffer. A caller
/// makes one per log file (one allocation for all its records), the sorter holds one until it
/// spills.
#[derive(Debug, Default)]
pub struct Batch {
    bytes: Vec<u8>,
    slots: Vec<Slot>,
}

impl Batch {
    /// An empty batch with room for `bytes` bytes of event IDs and payloads.
    pub fn with_capacity(bytes: usize) -> Self {
        Batch {
            bytes: Vec::with_capacity(bytes),
            slots: Vec::new(),
        }
    }

    /// Adds an entry whose payload is `payload`'s parts one after the other. A payload or
    /// event ID of 4 GiB or more is refused.
    pub fn push(
        &mut self,
        time: Option<Timestamp>,
        event_id: &str,
        payload: &[&[u8]],
    ) -> io::Result<()> {
        let payload_len: usize = payload.iter().map(|p| p.len()).sum();
        let (Ok(id_len), Ok(payload_len)) =
            (u32::try_from(event_id.len()), u32::try_from(payload_len))
        else {
            return Err(too_big());
        };
        let start = self.bytes.len();
        self.bytes.extend_from_slice(event_id.as_bytes());
        for part in payload {
            self.bytes.extend_from_slice(part);
        }
        self.slots.push(Slot {
            time,
            start,
            id_len,
            payload_len,
        });
        Ok(())
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// What it costs against the budget.
    fn cost(&self) -> usize {
        self.bytes.len() + self.slots.len() * ENTRY_OVERHEAD
    }

    /// Empties it, keeping its room.
    fn clear(&mut self) {
        self.bytes.clear();
        self.slots.clear();
    }

    /// Moves `other`'s entries to the end of this one.
    fn append(&mut self, other: Batch) {
        let base = self.bytes.len();
        self.bytes.extend_from_slice(&other.bytes);
        self.slots.extend(other.slots.into_iter().map(|s| Slot {
            start: s.start + base,
            ..s
        }));
    }

    fn id(&self, s: &Slot) -> &[u8] {
        self.bytes
            .get(s.start..s.start + s.id_len as usize)
            .unwrap_or_default()
    }

    fn payload(&self, s: &Slot) -> &[u8] {
        let from = s.start + s.id_len as usize;
        self.bytes
            .get(from..from + s.payload_len as usize)
            .unwrap_or_default()
    }

    /// Sorts the entries by key, equal keys in push order.
    fn sort(&mut self) {
        // Compared by eventTime and the event ID's first 8 bytes as one integer, which orders
        // as the bytes do (IDs are UUIDs: they nearly always differ there), then by the whole
        // ID and the place pushed: a quarter of the instructions of comparing slices of the
        // block each time (the sort of a run was 4 % of an export's instructions).
        let keyed = |(place, s): (usize, &Slot)| {
            let id = self.id(s);
            let mut first = [0u8; 8];
            for (to, from) in first.iter_mut().zip(id) {
                *to = *from;
            }
            (s.time, u64::from_be_bytes(first), place)
        };
        let mut keys: Vec<_> = self.slots.iter().enumerate().map(keyed).collect();
        let id = |place: usize| self.slots.get(place).map(|s| self.id(s));
        keys.sort_unstable_by(|a, b| {
            (a.0, a.1)
                .cmp(&(b.0, b.1))
                .then_with(|| id(a.2).cmp(&id(b.2)))
                .then(a.2.cmp(&b.2))
        });
        let slots: Vec<Slot> = keys
            .iter()
            .filter_map(|&(_, _, place)| self.slots.get(place).copied())
            .collect();
        self.slots = slots;
    }

    /// The `i`th entry held: eventTime, event ID and payload.
    pub fn get(&self, i: usize) -> Option<(Option<Timestamp>, &[u8], &[u8])> {
        let s = self.slots.get(i)?;
        Some((s.time, self.id(s), self.payload(s)))
    }

    /// The entries, borrowed, in the order held: eventTime, event ID and payload.
    pub fn entries(&self) -> impl Iterator<Item = (Option<Timestamp>, &[u8], &[u8])> + '_ {
        self.slots
            .iter()
            .map(|s| (s.time, self.id(s), self.payload(s)))
    }

    /// Writes the entries, in the order held.
    fn write(&self, out: &mut impl Write) -> io::Result<()> {
        for s in &self.slots {
            write_parts(out, s.time, self.id(s), self.payload(s))?;
        }
        Ok(())
    }
}

fn too_big() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "an entry of 4 GiB or more")
}

/// A run file, removed when dropped. It is read back through the handle it was written
/// with, never opened again by its name: a file put in its place, or the folder renamed and
/// another put there, is never read (found by the red team: run files were read back by
/// path, so whoever could write in the temporary folder could change records that were then
/// written out as proven).
#[derive(Debug)]
pub struct Run {
    path: PathBuf,
    file: File,
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
    held: Batch,
    runs: Vec<Run>,
    /// A block whose run was written, emptied, to hold the next entries.
    spare: Option<Batch>,
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
            held: Batch::default(),
            runs: Vec::new(),
            spare: None,
            next_name: 0,
            spilled: 0,
        }
    }

    /// Adds a batch of entries; may spill a run. After an I/O error the sorter has lost
    /// entries: drop it.
    pub fn push(&mut self, batch: Batch) -> io::Result<()> {
        for spill in [self.make_room(&batch), self.hold(batch)]
            .into_iter()
            .flatten()
        {
            let run = spill.write()?;
            self.add_run(run)?;
        }
        Ok(())
    }

    /// As [`ExternalSort::push`], for entries of at most `bytes` bytes of event IDs and
    /// payloads that `fill` pushes straight into the block held (each copied once, not into a
    /// batch and then into the block: a copy of every record), and a run to spill is handed
    /// back to be written by the caller ([`Spill::write`], then [`ExternalSort::add_run`]): a
    /// sorter that threads share behind a lock is then not held while 64 MiB are sorted and
    /// written. Two may come back: what was held, when the entries would not fit beside it,
    /// then the entries themselves, when they are over the budget alone. An error from `fill`
    /// leaves some of its entries held and a spill made before it lost: drop the sorter.
    pub fn push_deferred_with(
        &mut self,
        bytes: usize,
        fill: impl FnOnce(&mut Batch) -> io::Result<()>,
    ) -> io::Result<Vec<Spill>> {
        let mut spills = Vec::new();
        if bytes == 0 {
            return Ok(spills);
        }
        let fits = self.held.bytes.len() + bytes <= self.held.bytes.capacity();
        if !self.held.is_empty() && !fits {
            spills.push(self.take());
        }
        self.ready(bytes);
        fill(&mut self.held)?;
        if self.held.cost() > self.budget {
            spills.push(self.take());
        }
        Ok(spills)
    }

    /// Adds a run written from a [`Spill`] of this sorter, and keeps its block for the next
    /// entries.
    pub fn add_run(&mut self, written: Written) -> io::Result<()> {
        let Written { run, room } = written;
        self.spilled += 1;
        self.runs.push(run);
        if self.spare.is_none() {
            self.spare = Some(room);
        }
        self.merge_if_full()
    }

    /// How many runs were written so far (merges included).
    pub fn runs_written(&self) -> usize {
        self.spilled
    }

    /// Every entry pushed, in (eventTime, eventID) order, equal keys in push order.
    pub fn finish(mut self) -> io::Result<Sorted> {
        self.spare = None;
        let mut held = std::mem::take(&mut self.held);
        held.sort();
        let runs = std::mem::take(&mut self.runs);
        Sorted::new(runs, held)
    }

    /// What is held, to spill first if `batch` would not fit in its block: the block is
    /// never grown (growing copies it, and holds both for a moment).
    fn make_room(&mut self, batch: &Batch) -> Option<Spill> {
        let fits = self.held.bytes.len() + batch.bytes.len() <= self.held.bytes.capacity();
        (!self.held.is_empty() && !fits).then(|| self.take())
    }

    /// Holds `batch`; what is held, to spill, if it is now over the budget.
    fn hold(&mut self, batch: Batch) -> Option<Spill> {
        if batch.is_empty() {
            return None;
        }
        self.ready(batch.bytes.len());
        self.held.append(batch);
        (self.held.cost() > self.budget).then(|| self.take())
    }

    /// A block for the entries to hold, with room for `bytes` more, when none is held (the
    /// spare, if it is large enough).
    fn ready(&mut self, bytes: usize) {
        let room = self.budget.max(bytes);
        if self.held.is_empty() && self.held.bytes.capacity() < room {
            self.held = match self.spare.take() {
                Some(spare) if spare.bytes.capacity() >= room => spare,
                _ => Batch::with_capacity(room),
            };
        }
    }

    fn take(&mut self) -> Spill {
        Spill {
            held: std::mem::take(&mut self.held),
            path: self.run_path(),
        }
    }

    fn merge_if_full(&mut self) -> io::Result<()> {
        if self.runs.len() >= FAN_IN {
            let runs = std::mem::take(&mut self.runs);
            let merged = Sorted::new(runs, Batch::default())?;
            let run = write_run(self.run_path(), |out| {
                for entry in merged {
                    let e = entry?;
                    write_parts(out, e.time, e.event_id.as_bytes(), &e.payload)?;
                }
                Ok(())
            })?;
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
    held: Batch,
    path: PathBuf,
}

impl Spill {
    /// Sorts the entries and writes them to their run file.
    pub fn write(mut self) -> io::Result<Written> {
        self.held.sort();
        let mut room = self.held;
        let run = write_run(self.path, |out| room.write(out))?;
        room.clear();
        Ok(Written { run, room })
    }
}

/// A run written from a [`Spill`], and the spill's block, emptied: for
/// [`ExternalSort::add_run`].
#[derive(Debug)]
pub struct Written {
    run: Run,
    room: Batch,
}

fn write_run(
    path: PathBuf,
    write: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> io::Result<Run> {
    // Never overwrite: a file of that name is not ours. Only its owner may read or change
    // it: what it holds is written out as proven.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    let mut out = BufWriter::with_capacity(1 << 16, file.try_clone()?);
    let run = Run { path, file };
    write(&mut out)?;
    // Scratch data: flushed, not synced.
    out.flush()?;
    Ok(run)
}

fn write_parts(
    out: &mut impl Write,
    time: Option<Timestamp>,
    event_id: &[u8],
    payload: &[u8],
) -> io::Result<()> {
    match time {
        None => out.write_all(&[0])?,
        Some(t) => {
            out.write_all(&[1])?;
            out.write_all(&t.as_second().to_le_bytes())?;
            out.write_all(&t.subsec_nanosecond().to_le_bytes())?;
        }
    }
    for part in [event_id, payload] {
        let len = u32::try_from(part.len()).map_err(|_| too_big())?;
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

/// Reads a part's bytes into `into` (emptied first, its room reused).
fn read_part(input: &mut impl BufRead, into: &mut Vec<u8>) -> io::Result<()> {
    let len = u32::from_le_bytes(read_array(input)?) as usize;
    into.clear();
    // Copied from the read buffer as it comes, so that a damaged length costs what the file
    // holds, not what it claims (and no room is zeroed first, nor probed for as
    // `read_to_end` does: the merge is the step that runs on one thread).
    let mut left = len;
    while left > 0 {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            return Err(invalid("truncated"));
        }
        let n = buf.len().min(left);
        into.extend_from_slice(buf.get(..n).unwrap_or_default());
        input.consume(n);
        left -= n;
    }
    Ok(())
}

/// Reads a run's next entry into `entry` (its buffers reused); `false` at the run's end.
fn read_entry(input: &mut BufReader<File>, entry: &mut Entry) -> io::Result<bool> {
    if input.fill_buf()?.is_empty() {
        return Ok(false);
    }
    let [flag] = read_array(input)?;
    entry.time = match flag {
        0 => None,
        1 => {
            let secs = i64::from_le_bytes(read_array(input)?);
            let nanos = i32::from_le_bytes(read_array(input)?);
            Some(Timestamp::new(secs, nanos).map_err(|_| invalid("bad time"))?)
        }
        _ => return Err(invalid("bad flag")),
    };
    let mut id = std::mem::take(&mut entry.event_id).into_bytes();
    read_part(input, &mut id)?;
    entry.event_id = String::from_utf8(id).map_err(|_| invalid("bad event ID"))?;
    read_part(input, &mut entry.payload)?;
    Ok(true)
}

enum Source {
    File(BufReader<File>),
    /// The entries still held when the merge started, sorted, and the next one's place.
    Memory(Batch, usize),
}

impl Source {
    /// Reads the next entry into `entry` (its buffers reused); `false` at the end.
    fn next_into(&mut self, entry: &mut Entry) -> io::Result<bool> {
        match self {
            Source::File(r) => read_entry(r, entry),
            Source::Memory(held, next) => {
                let Some((time, id, payload)) = held.get(*next) else {
                    return Ok(false);
                };
                *next += 1;
                let id = std::str::from_utf8(id).map_err(|_| invalid("bad event ID"))?;
                entry.time = time;
                entry.event_id.clear();
                entry.event_id.push_str(id);
                entry.payload.clear();
                entry.payload.extend_from_slice(payload);
                Ok(true)
            }
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
/// each entry or the I/O error that stopped the merge (then nothing more); so does
/// [`Sorted::in_background`], in batches. Removes its run files when dropped.
pub struct Sorted {
    sources: Vec<Source>,
    heap: BinaryHeap<Reverse<Head>>,
    _runs: Vec<Run>,
    /// A source's read error, given after the entry popped when it happened.
    error: Option<io::Error>,
    failed: bool,
}

impl Sorted {
    fn new(runs: Vec<Run>, held: Batch) -> io::Result<Self> {
        let mut sources = Vec::with_capacity(runs.len() + 1);
        for run in &runs {
            let mut file = run.file.try_clone()?;
            file.seek(SeekFrom::Start(0))?;
            sources.push(Source::File(BufReader::with_capacity(1 << 16, file)));
        }
        sources.push(Source::Memory(held, 0));
        let mut heap = BinaryHeap::with_capacity(sources.len());
        for (i, s) in sources.iter_mut().enumerate() {
            let mut entry = Entry::default();
            if s.next_into(&mut entry)? {
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

    /// Gives the merge's top entry to `take`, then puts its source's next entry in its place;
    /// `false` when nothing is left (or the merge failed before).
    fn step(&mut self, take: impl FnOnce(&mut Entry)) -> bool {
        if self.failed || self.error.is_some() {
            return false;
        }
        let Some(mut top) = self.heap.peek_mut() else {
            return false;
        };
        take(&mut top.0.entry);
        let refill = match self.sources.get_mut(top.0.source) {
            Some(s) => s.next_into(&mut top.0.entry),
            None => Ok(false),
        };
        match refill {
            // The source's next entry takes its place at the top, sifted down once (a pop
            // and a push would sift twice).
            Ok(true) => {}
            Ok(false) => {
                PeekMut::pop(top);
            }
            // Entries after this one may be missing from that source, so nothing more is
            // given once the error is.
            Err(e) => {
                PeekMut::pop(top);
                self.error = Some(e);
            }
        }
        true
    }

    /// The error that stopped the merge, once (then the merge has ended).
    fn take_error(&mut self) -> Option<io::Error> {
        let e = self.error.take()?;
        self.failed = true;
        Some(e)
    }

    /// Merges on a thread of its own, which hands the entries over in order in batches of
    /// about `bytes` bytes: the merge (reading the runs, choosing the next entry) then
    /// overlaps with what the caller does with the entries. At most [`BATCHES_AHEAD`] batches
    /// wait. Dropping the result stops the thread (and removes the run files).
    pub fn in_background(mut self, bytes: usize) -> io::Result<Background> {
        let (send, batches) = sync_channel::<io::Result<Batch>>(BATCHES_AHEAD);
        let (give_back, spares) = sync_channel::<Batch>(BATCHES_AHEAD);
        let thread = std::thread::Builder::new()
            .name("trailproof-merge".into())
            .spawn(move || loop {
                let mut batch = spares
                    .try_recv()
                    .unwrap_or_else(|_| Batch::with_capacity(2 * bytes));
                let mut pushed = Ok(());
                while batch.bytes.len() < bytes
                    && self.step(|e| {
                        pushed = batch.push(e.time, &e.event_id, &[&e.payload]);
                    })
                {
                    if pushed.is_err() {
                        break;
                    }
                }
                let error = pushed.err().or_else(|| self.take_error());
                let last = error.is_some() || batch.is_empty();
                // What was merged before an error is handed over first.
                let handed = (batch.is_empty() || send.send(Ok(batch)).is_ok())
                    && error.is_none_or(|e| send.send(Err(e)).is_ok());
                if last || !handed {
                    return;
                }
            })?;
        Ok(Background {
            batches: Some(batches),
            give_back: Some(give_back),
            thread: Some(thread),
        })
    }
}

/// Batches a [`Background`] merge may have ready before they are taken.
pub const BATCHES_AHEAD: usize = 2;

/// A merge running on a thread of its own ([`Sorted::in_background`]).
#[derive(Debug)]
pub struct Background {
    batches: Option<Receiver<io::Result<Batch>>>,
    give_back: Option<SyncSender<Batch>>,
    thread: Option<JoinHandle<()>>,
}

impl Background {
    /// The next batch of entries in order (or the error that stopped the merge, then
    /// nothing); `None` at the end. `used`, a batch taken before, is given back to hold
    /// entries again.
    pub fn next_batch(&mut self, mut used: Batch) -> Option<io::Result<Batch>> {
        if let Some(give_back) = &self.give_back {
            used.clear();
            // Full, or the thread is gone: dropped instead.
            let _ = give_back.try_send(used);
        }
        let received = self.batches.as_ref()?.recv();
        match received {
            Ok(batch) => Some(batch),
            // The thread ended: having handed over everything, or by a panic, which must not
            // pass for the end of the entries.
            Err(_) => {
                self.batches = None;
                match self.thread.take().map(JoinHandle::join) {
                    Some(Err(_)) => Some(Err(io::Error::other("the merging thread panicked"))),
                    _ => None,
                }
            }
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        // The thread stops at its next hand-over, which now fails.
        self.batches = None;
        self.give_back = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Iterator for Sorted {
    type Item = io::Result<Entry>;

    fn next(&mut self) -> Option<io::Result<Entry>> {
        if let Some(e) = self.take_error() {
            return Some(Err(e));
        }
        let mut taken = None;
        self.step(|top| {
            // The top's buffers go with it; its source's next entry is read into new ones.
            taken = Some(std::mem::take(top));
        });
        taken.map(Ok)
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

    /// A batch of the one entry.
    fn one(e: &Entry) -> Batch {
        let mut b = Batch::default();
        b.push(e.time, &e.event_id, &[&e.payload]).unwrap();
        b
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
            s.push(one(&e)).unwrap();
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
            s.push(one(&e)).unwrap();
        }
        assert!(s.runs_written() > FAN_IN, "{}", s.runs_written());
        assert!(run_files(dir.path()) < FAN_IN);
        let out: Vec<Entry> = s.finish().unwrap().map(Result::unwrap).collect();
        // A stable sort of what was pushed.
        pushed.sort_by(Entry::key_cmp);
        assert_eq!(out, pushed);
        assert_eq!(run_files(dir.path()), 0);
    }

    /// A batch that does not fit beside what is held spills that first, and one over the
    /// budget alone is a run of its own: the held block never grows, and order holds.
    #[test]
    fn batches_spill_before_they_overflow_the_block() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ExternalSort::new(dir.path(), 1000);
        let mut pushed = Vec::new();
        let mut spills = 0;
        for (i, size) in [(0, 300), (1, 500), (2, 400), (3, 2500), (4, 10)] {
            let mut b = Batch::default();
            for k in 0..3 {
                let e = entry(Some(10 - i), &format!("{k}"), &"p".repeat(size / 3));
                b.push(e.time, &e.event_id, &[&e.payload]).unwrap();
                pushed.push(e);
            }
            let spilled = s.push_deferred_with(b.bytes.len(), |held| {
                held.append(b);
                Ok(())
            });
            for spill in spilled.unwrap() {
                assert!(spill.held.bytes.len() <= spill.held.bytes.capacity());
                let run = spill.write().unwrap();
                s.add_run(run).unwrap();
                spills += 1;
            }
        }
        // [300 500] then 400 does not fit: spilled; [400] then 2500: spilled, and 2500 alone.
        assert_eq!(spills, 3);
        let out: Vec<Entry> = s.finish().unwrap().map(Result::unwrap).collect();
        pushed.sort_by(Entry::key_cmp);
        assert_eq!(out, pushed);
        assert_eq!(run_files(dir.path()), 0);
    }

    #[test]
    fn dropping_a_merge_midway_removes_its_files_and_a_bad_dir_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ExternalSort::new(dir.path(), 0);
        for i in 0..10 {
            s.push(one(&entry(Some(i), "e", "x"))).unwrap();
        }
        assert_eq!(run_files(dir.path()), 10);
        let mut sorted = s.finish().unwrap();
        assert!(sorted.next().unwrap().is_ok());
        drop(sorted);
        assert_eq!(run_files(dir.path()), 0);

        let mut s = ExternalSort::new(dir.path().join("absent"), 0);
        assert!(s.push(one(&entry(None, "", ""))).is_err());
    }

    /// Found by the red team: run files were opened again by name to be merged, so a file
    /// put in a run's place (by whoever could write in the temporary folder) was read, and
    /// its records written out as proven. Runs are read back through the handle they were
    /// written with, and only their owner may open them.
    #[test]
    fn a_run_file_replaced_by_name_is_not_what_is_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mut s = ExternalSort::new(dir.path(), 0);
        s.push(one(&entry(Some(1), "a", "proven"))).unwrap();
        let run = std::fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let mode = std::fs::metadata(&run).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        // A run of the same shape, other content, renamed over the real one.
        let other = dir.path().join("forged");
        let mut forged = Vec::new();
        write_parts(
            &mut forged,
            Some(Timestamp::new(1, 7).unwrap()),
            b"a",
            b"forged",
        )
        .unwrap();
        std::fs::write(&other, forged).unwrap();
        std::fs::rename(&other, &run).unwrap();
        let out: Vec<Entry> = s.finish().unwrap().map(Result::unwrap).collect();
        assert_eq!(out, [entry(Some(1), "a", "proven")]);
    }

    /// The entries of a background merge's batches, with the batches given back as taken.
    fn in_batches(sorted: Sorted, bytes: usize) -> (Vec<Entry>, Option<io::Error>, usize) {
        let mut merged = sorted.in_background(bytes).unwrap();
        let (mut out, mut batches) = (Vec::new(), 0);
        let mut used = Batch::default();
        while let Some(batch) = merged.next_batch(std::mem::take(&mut used)) {
            let batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    assert!(merged.next_batch(Batch::default()).is_none());
                    return (out, Some(e), batches);
                }
            };
            batches += 1;
            out.extend(batch.entries().map(|(time, id, payload)| Entry {
                time,
                event_id: String::from_utf8(id.to_vec()).unwrap(),
                payload: payload.to_vec(),
            }));
            used = batch;
        }
        (out, None, batches)
    }

    /// The merge on a thread of its own gives what the merge gives, in batches (runs on
    /// disk and the entries still held, equal keys in push order).
    #[test]
    fn a_background_merge_gives_the_merge_in_batches() {
        let dir = tempfile::tempdir().unwrap();
        let pushes = |s: &mut ExternalSort| {
            let mut pushed = Vec::new();
            for i in 0..3_000u64 {
                let k = (i * 7919) % 101;
                let e = entry(
                    (k % 7 != 0).then_some(k as i64 / 4),
                    &format!("id{}", k % 3),
                    &"p".repeat((i % 50) as usize),
                );
                pushed.push(e.clone());
                s.push(one(&e)).unwrap();
            }
            pushed
        };
        let mut s = ExternalSort::new(dir.path(), 4_000);
        let mut pushed = pushes(&mut s);
        assert!(s.runs_written() > 10, "{}", s.runs_written());
        let (out, error, batches) = in_batches(s.finish().unwrap(), 1_000);
        assert!(error.is_none());
        assert!(batches > 50, "{batches}");
        pushed.sort_by(Entry::key_cmp);
        assert_eq!(out, pushed);
        assert_eq!(run_files(dir.path()), 0);
    }

    /// A background merge stopped midway (its reader gone) ends its thread and removes the
    /// run files; a damaged run gives the entries before it, then the error, then nothing.
    #[test]
    fn a_background_merge_dropped_midway_or_failing_ends_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ExternalSort::new(dir.path(), 0);
        for i in 0..100 {
            s.push(one(&entry(Some(i), "e", &"x".repeat(100)))).unwrap();
        }
        let mut merged = s.finish().unwrap().in_background(200).unwrap();
        assert!(merged.next_batch(Batch::default()).unwrap().is_ok());
        drop(merged);
        assert_eq!(run_files(dir.path()), 0);

        let dir = tempfile::tempdir().unwrap();
        let mut s = ExternalSort::new(dir.path(), 200);
        let mut both = one(&entry(Some(1), "a", "payload"));
        both.append(one(&entry(Some(2), "b", &"x".repeat(300))));
        s.push(both).unwrap();
        cut_the_run(dir.path());
        let (out, error, _) = in_batches(s.finish().unwrap(), 1 << 20);
        assert_eq!(out, [entry(Some(1), "a", "payload")]);
        assert_eq!(error.unwrap().kind(), io::ErrorKind::InvalidData);
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
        s.push(one(&entry(Some(1), "a", "payload"))).unwrap();
        cut_the_run(dir.path());
        s.push(one(&entry(Some(2), "b", "more"))).unwrap();
        // The first entry of each run is read when the merge starts.
        assert!(s.finish().is_err());

        // Corrupt after the first entry: an error from the iterator, then nothing.
        let dir = tempfile::tempdir().unwrap();
        let mut s = ExternalSort::new(dir.path(), 200);
        let mut both = one(&entry(Some(1), "a", "payload"));
        both.append(one(&entry(Some(2), "b", &"x".repeat(300))));
        s.push(both).unwrap();
        assert_eq!(s.runs_written(), 1);
        cut_the_run(dir.path());
        let out: Vec<io::Result<Entry>> = s.finish().unwrap().collect();
        assert_eq!(out.len(), 2);
        assert!(out[0].is_ok() && out[1].is_err());
    }
}
