//! Batches: many texts encoded on a thread pool into one flat id buffer plus offsets.
//!
//! The ragged result is what models consume: `ids[offsets[i]..offsets[i + 1]]` is text `i`,
//! 4 bytes per token and 8 per text, with no per-text allocation surviving the call.
//!
//! Where the time goes besides encoding: a batch writes megabytes of memory no one wrote
//! before, and each 4 KB page of it faulted in cost about 5 µs on this project's VM. So the
//! texts' ids are appended to one buffer per worker (one thread: to the batch's own buffer,
//! with no copy at the end), every such buffer in huge pages (`huge::advise_huge`). Measured
//! with `examples/batch_scale.rs`, gpt2, first pass, MB/s, one thread / two threads, before
//! (a vector per text, copied together) and after:
//!
//! | corpus | before | after |
//! |---|---|---|
//! | en | 100 / 174 | 123 / 195 |
//! | code | 92 / 165 | 114 / 180 |
//! | multi | 45 / 84 | 50 / 90 |
//!
//! Two threads still reach only about 85% of two one-thread processes: each thread's piece
//! cache sees only its own texts, so the pieces of both halves are merged twice (22% more
//! merged bytes on en, 15% on multi), and the final copy from the workers' buffers takes
//! 1.4-2.7 ms of a 30 ms batch of English.
//!
//! Thread pools are kept per size and per process: a pool made before `fork()` has no
//! threads in the child, so a child that used it would wait forever. Each pool remembers the
//! pid that made it and a child builds its own.

use std::collections::VecDeque;
use std::mem::MaybeUninit;
use std::sync::{Arc, Condvar, Mutex};

use rayon::prelude::*;
use rayon::{ThreadPool, ThreadPoolBuilder};

use crate::error::{Error, Result};
use crate::vocab::Rank;

/// The environment variable that caps the number of threads of every batch call.
pub const THREADS_ENV: &str = "FERROTOK_NUM_THREADS";

/// A ragged batch: the ids of text `i` are `ids[offsets[i]..offsets[i + 1]]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ragged {
    pub ids: Vec<Rank>,
    pub offsets: Vec<i64>,
}

/// The number of threads a batch call uses: `requested` (or all cores), capped by the number
/// of cores and by `FERROTOK_NUM_THREADS` when it is set. (More threads than cores would not
/// go faster, and each distinct count keeps a pool of its own for the life of the process.)
pub fn thread_count(requested: Option<usize>) -> usize {
    // Asked once per process: on Linux the answer reads cgroup files, tens of µs a call.
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let cores = *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let cap = std::env::var(THREADS_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0);
    let n = requested.filter(|&n| n > 0).map_or(cores, |n| n.min(cores));
    cap.map_or(n, |c| n.min(c)).max(1)
}

fn pool(threads: usize) -> Result<Arc<ThreadPool>> {
    static POOLS: Mutex<Vec<(u32, usize, Arc<ThreadPool>)>> = Mutex::new(Vec::new());
    let pid = std::process::id();
    // A poisoned lock only means another thread panicked while holding it; the list itself
    // is always valid, so carry on with it.
    let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
    // Pools from a parent process are dead here: drop our handles (their threads are gone).
    pools.retain(|(p, _, _)| *p == pid);
    if let Some((_, _, pool)) = pools.iter().find(|(_, n, _)| *n == threads) {
        return Ok(pool.clone());
    }
    let pool = ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("ferrotok-{i}"))
        .build()
        .map_err(|e| Error::Threads(e.to_string()))?;
    let pool = Arc::new(pool);
    pools.push((pid, threads, pool.clone()));
    Ok(pool)
}

/// Applies `f` to every item on `threads` threads; the results in order. The first error
/// (in item order) wins.
pub fn map_all<T, U, F>(items: &[T], threads: usize, f: F) -> Result<Vec<U>>
where
    T: Sync,
    U: Send,
    F: Fn(&T) -> Result<U> + Sync,
{
    if threads <= 1 || items.len() <= 1 {
        items.iter().map(&f).collect()
    } else {
        pool(threads)?.install(|| items.par_iter().with_min_len(1).map(&f).collect())
    }
}

/// Runs `f` inside the fork-safe pool of `threads` threads, so that rayon work it starts
/// uses that pool.
pub fn install<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> Result<R> {
    Ok(pool(threads)?.install(f))
}

/// A batch of fewer bytes than this is encoded on the calling thread whatever the thread
/// count: handing texts to the pool costs about 25 µs a call and half a µs a text, more than
/// a second thread saves on so little text. Measured from Python (o200k, two threads against
/// one, warm): 64 texts of 200 bytes (13 KB) took 87 µs against 58, 16 of 2 KB (28 KB) broke
/// even, 64 of 2 KB (115 KB) took 311 against 484.
pub const SEQUENTIAL_BELOW: usize = 32 << 10;

/// Encodes every text with `encode(index, text, out)`, which appends the ids of `text` to
/// `out`, on `threads` threads (in order) into one ragged batch.
pub fn encode_all<F>(texts: &[&str], threads: usize, encode: F) -> Result<Ragged>
where
    F: Fn(usize, &str, &mut Vec<Rank>) -> Result<()> + Sync,
{
    let bytes = texts.iter().map(|t| t.len()).sum();
    if threads > 1 && bytes >= SEQUENTIAL_BELOW {
        let fed = encode_fed(
            texts.len(),
            threads,
            bytes,
            |i| Some(texts[i]),
            |w| w(),
            encode,
        )?;
        return Ok(fed.expect("every text is handed over"));
    }
    // One thread writes straight into the batch's buffer.
    let mut out = Arena::new(bytes);
    let mut offsets = Vec::with_capacity(texts.len() + 1);
    offsets.push(0);
    for (index, text) in texts.iter().enumerate() {
        out.encode(index, text, &encode)?;
        offsets.push(out.ids.len() as i64);
    }
    Ok(Ragged {
        ids: out.ids,
        offsets,
    })
}

/// Encodes `count` texts that the calling thread hands over one at a time (`next(i)` gives
/// text `i`, or `None` to stop) on `threads` pool threads, which start on each text as soon as
/// it is handed over. For Python the hand-over is the UTF-8 form of each string, made under the
/// interpreter lock: about a sixth of a two-thread batch of English if it came first, hidden
/// behind the encoding this way. Once every text is handed over, `wait` is given the wait for
/// the pool (Python releases its lock around it). `None` if `next` stopped. `bytes`: about how
/// many bytes the texts have together (it sizes the output buffers).
///
/// Each text goes to the worker with the fewest bytes so far, so the same batch goes to the
/// same threads every time and finds its pieces in their caches; a worker that runs out
/// takes texts from the back of another's queue. Each worker appends the ids of its texts to
/// a buffer of its own, and the batch is copied together from those at the end.
pub fn encode_fed<'a, F>(
    count: usize,
    threads: usize,
    bytes: usize,
    mut next: impl FnMut(usize) -> Option<&'a str>,
    wait: impl FnOnce(&(dyn Fn() + Sync)),
    encode: F,
) -> Result<Option<Ragged>>
where
    F: Fn(usize, &str, &mut Vec<Rank>) -> Result<()> + Sync,
{
    let feed = Feed::new(threads);
    let arenas: Mutex<Vec<Arena>> = Mutex::new(Vec::with_capacity(threads));
    let pool = pool(threads)?;
    let stopped = pool.in_place_scope(|scope| {
        for spawned in 0..threads {
            let (feed, arenas, encode) = (&feed, &arenas, &encode);
            scope.spawn(move |_| {
                // The queue of the thread this runs on, not of the order it was spawned in:
                // the same texts then go to the same thread, and its piece cache, at every
                // call. (By spawn order, a warm batch of gpt2 ran at 220 or 315 MB/s on two
                // threads as the threads happened to swap their halves or not.)
                let worker = rayon::current_thread_index().unwrap_or(spawned) % threads;
                // counted as finished even if `encode` panics, so that `wait` returns and the
                // scope passes the panic on
                let _finished = Finished(feed);
                // Room for twice a fair share: a worker that takes more texts (it steals when
                // the others are slow) must not outgrow its buffer, which costs a copy into
                // fresh memory, faults and all. Pages never written cost nothing.
                let mut mine = Arena::new((2 * bytes / threads).min(bytes));
                while let Some((i, text)) = feed.take(worker) {
                    let placed = mine.encode(i, text, encode);
                    mine.texts.push((i, placed));
                }
                lock(arenas).push(mine);
            });
        }
        let mut stopped = false;
        for i in 0..count {
            match next(i) {
                Some(text) => feed.give(i, text),
                None => {
                    stopped = true;
                    break;
                }
            }
        }
        feed.close(stopped);
        wait(&|| feed.wait_finished(threads));
        stopped
    });
    if stopped {
        return Ok(None);
    }
    let arenas = arenas.into_inner().unwrap_or_else(|e| e.into_inner());
    pool.install(|| gather(arenas, count)).map(Some)
}

/// Where text `index`'s ids are in its worker's [`Arena`], or why it has none.
type Placed = (usize, Result<(usize, usize)>);

/// One worker's output: the ids of its texts one after another.
struct Arena {
    ids: Vec<Rank>,
    texts: Vec<Placed>,
}

impl Arena {
    /// An arena for about `bytes` bytes of text.
    fn new(bytes: usize) -> Self {
        Arena {
            ids: fresh_ids(id_room(bytes)),
            texts: Vec::new(),
        }
    }

    /// Appends the ids of text `index`; where they are. (After an error the arena may keep
    /// some of them: the whole batch fails then.)
    fn encode<F>(&mut self, index: usize, text: &str, encode: &F) -> Result<(usize, usize)>
    where
        F: Fn(usize, &str, &mut Vec<Rank>) -> Result<()>,
    {
        // Room for most texts' ids, so that `encode` seldom grows the buffer itself (growing
        // here keeps the huge pages).
        let room = id_room(text.len());
        if self.ids.capacity() - self.ids.len() < room {
            let mut grown = fresh_ids((2 * self.ids.capacity()).max(self.ids.len() + room));
            grown.extend_from_slice(&self.ids);
            self.ids = grown;
        }
        let start = self.ids.len();
        match encode(index, text, &mut self.ids) {
            Ok(()) => Ok((start, self.ids.len())),
            Err(e) => Err(Error::InText {
                index,
                source: Box::new(e),
            }),
        }
    }
}

/// How many ids to make room for, in fresh memory, for `bytes` bytes of text: one per 2 bytes
/// (more than most text needs; pages never written cost nothing), but at most 64 MB beyond one
/// per 4 bytes, so that gigabytes of text do not reserve more than the system lets a process
/// map (a failed allocation would end the process). Past the room, buffers grow as usual.
pub(crate) fn id_room(bytes: usize) -> usize {
    (bytes / 2).min(bytes / 4 + (16 << 20)) + 16
}

/// An empty buffer with room for `cap` ids, whose pages are huge ones where the kernel
/// allows. A batch writes megabytes of fresh memory, and faulting it in 4 KB pages (about
/// 5 µs each on this project's VM) cost a tenth of a one-thread first pass over English.
pub(crate) fn fresh_ids(cap: usize) -> Vec<Rank> {
    let ids = Vec::with_capacity(cap);
    crate::huge::advise_huge(&ids);
    ids
}

/// The ragged batch of `count` texts from the workers' arenas (run inside the pool: the
/// copies into the batch's buffer, and their page faults, are shared by its threads). The
/// first error, in text order, wins.
fn gather(mut arenas: Vec<Arena>, count: usize) -> Result<Ragged> {
    let mut place = vec![(0, 0..0); count];
    let mut failed: Option<(usize, Error)> = None;
    for (a, arena) in arenas.iter_mut().enumerate() {
        for (index, placed) in arena.texts.drain(..) {
            match placed {
                Ok((start, end)) => place[index] = (a, start..end),
                Err(e) if failed.as_ref().is_none_or(|f| index < f.0) => failed = Some((index, e)),
                Err(_) => {}
            }
        }
    }
    if let Some((_, e)) = failed {
        return Err(e);
    }
    let mut offsets = Vec::with_capacity(count + 1);
    offsets.push(0);
    for (_, span) in &place {
        offsets.push(offsets[offsets.len() - 1] + span.len() as i64);
    }
    // Written once, by the copies: zeroing it first (calloc does, for memory it reuses) would
    // cost as much as a copy.
    let total = offsets[count] as usize;
    let mut ids = fresh_ids(total);
    let mut rest = &mut ids.spare_capacity_mut()[..total];
    let jobs: Vec<(&mut [MaybeUninit<Rank>], &[Rank])> = place
        .into_iter()
        .map(|(a, span)| {
            let src = &arenas[a].ids[span];
            let (dst, tail) = std::mem::take(&mut rest).split_at_mut(src.len());
            rest = tail;
            (dst, src)
        })
        .collect();
    jobs.into_par_iter()
        .with_min_len(64)
        .for_each(|(dst, src)| {
            for (d, &s) in dst.iter_mut().zip(src) {
                d.write(s);
            }
        });
    // SAFETY: the spans of the texts cover `0..total` without gaps (each destination slice was
    // split off the front of the rest, in order, with its source's length, and the lengths
    // sum to `total`), and every destination element was written above.
    unsafe { ids.set_len(total) };
    Ok(Ragged { ids, offsets })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // a poisoned lock only means a thread panicked holding it; the data is still whole
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The texts handed over to [`encode_fed`]'s workers: a queue per worker.
struct Feed<'a> {
    state: Mutex<FeedState<'a>>,
    changed: Condvar,
}

struct FeedState<'a> {
    queues: Vec<VecDeque<(usize, &'a str)>>,
    /// bytes given to each worker so far
    given: Vec<usize>,
    /// workers waiting for a text: a hand-over wakes them only when there are some (a wake-up
    /// is a system call, and most texts are handed over while the workers are busy)
    waiting: usize,
    closed: bool,
    finished: usize,
}

impl<'a> Feed<'a> {
    fn new(workers: usize) -> Self {
        Feed {
            state: Mutex::new(FeedState {
                queues: vec![VecDeque::new(); workers],
                given: vec![0; workers],
                waiting: 0,
                closed: false,
                finished: 0,
            }),
            changed: Condvar::new(),
        }
    }

    fn give(&self, i: usize, text: &'a str) {
        let mut state = lock(&self.state);
        let w = (0..state.given.len())
            .min_by_key(|&w| state.given[w])
            .unwrap_or(0);
        state.given[w] += text.len();
        state.queues[w].push_back((i, text));
        let wake = state.waiting > 0;
        drop(state);
        if wake {
            self.changed.notify_all();
        }
    }

    /// No more texts; with `drop_ready`, the ones not yet taken are dropped too.
    fn close(&self, drop_ready: bool) {
        let mut state = lock(&self.state);
        state.closed = true;
        if drop_ready {
            state.queues.iter_mut().for_each(VecDeque::clear);
        }
        drop(state);
        self.changed.notify_all();
    }

    /// The next text for `worker`, waiting for one; once all are given, one from the back
    /// of the longest other queue when its own is empty; `None` when none is left.
    fn take(&self, worker: usize) -> Option<(usize, &'a str)> {
        let mut state = lock(&self.state);
        loop {
            if let Some(t) = state.queues[worker].pop_front() {
                return Some(t);
            }
            if state.closed {
                let longest = state.queues.iter_mut().max_by_key(|q| q.len())?;
                return longest.pop_back();
            }
            state.waiting += 1;
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
            state.waiting -= 1;
        }
    }

    fn wait_finished(&self, workers: usize) {
        let mut state = lock(&self.state);
        while state.finished < workers {
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }
}

struct Finished<'f, 'a>(&'f Feed<'a>);

impl Drop for Finished<'_, '_> {
    fn drop(&mut self) {
        lock(&self.0.state).finished += 1;
        self.0.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_that_grow_past_their_guess_keep_every_id() {
        // CJK under gpt2 is about one token per byte, twice what the buffers are sized for,
        // and 6 MB of it puts them in huge pages: every buffer grows, some while it is
        // handed between texts, and the ids must still be each text's own.
        let bpe = crate::registry::load("gpt2").unwrap();
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let texts: Vec<String> = (0..120)
            .map(|i| {
                (0..(i % 7 + 1) * 4000)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        char::from_u32(0x4e00 + (state % 0x5000) as u32).unwrap()
                    })
                    .collect()
            })
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let want: Vec<Vec<Rank>> = refs
            .iter()
            .map(|t| bpe.encode_ordinary(t).unwrap())
            .collect();
        let bytes: usize = refs.iter().map(|t| t.len()).sum();
        let tokens: usize = want.iter().map(Vec::len).sum();
        assert!(
            bytes > 4 << 20 && 2 * tokens > bytes,
            "{bytes} bytes, {tokens} tokens"
        );
        for threads in [1, 2, 3] {
            let got =
                encode_all(&refs, threads, |_, t, out| bpe.encode_ordinary_into(t, out)).unwrap();
            assert_eq!(got.offsets.len(), refs.len() + 1);
            for (i, ids) in want.iter().enumerate() {
                let (a, b) = (got.offsets[i] as usize, got.offsets[i + 1] as usize);
                assert_eq!(&got.ids[a..b], &ids[..], "{threads} threads, text {i}");
            }
        }
    }

    #[test]
    fn room_for_ids_is_generous_but_bounded() {
        assert!(id_room(1000) >= 500);
        assert!(id_room(6 << 20) >= 3 << 20);
        // 64 GB of text: 16G ids (64 GB) and 64 MB, not 32G ids (128 GB)
        #[cfg(target_pointer_width = "64")]
        {
            let huge = 64usize << 30;
            assert_eq!(id_room(huge), huge / 4 + (16 << 20) + 16);
        }
    }

    #[test]
    fn batch_equals_sequential() {
        let bpe = crate::registry::load("cl100k_base").unwrap();
        let texts: Vec<String> = (0..200)
            .map(|i| format!("text {i}: {}", "héllo wörld ".repeat(i % 17 * 3)))
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        // enough text for the pool
        assert!(refs.iter().map(|t| t.len()).sum::<usize>() > SEQUENTIAL_BELOW);
        let one = encode_all(&refs, 1, |_, t, out| bpe.encode_ordinary_into(t, out)).unwrap();
        let many = encode_all(&refs, 4, |_, t, out| bpe.encode_ordinary_into(t, out)).unwrap();
        assert_eq!(one, many);
        assert_eq!(one.offsets.len(), 201);
        for (i, t) in refs.iter().enumerate() {
            let (a, b) = (one.offsets[i] as usize, one.offsets[i + 1] as usize);
            assert_eq!(one.ids[a..b], bpe.encode_ordinary(t).unwrap()[..]);
        }
    }

    #[test]
    fn fed_batch_equals_sequential() {
        let bpe = crate::registry::load("cl100k_base").unwrap();
        let texts: Vec<String> = (0..300)
            .map(|i| format!("{i} naïve café {}", "héllo wörld, ".repeat(i * 7 % 41)))
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let one = encode_all(&refs, 1, |_, t, out| bpe.encode_ordinary_into(t, out)).unwrap();
        for threads in [2, 3, 8] {
            let mut asked = Vec::new();
            let fed = encode_fed(
                refs.len(),
                threads,
                0,
                |i| {
                    asked.push(i);
                    Some(refs[i])
                },
                |w| w(),
                |_, t, out| bpe.encode_ordinary_into(t, out),
            )
            .unwrap()
            .expect("not stopped");
            assert_eq!(fed, one, "{threads} threads");
            assert_eq!(asked, (0..refs.len()).collect::<Vec<_>>());
        }
        let empty = encode_fed(
            0,
            2,
            0,
            |_| None,
            |w| w(),
            |_, t, out| bpe.encode_ordinary_into(t, out),
        );
        assert_eq!(empty.unwrap().unwrap().offsets, [0]);
    }

    #[test]
    fn fed_batch_stops_and_reports_the_first_failing_text() {
        let texts = ["a", "b", "bad", "c", "bad", "d"];
        let encode = |i: usize, t: &str, out: &mut Vec<Rank>| {
            out.push(i as Rank);
            if t == "bad" {
                Err(Error::UnknownId {
                    id: i as i64,
                    n_vocab: 0,
                })
            } else {
                Ok(())
            }
        };
        let stopped = encode_fed(6, 2, 6, |i| (i < 3).then(|| texts[i]), |w| w(), encode);
        assert!(matches!(stopped, Ok(None)));
        match encode_fed(6, 2, 6, |i| Some(texts[i]), |w| w(), encode) {
            Err(Error::InText { index: 2, .. }) => {}
            other => panic!("expected the error of text 2, got {other:?}"),
        }
        for threads in [1, 3] {
            match encode_all(&texts, threads, encode) {
                Err(Error::InText { index: 2, .. }) => {}
                other => panic!("{threads} threads: expected text 2's error, got {other:?}"),
            }
        }
    }

    #[test]
    fn thread_count_is_capped_by_the_cores_and_the_environment() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert!((1..=cores).contains(&thread_count(None)));
        assert!(thread_count(Some(3)) <= 3.min(cores));
        assert!(thread_count(Some(1 << 20)) <= cores);
    }
}
