//! What the keys of an instance streamed through a plan name ([`Names`]): an instruction's
//! result, an external input, or a freed value. A run checks every argument against the plan's
//! canonical dataflow with it.
//!
//! Clients number their tensors in order, so within a run every result is a key newer than any
//! key seen before it and external inputs are older than the run's results. While that holds,
//! each check is an index and a compare against what the plan expects there (the expected
//! instruction's result key, or the expected external's key) — no hashing, which was a visible
//! share of a small compiled step (three to four hash operations per instruction). The first
//! key that breaks the pattern (a reused key, an external newer than the run's first result)
//! switches the run to a hash map of every name, built from what the run has seen, and the
//! checks give the same answers from then on.

use crate::compile::trace::Arg;
use gt_core::Key;
use rustc_hash::FxHashMap;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Name {
    Node(u32),
    Ext(u32),
    Freed,
}

/// The names of one run (see the module doc).
#[derive(Default)]
pub(super) struct Names {
    /// Every key named so far, once the ordered pattern broke (`mapped`; its buffer is kept
    /// for later runs).
    map: FxHashMap<Key, Name>,
    mapped: bool,
    /// Each instruction's result key (`None` for a free), and whether it is still live.
    outs: Vec<(Option<Key>, bool)>,
    /// Each external input's key, and whether it is still live.
    ext: Vec<(Key, bool)>,
    /// The newest key named, and the oldest result key.
    newest: Option<Key>,
    first_out: Option<Key>,
    /// Results not freed so far.
    pub live: usize,
}

impl Names {
    /// Forgets every name, keeping the buffers.
    pub fn reset(&mut self, n: usize) {
        if self.mapped {
            self.map.clear();
        }
        self.mapped = false;
        self.outs.clear();
        self.outs.reserve(n);
        self.ext.clear();
        self.newest = None;
        self.first_out = None;
        self.live = 0;
    }

    fn name_in_order(&self, k: Key) -> Option<Name> {
        // Only for the map's construction: in order, keys are unique.
        self.outs
            .iter()
            .position(|o| o.0 == Some(k))
            .map(|i| {
                if self.outs[i].1 {
                    Name::Node(i as u32)
                } else {
                    Name::Freed
                }
            })
            .or_else(|| {
                self.ext.iter().position(|e| e.0 == k).map(|j| {
                    if self.ext[j].1 {
                        Name::Ext(j as u32)
                    } else {
                        Name::Freed
                    }
                })
            })
    }

    /// Leaves the ordered pattern: from now on every name is in the map.
    fn switch_to_map(&mut self) {
        if !self.mapped {
            let m = &mut self.map;
            for (j, &(k, alive)) in self.ext.iter().enumerate() {
                m.insert(
                    k,
                    if alive {
                        Name::Ext(j as u32)
                    } else {
                        Name::Freed
                    },
                );
            }
            for (i, &(k, alive)) in self.outs.iter().enumerate() {
                if let Some(k) = k {
                    m.insert(
                        k,
                        if alive {
                            Name::Node(i as u32)
                        } else {
                            Name::Freed
                        },
                    );
                }
            }
            self.mapped = true;
            debug_assert!(self
                .map
                .keys()
                .all(|&k| self.name_in_order(k) == self.map.get(&k).copied()));
        }
    }

    /// Whether `k` is what the plan expects (`want`). `Some(true)` for a new external the caller must add with
    /// [`Names::add_ext`] after checking it; `Some(false)` for a known name; `None` for a
    /// mismatch.
    pub fn check(&mut self, k: Key, want: Arg) -> Option<bool> {
        if self.mapped {
            return match (self.map.get(&k), want) {
                (Some(Name::Node(n)), Arg::Node(w)) if *n == w => Some(false),
                (Some(Name::Ext(j)), Arg::Ext(w)) if *j == w => Some(false),
                (None, Arg::Ext(w)) if w as usize == self.ext.len() => Some(true),
                _ => None,
            };
        }
        match want {
            Arg::Node(j) => match self.outs.get(j as usize) {
                Some(&(Some(o), true)) if o == k => Some(false),
                _ => None,
            },
            Arg::Ext(j) if (j as usize) < self.ext.len() => {
                (self.ext[j as usize] == (k, true)).then_some(false)
            }
            Arg::Ext(j) if j as usize == self.ext.len() => {
                if self.first_out.is_some_and(|f| k >= f) {
                    // Possibly one of this run's results: ask the map.
                    self.switch_to_map();
                    return self.check(k, want);
                }
                // Older than every result, so not one; an external met before is a mismatch.
                (!self.ext.iter().any(|e| e.0 == k)).then_some(true)
            }
            Arg::Ext(_) => None,
        }
    }

    /// Names `k` the next external input (checked with [`Names::check`]).
    pub fn add_ext(&mut self, k: Key) {
        let j = self.ext.len() as u32;
        self.ext.push((k, true));
        if self.mapped {
            self.map.insert(k, Name::Ext(j));
        } else if self.newest.is_none_or(|n| k > n) {
            self.newest = Some(k);
        }
    }

    /// Instruction `i` (the next one) produced `k`.
    pub fn define(&mut self, i: usize, k: Key) {
        debug_assert_eq!(i, self.outs.len());
        let fresh = self.newest.is_none_or(|n| k > n);
        if !fresh {
            self.switch_to_map();
        }
        self.outs.push((Some(k), true));
        if self.mapped {
            let before = self.map.insert(k, Name::Node(i as u32));
            if let Some(Name::Node(p)) = before {
                self.outs[p as usize].1 = false;
            } else {
                self.live += 1;
            }
        } else {
            self.newest = Some(k);
            self.first_out.get_or_insert(k);
            self.live += 1;
        }
    }

    /// Instruction `i` (the next one) freed `k`, which [`Names::check`] found named `want`.
    pub fn free(&mut self, i: usize, k: Key, want: Arg) {
        debug_assert_eq!(i, self.outs.len());
        self.outs.push((None, false));
        match want {
            Arg::Node(j) => {
                self.outs[j as usize].1 = false;
                self.live -= 1;
            }
            Arg::Ext(j) => self.ext[j as usize].1 = false,
        }
        if self.mapped {
            self.map.insert(k, Name::Freed);
        }
    }

    /// Instruction `i` (the next one) named nothing.
    pub fn skip(&mut self, i: usize) {
        debug_assert_eq!(i, self.outs.len());
        self.outs.push((None, false));
    }

    /// Whether `k` is still instruction `node`'s live result.
    pub fn is_result(&self, k: Key, node: u32) -> bool {
        if self.mapped {
            self.map.get(&k) == Some(&Name::Node(node))
        } else {
            self.outs.get(node as usize) == Some(&(Some(k), true))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gt_core::SessionId;

    fn k(n: u64) -> Key {
        Key::new(SessionId(1), n)
    }

    /// The same questions asked of a run in order and of one forced into the map at once.
    fn both(f: impl Fn(&mut Names) -> Vec<Option<bool>>) {
        let mut ordered = Names::default();
        let a = f(&mut ordered);
        let mut mapped = Names::default();
        mapped.switch_to_map();
        assert_eq!(a, f(&mut mapped));
        assert_eq!(ordered.live, mapped.live);
    }

    #[test]
    fn ordered_keys_and_the_map_agree() {
        both(|n| {
            let mut got = vec![n.check(k(3), Arg::Ext(0))];
            n.add_ext(k(3));
            n.define(0, k(10));
            got.push(n.check(k(10), Arg::Node(0)));
            got.push(n.check(k(3), Arg::Ext(0)));
            got.push(n.check(k(3), Arg::Ext(1))); // a known external where a new one belongs
            got.push(n.check(k(10), Arg::Ext(1))); // a result where an external belongs
            got.push(n.check(k(4), Arg::Ext(1)));
            n.add_ext(k(4));
            n.define(1, k(11));
            got.push(n.check(k(11), Arg::Node(0))); // the wrong result
            got.push(n.check(k(10), Arg::Node(0)));
            n.free(2, k(10), Arg::Node(0));
            got.push(n.check(k(10), Arg::Node(0))); // freed
            got.push(n.check(k(4), Arg::Ext(1)));
            n.free(3, k(4), Arg::Ext(1));
            got.push(n.check(k(4), Arg::Ext(1)));
            n.skip(4);
            got.push(Some(n.is_result(k(11), 1)));
            got.push(Some(n.is_result(k(10), 0)));
            got
        });
    }

    #[test]
    fn a_reused_key_switches_to_the_map_and_renames() {
        let mut n = Names::default();
        n.define(0, k(10));
        n.define(1, k(11));
        assert!(!n.mapped);
        n.define(2, k(10)); // reused: the old result is gone
        assert!(n.mapped);
        assert_eq!(n.check(k(10), Arg::Node(0)), None);
        assert_eq!(n.check(k(10), Arg::Node(2)), Some(false));
        assert_eq!(n.live, 2);
        assert!(n.is_result(k(10), 2) && !n.is_result(k(10), 0));
        // An external newer than the first result is looked up in the map.
        assert_eq!(n.check(k(12), Arg::Ext(0)), Some(true));
    }
}
