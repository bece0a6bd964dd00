//! Reading instruction-log lines back (seed 003's format) for `gt trace` and `gt visualize`.
//!
//! ```text
//! <elapsed>s | #<seq> | <EVENT> | <source> | <command> | <size>B | <details>
//! ```
//! Details are `key=value` pairs; a value runs to the next ` key=` (ops such as
//! `full([2], 1, float32)` contain spaces).

use anyhow::{bail, Result};
use std::sync::OnceLock;

/// One parsed log line.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    /// Elapsed time, in microseconds (the column has millisecond resolution).
    pub at_us: u64,
    pub seq: u64,
    pub event: String,
    pub source: Source,
    pub command: String,
    pub size: u64,
    pub details: String,
}

/// The source column.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// `CLIENT s<n> <name>`.
    Client { session: u32, name: String },
    /// `CLIENT - <name>` (not admitted).
    Joining(String),
    /// `WORKER <n>`.
    Worker(u32),
}

fn regex() -> &'static regex_lite::Regex {
    static RE: OnceLock<regex_lite::Regex> = OnceLock::new();
    RE.get_or_init(|| {
        regex_lite::Regex::new(
            r"^(\d+)\.(\d{3})s \| #(\d{4,}) \| ([A-Z_]+) *\| (CLIENT s\d+ .*?|CLIENT - .*?|WORKER \d+) *\| ([A-Za-z]+|-) *\| +(\d+)B \| (.*)$",
        )
        .expect("a valid regex")
    })
}

/// Parses one line; the error names what is wrong.
pub fn parse_line(line: &str) -> Result<Line> {
    let Some(c) = regex().captures(line) else {
        bail!("not an instruction-log line: {line:?}");
    };
    let num = |i: usize| c[i].parse::<u64>().unwrap_or(0);
    let src = c[5].trim_end();
    let source = if let Some(w) = src.strip_prefix("WORKER ") {
        Source::Worker(w.parse()?)
    } else if let Some(name) = src.strip_prefix("CLIENT - ") {
        Source::Joining(name.into())
    } else {
        let rest = src.strip_prefix("CLIENT s").unwrap_or(src);
        let (sid, name) = rest.split_once(' ').unwrap_or((rest, ""));
        Source::Client {
            session: sid.parse()?,
            name: name.into(),
        }
    };
    Ok(Line {
        at_us: (num(1) * 1000 + num(2)) * 1000,
        seq: num(3),
        event: c[4].into(),
        source,
        command: c[6].into(),
        size: num(7),
        details: c[8].into(),
    })
}

/// Parses every non-empty line of `text`, naming the first bad line by number.
pub fn parse_all(text: &str) -> Result<Vec<Line>> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| parse_line(l).map_err(|e| anyhow::anyhow!("line {}: {e}", i + 1)))
        .collect()
}

impl Line {
    /// The value of `key` in the details: it runs to the next ` name=` outside brackets (op
    /// values such as `add(x, scalar=1)` or `full([2], 1, float32)` contain both).
    pub fn field(&self, key: &str) -> Option<&str> {
        let d = &self.details;
        let pat = format!("{key}=");
        let start = if d.starts_with(&pat) {
            pat.len()
        } else {
            d.find(&format!(" {pat}"))? + pat.len() + 1
        };
        let rest = &d[start..];
        let bytes = rest.as_bytes();
        let mut depth = 0i32;
        for (i, &c) in bytes.iter().enumerate() {
            match c {
                b'(' | b'[' => depth += 1,
                b')' | b']' => depth -= 1,
                b' ' if depth <= 0 && starts_field(&rest[i + 1..]) => return Some(&rest[..i]),
                _ => {}
            }
        }
        Some(rest)
    }

    /// A numeric field.
    pub fn num(&self, key: &str) -> Option<u64> {
        self.field(key)?.parse().ok()
    }

    /// A time field written as seconds (`t=1.234567s`), in microseconds.
    pub fn secs_us(&self, key: &str) -> Option<f64> {
        let v = self.field(key)?.strip_suffix('s')?;
        v.parse::<f64>().ok().map(|s| s * 1e6)
    }

    /// A duration field written in microseconds (`dur=1.500us`).
    pub fn micros(&self, key: &str) -> Option<f64> {
        self.field(key)?.strip_suffix("us")?.parse().ok()
    }

    /// The worker this line is about, if it is a worker line.
    pub fn worker(&self) -> Option<u32> {
        match self.source {
            Source::Worker(w) => Some(w),
            _ => None,
        }
    }
}

/// Whether `s` starts with `name=` (a lower-case identifier).
fn starts_field(s: &str) -> bool {
    let n = s
        .bytes()
        .take_while(|c| c.is_ascii_lowercase() || *c == b'_' || c.is_ascii_digit())
        .count();
    n > 0 && s.as_bytes().get(n) == Some(&b'=')
}

/// The family of an op as it appears in a log (`add`, `full([2], 1, float32)`): an
/// [`gt_ops::OpKind`] label, or `transfer` / `other` for instructions that are not ops.
pub fn op_family(op: &str) -> &'static str {
    let name = op.split('(').next().unwrap_or(op);
    match gt_ops::OpKind::of_name(name) {
        Some(k) => k.label(),
        None if matches!(name, "send" | "recv" | "read") => "transfer",
        None => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_with_their_fields() {
        let l = parse_line("1.608s | #0011 | RECV         | CLIENT s1 my job            | Exec            |          7B | out=t4 op=full([2], 1, float32) inputs=t3,t2").unwrap();
        assert_eq!(l.at_us, 1_608_000);
        assert_eq!(l.seq, 11);
        assert_eq!(
            l.source,
            Source::Client {
                session: 1,
                name: "my job".into()
            }
        );
        assert_eq!(l.field("op"), Some("full([2], 1, float32)"));
        assert_eq!(l.field("inputs"), Some("t3,t2"));
        assert_eq!(l.field("out"), Some("t4"));
        let e = parse_line("0.001s | #0003 | EXEC         | WORKER 0                    | Timing          |          0B | key=s1:7 op=add t=0.000123s dur=1.500us").unwrap();
        assert_eq!(e.worker(), Some(0));
        assert_eq!(e.field("op"), Some("add"));
        let s = parse_line("0.001s | #0003 | RECV         | CLIENT s1 a                 | Exec            |          7B | out=t5 op=add(x, scalar=1) inputs=t4").unwrap();
        assert_eq!(s.field("op"), Some("add(x, scalar=1)"));
        assert_eq!(s.field("inputs"), Some("t4"));
        assert!((e.secs_us("t").unwrap() - 123.0).abs() < 1e-6);
        assert_eq!(e.micros("dur"), Some(1.5));
        let m = parse_line("0.000s | #0015 | MODIFIER_INJECT | WORKER 0                    | Send            |          9B | key=s1:1 to=1 xfer=1").unwrap();
        assert_eq!(m.event, "MODIFIER_INJECT");
        assert!(parse_line("garbage").is_err());
        assert_eq!(op_family("matmul"), "matmul");
        assert_eq!(op_family("full([2], 1, float32)"), "creation");
    }
}
