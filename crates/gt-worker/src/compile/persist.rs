//! `GT_COMPILE_CACHE=dir`: hot sequences found in one run are appended to `dir/hotpaths.txt`
//! (one line each: `a|p`, the signature, then the instruction hashes, in hex), and every stream
//! of a later run starts with them, so a known training step is buffered and compiled the first
//! time it appears instead of after `GT_HOTPATH_THRESHOLD` repetitions. Signatures hold no
//! tensor ids or data, only ops, shapes and dataflow, so they carry over between runs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One persisted hot sequence.
#[derive(Clone, Debug, PartialEq)]
pub struct Saved {
    /// Found between sync points (`a`) or as a period (`p`).
    pub anchored: bool,
    /// Its signature.
    pub sig: u64,
    /// Its instruction hashes.
    pub hashes: Arc<[u64]>,
}

fn file(dir: &Path) -> PathBuf {
    dir.join("hotpaths.txt")
}

/// The sequences saved in `dir` (a missing file is an empty cache; malformed lines are skipped
/// with a warning naming the file and line).
pub fn load(dir: &Path) -> Vec<Saved> {
    let path = file(dir);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut it = line.split_whitespace();
        let parsed = (|| {
            let anchored = match it.next()? {
                "a" => true,
                "p" => false,
                _ => return None,
            };
            let sig = u64::from_str_radix(it.next()?, 16).ok()?;
            let hashes: Vec<u64> = it
                .map(|h| u64::from_str_radix(h, 16).ok())
                .collect::<Option<_>>()?;
            (!hashes.is_empty()).then(|| Saved {
                anchored,
                sig,
                hashes: hashes.into(),
            })
        })();
        match parsed {
            Some(s) => out.push(s),
            None if line.trim().is_empty() => {}
            None => {
                tracing::warn!(target: "gt::compile", "{}:{}: not a hot-path line; skipped", path.display(), n + 1)
            }
        }
    }
    out
}

/// Appends one sequence to the cache in `dir` (created if needed).
pub fn save(dir: &Path, s: &Saved) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut line = format!("{} {:016x}", if s.anchored { "a" } else { "p" }, s.sig);
    for h in s.hashes.iter() {
        line.push_str(&format!(" {h:x}"));
    }
    line.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file(dir))?;
    f.write_all(line.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_sequences_load_back_and_bad_lines_are_skipped() {
        let dir = std::env::temp_dir().join(format!("gt-persist-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(load(&dir).is_empty());
        let s = Saved {
            anchored: true,
            sig: 0xabc,
            hashes: vec![1, 2, u64::MAX].into(),
        };
        save(&dir, &s).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(file(&dir))
            .unwrap()
            .write_all(b"garbage line\n")
            .unwrap();
        assert_eq!(load(&dir), vec![s]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
