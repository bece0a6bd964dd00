//! Turning records into lines, on the writer thread. This is the log's hot loop (four lines per
//! `a = a + b`, a few million lines a second at full speed), so nothing here goes through
//! `fmt`: every line is a handful of byte copies into one reused buffer.
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

/// Formats records into lines; owned by the writer thread.
pub(crate) struct Formatter {
    /// `<elapsed>s | #<seq>` of the next line.
    prefix: Vec<u8>,
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
    ops: FxHashMap<u32, (Vec<u8>, usize)>,
    /// ` | <EVENT> | <source> | <command> | ` of the last line of each hot shape.
    hot: [Middle; 4],
}

/// A cached middle part and what it was built for.
struct Middle {
    /// Kind, source and command packed by [`hot_key`]; `u64::MAX` when empty.
    key: u64,
    bytes: Vec<u8>,
}

/// The hot record shapes, indices into [`Formatter::hot`].
const CLIENT_EXEC: usize = 0;
const CLIENT_FREE: usize = 1;
const WORKER_EXEC: usize = 2;
const WORKER_FREE: usize = 3;

impl Formatter {
    pub(crate) fn new() -> Formatter {
        Formatter {
            prefix: Vec::with_capacity(32),
            prefix_ms: u64::MAX,
            seq_at: 0,
            seq: 0,
            clients: FxHashMap::default(),
            workers: Vec::new(),
            ops: FxHashMap::default(),
            hot: std::array::from_fn(|_| Middle {
                key: u64::MAX,
                bytes: Vec::with_capacity(96),
            }),
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
                let text = format!(" op={op}").into_bytes();
                self.ops.insert(*n, (text, super::size_of(op)));
            }
            Record::ForgetOp { n } => {
                self.ops.remove(n);
            }
            Record::ClientExec {
                at,
                sid,
                out,
                op,
                inputs,
            } => {
                let op_size = self.ops.get(op).map_or(0, |o| o.1);
                let size = 1 + varint_len(out.0) + op_size + ids_len(inputs.iter().map(|t| t.0));
                self.start(b, *at);
                b.extend_from_slice(self.middle(CLIENT_EXEC, Kind::Recv, Who::Client(*sid)));
                size_column(b, size as u64);
                b.extend_from_slice(b"out=t");
                uint(b, out.0);
                self.op_text(b, *op);
                for (i, x) in inputs.iter().enumerate() {
                    b.extend_from_slice(if i == 0 { b" inputs=t" } else { b",t" });
                    uint(b, x.0);
                }
                b.push(b'\n');
            }
            Record::ClientFree { at, sid, id } => {
                self.start(b, *at);
                b.extend_from_slice(self.middle(CLIENT_FREE, Kind::Recv, Who::Client(*sid)));
                size_column(b, 1 + varint_len(id.0) as u64);
                b.extend_from_slice(b"id=t");
                uint(b, id.0);
                b.push(b'\n');
            }
            Record::WorkerExec {
                at,
                kind,
                w,
                out,
                op,
                inputs,
            } => {
                let op_size = self.ops.get(op).map_or(0, |o| o.1);
                let size = 1 + varint_len(out.0) + op_size + ids_len(inputs.iter().map(|k| k.0));
                self.start(b, *at);
                b.extend_from_slice(self.middle(WORKER_EXEC, *kind, Who::Worker(*w)));
                size_column(b, size as u64);
                b.extend_from_slice(b"out=");
                key(b, *out);
                self.op_text(b, *op);
                for (i, x) in inputs.iter().enumerate() {
                    b.extend_from_slice(if i == 0 { b" inputs=" } else { b"," });
                    key(b, *x);
                }
                b.push(b'\n');
            }
            Record::WorkerFree {
                at,
                kind,
                w,
                key: k,
            } => {
                self.start(b, *at);
                b.extend_from_slice(self.middle(WORKER_FREE, *kind, Who::Worker(*w)));
                size_column(b, 1 + varint_len(k.0) as u64);
                b.extend_from_slice(b"key=");
                key(b, *k);
                b.push(b'\n');
            }
            Record::Text(t) => {
                self.start(b, t.at);
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
                size_column(b, t.size as u64);
                b.extend_from_slice(t.details.as_bytes());
                b.push(b'\n');
            }
        }
    }

    /// Appends ` op=<display>` of op number `n`.
    fn op_text(&self, b: &mut Vec<u8>, n: u32) {
        match self.ops.get(&n) {
            Some((text, _)) => b.extend_from_slice(text),
            None => b.extend_from_slice(b" op=?"),
        }
    }

    /// Appends `<elapsed>s | #<seq>` and counts the sequence number up.
    fn start(&mut self, b: &mut Vec<u8>, at_us: u64) {
        let ms = at_us / 1000;
        if ms != self.prefix_ms {
            self.prefix_ms = ms;
            self.prefix.clear();
            uint(&mut self.prefix, ms / 1000);
            let frac = (ms % 1000) as usize;
            self.prefix.push(b'.');
            self.prefix.push(b'0' + (frac / 100) as u8);
            self.prefix
                .extend_from_slice(&PAIRS[frac % 100 * 2..frac % 100 * 2 + 2]);
            self.prefix.extend_from_slice(b"s | #");
            self.seq_at = self.prefix.len();
            padded(&mut self.prefix, self.seq, 4, b'0');
        }
        b.extend_from_slice(&self.prefix);
        self.seq += 1;
        // Count the digits up in place: 0999 -> 1000, 9999 -> 10000.
        for d in self.prefix[self.seq_at..].iter_mut().rev() {
            if *d == b'9' {
                *d = b'0';
            } else {
                *d += 1;
                return;
            }
        }
        self.prefix.insert(self.seq_at, b'1');
    }

    /// ` | <EVENT> | <source> | <command> | ` for hot shape `slot`, cached.
    fn middle(&mut self, slot: usize, kind: Kind, who: Who) -> &[u8] {
        let k = hot_key(kind, who);
        if self.hot[slot].key != k {
            let mut m = std::mem::take(&mut self.hot[slot].bytes);
            m.clear();
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
                if slot == CLIENT_EXEC || slot == WORKER_EXEC {
                    "Exec"
                } else {
                    "Free"
                },
                15,
            );
            m.extend_from_slice(b" | ");
            self.hot[slot] = Middle { key: k, bytes: m };
        }
        &self.hot[slot].bytes
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
fn ids_len(ids: impl ExactSizeIterator<Item = u64>) -> usize {
    varint_len(ids.len() as u64) + ids.map(varint_len).sum::<usize>()
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
#[inline]
fn digits_into(out: &mut [u8], mut n: u64) {
    let mut i = out.len();
    while n >= 100 {
        let r = (n % 100) as usize * 2;
        n /= 100;
        i -= 2;
        out[i] = PAIRS[r];
        out[i + 1] = PAIRS[r + 1];
    }
    if n >= 10 {
        let r = n as usize * 2;
        out[i - 2] = PAIRS[r];
        out[i - 1] = PAIRS[r + 1];
    } else {
        out[i - 1] = b'0' + n as u8;
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

/// The size column and its separator: `n` right-aligned in 10 characters, then `B | `.
#[inline]
fn size_column(b: &mut Vec<u8>, n: u64) {
    let len = decimal_len(n);
    if len > 10 {
        uint(b, n);
        b.extend_from_slice(b"B | ");
        return;
    }
    let start = b.len();
    b.extend_from_slice(b"          B | ");
    digits_into(&mut b[start + 10 - len..start + 10], n);
}

fn pad(b: &mut Vec<u8>, s: &str, width: usize) {
    b.extend_from_slice(s.as_bytes());
    for _ in s.len()..width {
        b.push(b' ');
    }
}

fn key(b: &mut Vec<u8>, k: Key) {
    b.push(b's');
    uint(b, k.session().0 as u64);
    b.push(b':');
    uint(b, k.local());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_stay_small() {
        // The core copies one per logged message; rare events are boxed to keep it so.
        assert!(
            std::mem::size_of::<Record>() <= 64,
            "{}",
            std::mem::size_of::<Record>()
        );
    }

    #[test]
    fn numbers_match_std_formatting() {
        for n in [
            0u64,
            7,
            9,
            10,
            42,
            99,
            100,
            101,
            999,
            1000,
            12345,
            1 << 40,
            u64::MAX,
        ] {
            let mut b = Vec::new();
            uint(&mut b, n);
            assert_eq!(b, n.to_string().into_bytes(), "{n}");
            let mut b = Vec::new();
            padded(&mut b, n, 4, b'0');
            assert_eq!(b, format!("{n:04}").into_bytes(), "{n}");
            let mut b = Vec::new();
            size_column(&mut b, n);
            assert_eq!(b, format!("{n:>10}B | ").into_bytes(), "{n}");
        }
    }

    #[test]
    fn sequence_numbers_count_up_across_widths_and_milliseconds() {
        let mut f = Formatter::new();
        let mut b = Vec::new();
        for seq in 0..10_200u64 {
            // A new millisecond every 7 lines; 1.5 s in.
            let at = 1_500_000 + seq / 7 * 1000;
            b.clear();
            f.start(&mut b, at);
            let ms = at / 1000;
            let want = format!("{}.{:03}s | #{seq:04}", ms / 1000, ms % 1000);
            assert_eq!(String::from_utf8_lossy(&b), want);
        }
    }
}
