//! Turning records into lines, on the writer thread. This is the log's hot loop (four lines per
//! `a = a + b`, a few million lines a second at full speed), so nothing here goes through
//! `fmt`, and a hot line is written through a [`Cursor`]: room for the whole line is reserved
//! once, then every piece is a fixed-size copy or a few digit stores. (Appending piece by piece
//! to the `Vec` checked its capacity and called `memcpy` for every piece, which was most of the
//! formatter's time: 34 ns a line before, about half that after.)
//!
//! - `<elapsed>s | #<seq>` is kept as bytes: the elapsed part is rebuilt when the millisecond
//!   changes (records of one core round share their time) and the sequence number is counted up
//!   in place, digit by digit.
//! - ` | <EVENT> | <source> | <command> | ` is cached per hot record shape and source (a client
//!   streams from one session, so the cache almost always hits); rare events build it on the spot.
//! - Numbers use a two-digits-at-a-time formatter; the size column is a fixed 14-byte template.
//! - Ops travel once as [`Record::DefineOp`]; their ` op=<display>` text and encoded size are
//!   cached under their number.

use super::{Kind, Record, Src};
use gt_core::{Key, SessionId, WorkerId};
use rustc_hash::FxHashMap;

/// Bytes a [`Piece`] is copied in at a time.
const CHUNK: usize = 32;

/// Room for `<elapsed>s | #<seq>`: up to 20 digits of seconds, `.mmm`, `s | #` and 20 digits.
const PREFIX: usize = 64;

/// Bytes a line needs beyond its cached pieces: the size column and the details' labels and
/// numbers (at most three ids of two numbers each, 20 digits apiece), with slack.
const LINE_REST: usize = 256;

/// A cached byte string, zero-padded to whole [`CHUNK`]s so that it is copied in fixed-size
/// chunks.
struct Piece {
    padded: Vec<u8>,
    len: usize,
}

impl Piece {
    fn new(s: &[u8]) -> Piece {
        let mut padded = s.to_vec();
        padded.resize(s.len().div_ceil(CHUNK).max(1) * CHUNK, 0);
        Piece {
            padded,
            len: s.len(),
        }
    }
}

/// Formats records into lines; owned by the writer thread.
pub(crate) struct Formatter {
    /// `<elapsed>s | #<seq>` of the next line, in the first `prefix_len` bytes.
    prefix: [u8; PREFIX],
    prefix_len: usize,
    /// The millisecond `prefix` shows (`u64::MAX` before the first line).
    prefix_ms: u64,
    /// Where the sequence number's digits start in `prefix`.
    seq_at: usize,
    /// The sequence number of the next line.
    seq: u64,
    /// The source column of each client session, padded (`CLIENT s1 name      `).
    clients: FxHashMap<SessionId, Vec<u8>>,
    /// The source column of each worker, padded.
    workers: Vec<Vec<u8>>,
    /// The ops the core numbered: ` op=<display>` and the op's encoded size.
    ops: FxHashMap<u32, (Piece, usize)>,
    /// ` | <EVENT> | <source> | <command> | ` of the last line of each hot shape.
    hot: [Middle; 5],
    /// ` op=<name>` of each `EXEC` span name the core numbered.
    names: Vec<Piece>,
    /// The text of an op the core never defined (not expected; kept visible if it happens).
    unknown_op: (Piece, usize),
}

/// A cached middle part and what it was built for.
struct Middle {
    /// Kind, source and command packed by [`hot_key`]; `u64::MAX` when empty.
    key: u64,
    bytes: Piece,
}

/// The hot record shapes, indices into [`Formatter::hot`].
const CLIENT_EXEC: usize = 0;
const CLIENT_FREE: usize = 1;
const WORKER_EXEC: usize = 2;
const WORKER_FREE: usize = 3;
const SPAN: usize = 4;

impl Formatter {
    pub(crate) fn new() -> Formatter {
        Formatter {
            prefix: [0; PREFIX],
            prefix_len: 0,
            prefix_ms: u64::MAX,
            seq_at: 0,
            seq: 0,
            clients: FxHashMap::default(),
            workers: Vec::new(),
            ops: FxHashMap::default(),
            hot: std::array::from_fn(|_| Middle {
                key: u64::MAX,
                bytes: Piece::new(b""),
            }),
            unknown_op: (Piece::new(b" op=?"), 0),
            names: Vec::new(),
        }
    }

    /// Appends the line for `r` (nothing for records that are not lines).
    pub(crate) fn line(&mut self, b: &mut Vec<u8>, r: &Record) {
        match r {
            Record::Name { sid, name } => {
                let col = source_column(&format!("CLIENT {sid} {name}"));
                self.clients.insert(*sid, col);
                // A line written before the name arrived cached `CLIENT sN ?`.
                for m in &mut self.hot {
                    m.key = u64::MAX;
                }
            }
            Record::Monitor(_) => {}
            Record::DefineOp { n, op } => {
                let text = format!(" op={op}");
                self.ops
                    .insert(*n, (Piece::new(text.as_bytes()), super::size_of(op)));
            }
            Record::ForgetOp { n } => {
                self.ops.remove(n);
            }
            Record::DefineName { n, name } => {
                let n = *n as usize;
                if self.names.len() <= n {
                    self.names.resize_with(n + 1, || Piece::new(b" op=?"));
                }
                self.names[n] = Piece::new(format!(" op={name}").as_bytes());
            }
            Record::Span {
                ms,
                w,
                key,
                name,
                t_us,
                dur_ns,
            } => {
                self.at_ms(*ms as u64);
                self.middle(SPAN, Kind::Exec, Who::Worker(*w));
                let name = self.names.get(*name as usize).unwrap_or(&self.unknown_op.0);
                let mid = &self.hot[SPAN].bytes;
                let mut c = Cursor::new(b, mid.padded.len() + name.padded.len());
                c.put(&self.prefix, self.prefix_len);
                c.piece(mid);
                c.size_column(0);
                c.lit(b"key=");
                c.key(*key);
                c.piece(name);
                c.lit(b" t=");
                c.uint(t_us / 1_000_000);
                c.lit(b".");
                c.zero_padded(t_us % 1_000_000, 6);
                c.lit(b"s dur=");
                c.uint(dur_ns / 1000);
                c.lit(b".");
                c.zero_padded(dur_ns % 1000, 3);
                c.lit(b"us\n");
                c.finish();
                self.count();
            }
            Record::ClientExec {
                ms,
                sid,
                out,
                op,
                n,
                ins,
            } => {
                self.at_ms(*ms as u64);
                self.middle(CLIENT_EXEC, Kind::Recv, Who::Client(*sid));
                let (op_text, op_size) = self.ops.get(op).unwrap_or(&self.unknown_op);
                let ids = &ins[..*n as usize];
                let size = 1 + varint_len(out.0) + op_size + ids_len(ids);
                let mid = &self.hot[CLIENT_EXEC].bytes;
                let mut c = Cursor::new(b, mid.padded.len() + op_text.padded.len());
                c.put(&self.prefix, self.prefix_len);
                c.piece(mid);
                c.size_column(size as u64);
                c.lit(b"out=t");
                c.uint(out.0);
                c.piece(op_text);
                for (i, x) in ids.iter().enumerate() {
                    if i == 0 {
                        c.lit(b" inputs=t");
                    } else {
                        c.lit(b",t");
                    }
                    c.uint(*x);
                }
                c.lit(b"\n");
                c.finish();
                self.count();
            }
            Record::ClientFree { ms, sid, id } => {
                self.at_ms(*ms as u64);
                self.middle(CLIENT_FREE, Kind::Recv, Who::Client(*sid));
                let mid = &self.hot[CLIENT_FREE].bytes;
                let mut c = Cursor::new(b, mid.padded.len());
                c.put(&self.prefix, self.prefix_len);
                c.piece(mid);
                c.size_column(1 + varint_len(id.0) as u64);
                c.lit(b"id=t");
                c.uint(id.0);
                c.lit(b"\n");
                c.finish();
                self.count();
            }
            Record::WorkerExec {
                ms,
                kind,
                w,
                out,
                op,
                n,
                ins,
            } => {
                self.at_ms(*ms as u64);
                self.middle(WORKER_EXEC, *kind, Who::Worker(*w));
                let (op_text, op_size) = self.ops.get(op).unwrap_or(&self.unknown_op);
                let ids = &ins[..*n as usize];
                let size = 1 + varint_len(out.0) + op_size + ids_len(ids);
                let mid = &self.hot[WORKER_EXEC].bytes;
                let mut c = Cursor::new(b, mid.padded.len() + op_text.padded.len());
                c.put(&self.prefix, self.prefix_len);
                c.piece(mid);
                c.size_column(size as u64);
                c.lit(b"out=");
                c.key(*out);
                c.piece(op_text);
                for (i, x) in ids.iter().enumerate() {
                    if i == 0 {
                        c.lit(b" inputs=");
                    } else {
                        c.lit(b",");
                    }
                    c.key(Key(*x));
                }
                c.lit(b"\n");
                c.finish();
                self.count();
            }
            Record::WorkerFree {
                ms,
                kind,
                w,
                key: k,
            } => {
                self.at_ms(*ms as u64);
                self.middle(WORKER_FREE, *kind, Who::Worker(*w));
                let mid = &self.hot[WORKER_FREE].bytes;
                let mut c = Cursor::new(b, mid.padded.len());
                c.put(&self.prefix, self.prefix_len);
                c.piece(mid);
                c.size_column(1 + varint_len(k.0) as u64);
                c.lit(b"key=");
                c.key(*k);
                c.lit(b"\n");
                c.finish();
                self.count();
            }
            Record::Text(t) => {
                self.at_ms(t.at / 1000);
                b.extend_from_slice(&self.prefix[..self.prefix_len]);
                self.count();
                b.extend_from_slice(b" | ");
                b.extend_from_slice(t.kind.padded().as_bytes());
                b.extend_from_slice(b" | ");
                match &t.src {
                    Src::Client(sid) => self.client_column(b, *sid),
                    Src::Joining(name) => {
                        b.extend_from_slice(&source_column(&format!("CLIENT - {name}")))
                    }
                    Src::Worker(w) => b.extend_from_slice(self.worker_column(*w)),
                }
                b.extend_from_slice(b" | ");
                pad(b, t.cmd, 15);
                b.extend_from_slice(b" | ");
                let mut c = Cursor::new(b, 0);
                c.size_column(t.size as u64);
                c.finish();
                b.extend_from_slice(t.details.as_bytes());
                b.push(b'\n');
            }
        }
    }

    /// Makes the prefix show millisecond `ms` (since the log started).
    #[inline(always)]
    fn at_ms(&mut self, ms: u64) {
        if ms != self.prefix_ms {
            self.new_millisecond(ms);
        }
    }

    /// Rebuilds the prefix for millisecond `ms`.
    #[cold]
    fn new_millisecond(&mut self, ms: u64) {
        self.prefix_ms = ms;
        let mut p = Vec::with_capacity(PREFIX);
        uint(&mut p, ms / 1000);
        let frac = (ms % 1000) as usize;
        p.push(b'.');
        p.push(b'0' + (frac / 100) as u8);
        p.extend_from_slice(&PAIRS[frac % 100 * 2..frac % 100 * 2 + 2]);
        p.extend_from_slice(b"s | #");
        self.seq_at = p.len();
        padded(&mut p, self.seq, 4, b'0');
        self.prefix[..p.len()].copy_from_slice(&p);
        self.prefix_len = p.len();
    }

    /// Counts the sequence number in the prefix up, in place: 0999 -> 1000, 9999 -> 10000.
    #[inline(always)]
    fn count(&mut self) {
        self.seq += 1;
        for d in self.prefix[self.seq_at..self.prefix_len].iter_mut().rev() {
            if *d == b'9' {
                *d = b'0';
            } else {
                *d += 1;
                return;
            }
        }
        // All nines: one more digit (the prefix has room for all 20 of a u64).
        self.prefix
            .copy_within(self.seq_at..self.prefix_len, self.seq_at + 1);
        self.prefix[self.seq_at] = b'1';
        self.prefix_len += 1;
    }

    /// Caches ` | <EVENT> | <source> | <command> | ` for hot shape `slot`.
    #[inline(always)]
    fn middle(&mut self, slot: usize, kind: Kind, who: Who) {
        let k = hot_key(kind, who);
        if self.hot[slot].key != k {
            self.build_middle(slot, k, kind, who);
        }
    }

    #[cold]
    fn build_middle(&mut self, slot: usize, k: u64, kind: Kind, who: Who) {
        let mut m = Vec::with_capacity(96);
        m.extend_from_slice(b" | ");
        m.extend_from_slice(kind.padded().as_bytes());
        m.extend_from_slice(b" | ");
        match who {
            Who::Client(sid) => self.client_column(&mut m, sid),
            Who::Worker(w) => m.extend_from_slice(self.worker_column(w)),
        }
        m.extend_from_slice(b" | ");
        pad(
            &mut m,
            match slot {
                CLIENT_EXEC | WORKER_EXEC => "Exec",
                SPAN => "Timing",
                _ => "Free",
            },
            15,
        );
        m.extend_from_slice(b" | ");
        self.hot[slot] = Middle {
            key: k,
            bytes: Piece::new(&m),
        };
    }

    fn client_column(&self, b: &mut Vec<u8>, sid: SessionId) {
        match self.clients.get(&sid) {
            Some(col) => b.extend_from_slice(col),
            None => b.extend_from_slice(&source_column(&format!("CLIENT {sid} ?"))),
        }
    }

    fn worker_column(&mut self, w: WorkerId) -> &[u8] {
        let i = w.0 as usize;
        while self.workers.len() <= i {
            let col = source_column(&format!("WORKER {}", self.workers.len()));
            self.workers.push(col);
        }
        &self.workers[i]
    }
}

/// Writes one line into the spare capacity of a `Vec<u8>`: [`Cursor::new`] reserves room for
/// the whole line, every write checks (with one compare) that it stays inside that room, and
/// [`Cursor::finish`] makes the written bytes part of the vector. Pieces and literals are copied
/// with a size known at compile time, so they compile to a few vector moves instead of a
/// `memcpy` call; a piece's zero padding may land past the line's end, in capacity that the next
/// line overwrites.
struct Cursor<'a> {
    out: &'a mut Vec<u8>,
    /// Bytes of `out` written so far (its length once finished).
    len: usize,
    /// The end of the reserved room.
    end: usize,
}

impl<'a> Cursor<'a> {
    /// A line of cached pieces totalling at most `pieces` padded bytes, plus a prefix and up to
    /// [`LINE_REST`] other bytes.
    fn new(out: &'a mut Vec<u8>, pieces: usize) -> Cursor<'a> {
        let room = PREFIX + pieces + LINE_REST;
        out.reserve(room);
        let len = out.len();
        Cursor {
            out,
            len,
            end: len + room,
        }
    }

    /// Copies `N` bytes from `src` to the current end and moves the end by `used` of them.
    #[inline(always)]
    fn put<const N: usize>(&mut self, src: &[u8; N], used: usize) {
        assert!(self.len + N <= self.end && used <= N);
        // SAFETY: `end` is at most `out`'s capacity (`new` reserved it), so the `N` bytes
        // written from `len` lie inside the allocation; `src` is a different borrow, so the two
        // do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.out.as_mut_ptr().add(self.len), N);
        }
        self.len += used;
    }

    /// Appends a literal.
    #[inline(always)]
    fn lit<const N: usize>(&mut self, s: &[u8; N]) {
        self.put(s, N);
    }

    /// Appends a cached piece, chunk by chunk.
    #[inline(always)]
    fn piece(&mut self, p: &Piece) {
        let at = self.len;
        for chunk in p.padded.chunks_exact(CHUNK) {
            let chunk: &[u8; CHUNK] = chunk.try_into().unwrap_or(&[0; CHUNK]);
            self.put(chunk, CHUNK);
        }
        self.len = at + p.len;
    }

    /// Appends `n` in decimal.
    #[inline(always)]
    fn uint(&mut self, n: u64) {
        let len = decimal_len(n);
        assert!(self.len + len <= self.end);
        // SAFETY: the `len` bytes from `self.len` are inside the reserved room (checked above),
        // and `len` is the digit count. (Written through the pointer: the room is not
        // initialized, so it may not be viewed as a slice.)
        unsafe { write_digits(self.out.as_mut_ptr().add(self.len), len, n) };
        self.len += len;
    }

    /// Appends `n` (below `10^width`) in decimal, zero-padded to `width` digits.
    #[inline(always)]
    fn zero_padded(&mut self, n: u64, width: usize) {
        let len = decimal_len(n);
        for _ in len..width {
            self.lit(b"0");
        }
        self.uint(n);
    }

    /// Appends `s<session>:<local>`.
    #[inline(always)]
    fn key(&mut self, k: Key) {
        self.lit(b"s");
        self.uint(k.session().0 as u64);
        self.lit(b":");
        self.uint(k.local());
    }

    /// Appends the size column and its separator: `n` right-aligned in 10 characters, then
    /// `B | `.
    #[inline(always)]
    fn size_column(&mut self, n: u64) {
        let len = decimal_len(n);
        if len > 10 {
            self.uint(n);
            self.lit(b"B | ");
            return;
        }
        let at = self.len;
        self.lit(b"          B | ");
        // SAFETY: the 14 bytes from `at` were just written inside the reserved room.
        let out = unsafe { std::slice::from_raw_parts_mut(self.out.as_mut_ptr().add(at), 10) };
        digits_into(&mut out[10 - len..], n);
    }

    /// Ends the line: the bytes written become part of the vector.
    fn finish(self) {
        // SAFETY: every byte up to `len` was written (pieces and literals write at least what
        // they count, digits exactly), and `len <= end <= capacity`.
        unsafe { self.out.set_len(self.len) };
    }
}

/// Whom a hot line is about.
#[derive(Clone, Copy)]
enum Who {
    Client(SessionId),
    Worker(WorkerId),
}

/// Packs a hot line's kind and source into a cache key.
fn hot_key(kind: Kind, who: Who) -> u64 {
    let (tag, id) = match who {
        Who::Client(s) => (0u64, s.0),
        Who::Worker(w) => (1u64, w.0),
    };
    (kind as u64) << 40 | tag << 32 | id as u64
}

/// A source column padded to 27 characters, as `format!("{:<27}")` would.
fn source_column(s: &str) -> Vec<u8> {
    format!("{s:<27}").into_bytes()
}

/// Bytes of a postcard varint.
fn varint_len(n: u64) -> usize {
    (64 - (n | 1).leading_zeros() as usize).div_ceil(7)
}

/// Bytes of a postcard sequence of ids (its length, then each id).
fn ids_len(ids: &[u64]) -> usize {
    varint_len(ids.len() as u64) + ids.iter().map(|&n| varint_len(n)).sum::<usize>()
}

/// `00`, `01`, … `99`: decimal digits two at a time.
static PAIRS: [u8; 200] = {
    let mut t = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        t[2 * i] = b'0' + (i / 10) as u8;
        t[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    t
};

// Digits are stored one byte at a time straight into the output. Assembling them in a
// temporary and copying that out reads back bytes just written one by one, a store-forwarding
// stall that cost more than the rest of the line.

/// Writes the decimal digits of `n` into `out`, which is exactly as long as they are.
#[inline(always)]
fn digits_into(out: &mut [u8], n: u64) {
    assert_eq!(out.len(), decimal_len(n));
    // SAFETY: `out` is valid for writes of its whole length, which is the digits' count.
    unsafe { write_digits(out.as_mut_ptr(), out.len(), n) }
}

/// Writes the `len` decimal digits of `n` to `dst`.
///
/// # Safety
/// `dst` must be valid for writes of `len` bytes, and `len` must be `decimal_len(n)`.
#[inline(always)]
unsafe fn write_digits(dst: *mut u8, len: usize, mut n: u64) {
    let mut i = len;
    // SAFETY (all writes): every index is below `len` and the caller vouches for `dst..dst+len`;
    // `len` is the digit count, so the loop and the last one or two digits never go below 0.
    unsafe {
        while n >= 100 {
            let r = (n % 100) as usize * 2;
            n /= 100;
            i -= 2;
            dst.add(i).write(PAIRS[r]);
            dst.add(i + 1).write(PAIRS[r + 1]);
        }
        if n >= 10 {
            let r = n as usize * 2;
            dst.add(i - 2).write(PAIRS[r]);
            dst.add(i - 1).write(PAIRS[r + 1]);
        } else {
            dst.add(i - 1).write(b'0' + n as u8);
        }
    }
}

/// The number of decimal digits of `n`.
#[inline]
fn decimal_len(n: u64) -> usize {
    n.checked_ilog10().unwrap_or(0) as usize + 1
}

/// Appends `n` in decimal.
#[inline]
fn uint(b: &mut Vec<u8>, n: u64) {
    if n < 10 {
        b.push(b'0' + n as u8);
        return;
    }
    let start = b.len();
    b.resize(start + decimal_len(n), b'0');
    digits_into(&mut b[start..], n);
}

/// Appends `n` in decimal, left-padded with `fill` to `width`.
fn padded(b: &mut Vec<u8>, n: u64, width: usize, fill: u8) {
    let len = decimal_len(n);
    for _ in len..width {
        b.push(fill);
    }
    uint(b, n);
}

fn pad(b: &mut Vec<u8>, s: &str, width: usize) {
    b.extend_from_slice(s.as_bytes());
    for _ in s.len()..width {
        b.push(b' ');
    }
}

#[cfg(test)]
mod tests;
