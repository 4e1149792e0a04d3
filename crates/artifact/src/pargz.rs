//! A deterministic gzip writer that compresses on several threads and still produces ONE gzip
//! member holding ONE deflate stream (readable by `gzip -d`, `tar xz`, Go's `compress/gzip`).
//!
//! The input is cut into fixed-size chunks. Each chunk is compressed independently with the
//! 32 KiB that precede it as the preset dictionary, and ends on a sync flush (an empty stored
//! block that byte-aligns the stream), except the last chunk, which ends the stream. Because the
//! chunk boundaries and dictionaries depend only on the input bytes, the output is the same for
//! any number of threads (and identical to what `threads = 1` produces inline). The CRC-32 of
//! the chunks is combined in order. This is the technique pigz uses.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// Uncompressed bytes per chunk.
pub const CHUNK_SIZE: usize = 256 * 1024;
const DICT_SIZE: usize = 32 * 1024;

type ChunkResult = io::Result<(Vec<u8>, Crc)>;

struct Job {
    dict: Vec<u8>,
    data: Vec<u8>,
    last: bool,
    reply: SyncSender<ChunkResult>,
}

/// See the module documentation. Dropping the writer without [`ParGzWriter::finish`] closes
/// the job channel, so the worker threads end on their own.
pub struct ParGzWriter<W: Write> {
    out: W,
    level: u32,
    buf: Vec<u8>,
    /// The last DICT_SIZE bytes of the previous chunk.
    dict: Vec<u8>,
    crc: Crc,
    total_in: u64,
    pending: VecDeque<Receiver<ChunkResult>>,
    max_pending: usize,
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
    header_written: bool,
}

fn compress_chunk(level: u32, dict: &[u8], data: &[u8], last: bool) -> ChunkResult {
    let mut c = Compress::new(Compression::new(level), false);
    if !dict.is_empty() {
        c.set_dictionary(dict)
            .map_err(|e| io::Error::other(format!("deflate dictionary: {e}")))?;
    }
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    loop {
        let consumed = c.total_in() as usize;
        let status = c
            .compress_vec(&data[consumed..], &mut out, flush)
            .map_err(|e| io::Error::other(format!("deflate: {e}")))?;
        let done_input = c.total_in() as usize == data.len();
        let has_room = out.len() < out.capacity();
        match status {
            Status::StreamEnd => break,
            // A sync flush is complete when all input is consumed and the output was not full.
            Status::Ok | Status::BufError if !last && done_input && has_room => break,
            _ => out.reserve(out.capacity().max(64 * 1024)),
        }
    }
    let mut crc = Crc::new();
    crc.update(data);
    Ok((out, crc))
}

impl<W: Write> ParGzWriter<W> {
    /// A writer compressing at `level` (0-9) on `threads` threads (1 = inline, no threads).
    pub fn new(out: W, level: u32, threads: usize) -> Self {
        let threads = threads.max(1);
        let (jobs, workers) = if threads > 1 {
            let (tx, rx) = mpsc::sync_channel::<Job>(threads * 2);
            let rx = Arc::new(Mutex::new(rx));
            let workers = (0..threads)
                .map(|_| {
                    let rx = Arc::clone(&rx);
                    std::thread::spawn(move || {
                        loop {
                            let job = match rx.lock() {
                                Ok(guard) => guard.recv(),
                                Err(_) => return,
                            };
                            let Ok(job) = job else { return };
                            let res = compress_chunk(level, &job.dict, &job.data, job.last);
                            // The receiver is gone only when the writer was dropped early.
                            let _ = job.reply.send(res);
                        }
                    })
                })
                .collect();
            (Some(tx), workers)
        } else {
            (None, Vec::new())
        };
        ParGzWriter {
            out,
            level,
            buf: Vec::with_capacity(CHUNK_SIZE),
            dict: Vec::new(),
            crc: Crc::new(),
            total_in: 0,
            pending: VecDeque::new(),
            max_pending: threads * 2,
            jobs,
            workers,
            header_written: false,
        }
    }

    fn write_header(&mut self) -> io::Result<()> {
        if !self.header_written {
            // ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=0 OS=255 (unknown): no environment data.
            self.out
                .write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff])?;
            self.header_written = true;
        }
        Ok(())
    }

    fn take_result(&mut self, res: ChunkResult) -> io::Result<()> {
        let (bytes, crc) = res?;
        self.crc.combine(&crc);
        self.out.write_all(&bytes)
    }

    fn drain_one(&mut self) -> io::Result<()> {
        if let Some(rx) = self.pending.pop_front() {
            let res = rx
                .recv()
                .map_err(|_| io::Error::other("compression worker exited"))?;
            self.take_result(res)?;
        }
        Ok(())
    }

    fn dispatch(&mut self, last: bool) -> io::Result<()> {
        self.write_header()?;
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_SIZE));
        let dict = std::mem::take(&mut self.dict);
        self.dict = data[data.len().saturating_sub(DICT_SIZE)..].to_vec();
        self.total_in += data.len() as u64;
        match &self.jobs {
            None => {
                let res = compress_chunk(self.level, &dict, &data, last);
                self.take_result(res)
            }
            Some(jobs) => {
                let (reply, rx) = mpsc::sync_channel(1);
                jobs.send(Job {
                    dict,
                    data,
                    last,
                    reply,
                })
                .map_err(|_| io::Error::other("compression workers exited"))?;
                self.pending.push_back(rx);
                while self.pending.len() > self.max_pending {
                    self.drain_one()?;
                }
                Ok(())
            }
        }
    }

    /// Appends exactly `n` bytes read from `r`, reading straight into the chunk buffer (no
    /// intermediate copy). Returns how many bytes were read before `r` ended (less than `n` when
    /// the source was shorter than announced).
    pub fn write_from_reader(&mut self, r: &mut impl io::Read, n: u64) -> io::Result<u64> {
        let mut done = 0u64;
        while done < n {
            if self.buf.len() == CHUNK_SIZE {
                self.dispatch(false)?;
            }
            let start = self.buf.len();
            let want = ((CHUNK_SIZE - start) as u64).min(n - done) as usize;
            self.buf.resize(start + want, 0);
            let got = loop {
                match r.read(&mut self.buf[start..]) {
                    Ok(k) => break k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        self.buf.truncate(start);
                        return Err(e);
                    }
                }
            };
            self.buf.truncate(start + got);
            if got == 0 {
                break;
            }
            done += got as u64;
        }
        Ok(done)
    }

    /// Compresses what is buffered, writes the trailer and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.dispatch(true)?;
        while !self.pending.is_empty() {
            self.drain_one()?;
        }
        let crc = self.crc.sum();
        self.out.write_all(&crc.to_le_bytes())?;
        self.out.write_all(&(self.total_in as u32).to_le_bytes())?;
        self.out.flush()?;
        // Closing the job channel ends the workers.
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        Ok(self.out)
    }
}

impl<W: Write> Write for ParGzWriter<W> {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let n = data.len();
        while !data.is_empty() {
            if self.buf.len() == CHUNK_SIZE {
                self.dispatch(false)?;
            }
            let take = (CHUNK_SIZE - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample(n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n);
        let mut x: u32 = 7;
        while v.len() < n {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let line = format!("key-{}: value {}\n", x % 97, x % 1013);
            v.extend_from_slice(line.as_bytes());
        }
        v.truncate(n);
        v
    }

    fn gz(data: &[u8], threads: usize, piece: usize) -> Vec<u8> {
        let mut w = ParGzWriter::new(Vec::new(), 6, threads);
        for c in data.chunks(piece) {
            w.write_all(c).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn same_bytes_for_any_thread_count_and_round_trips() {
        for size in [0, 1, 1000, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 17] {
            let data = sample(size);
            let one = gz(&data, 1, 4096);
            let four = gz(&data, 4, 100_000);
            assert_eq!(one, four, "size {size}");
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&one[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data, "size {size}");
            // One member: a multi-member decoder reads the same and nothing more.
            let mut back2 = Vec::new();
            flate2::read::MultiGzDecoder::new(&one[..])
                .read_to_end(&mut back2)
                .unwrap();
            assert_eq!(back2, data);
        }
    }
}
