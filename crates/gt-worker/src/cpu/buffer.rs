//! Tensor storage and the caching buffer pool.
//!
//! A [`Buffer`] is a run of 8-byte words (so every element type is aligned) viewed as `f32`,
//! `f64`, `i64` or `u8` through `bytemuck`. Buffers come from a [`Pool`]: size-bucketed free
//! lists guarded by one mutex (uncontended, so cheap). When the last handle to a buffer drops it
//! goes back to its pool's free list, unless that would push the cached bytes past the pool's cap,
//! in which case it is freed. A steady loop such as `a = a + b` therefore allocates nothing after
//! its first iterations.

use crate::engine::PoolStats;
use bytemuck::Pod;
use std::sync::{Arc, Mutex, MutexGuard};

/// Default bound on the bytes a pool keeps cached for reuse (1 GiB).
pub const DEFAULT_POOL_CAP: usize = 1 << 30;

/// Storage for the elements of one or more tensors (views share it through an `Arc`).
pub struct Buffer {
    words: Vec<u64>,
    pool: Option<Arc<PoolShared>>,
}

impl Buffer {
    /// Size of the storage in bytes (its size class, which may exceed what was asked for).
    pub fn len_bytes(&self) -> usize {
        self.words.len() * 8
    }

    /// The storage viewed as elements of `T` (any of `f32`, `f64`, `i64`, `u8`, `u32`, `u64`).
    #[inline]
    pub fn as_slice<T: Pod>(&self) -> &[T] {
        bytemuck::cast_slice(&self.words)
    }

    /// The storage viewed as mutable elements of `T`.
    #[inline]
    pub fn as_mut_slice<T: Pod>(&mut self) -> &mut [T] {
        bytemuck::cast_slice_mut(&mut self.words)
    }
}

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Buffer({} bytes)", self.len_bytes())
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.give_back(std::mem::take(&mut self.words));
        }
    }
}

/// A size-bucketed cache of buffers. Cloning gives another handle to the same pool.
#[derive(Clone)]
pub struct Pool {
    shared: Arc<PoolShared>,
}

struct PoolShared {
    cap_bytes: usize,
    state: Mutex<PoolState>,
}

#[derive(Default)]
struct PoolState {
    /// Free buffers, indexed by size class (see [`size_class`]).
    free: Vec<Vec<Vec<u64>>>,
    hits: u64,
    misses: u64,
    cached_bytes: usize,
    in_use_bytes: usize,
}

impl PoolShared {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // A panic while holding the lock cannot leave the counters inconsistent in a way that
        // matters, so a poisoned lock is simply taken over.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn give_back(&self, words: Vec<u64>) {
        let bytes = words.len() * 8;
        let (index, _) = size_class(words.len());
        let mut st = self.lock();
        st.in_use_bytes -= bytes;
        if st.cached_bytes + bytes <= self.cap_bytes {
            st.cached_bytes += bytes;
            if st.free.len() <= index {
                st.free.resize_with(index + 1, Vec::new);
            }
            st.free[index].push(words);
        } else {
            drop(st);
            drop(words);
        }
    }
}

/// The size class serving a request for `words` words, as `(index, class size in words)`:
/// exact up to 64 words, then rounded up to a quarter of the enclosing power of two (at most
/// 25% slack). Indexes are dense, so free lists live in a plain vector.
pub fn size_class(words: usize) -> (usize, usize) {
    if words <= 64 {
        return (words, words);
    }
    let e = (usize::BITS - 1 - words.leading_zeros()) as usize;
    let step = 1usize << (e - 2);
    let q = words.div_ceil(step);
    (65 + (e - 6) * 4 + (q - 4), q * step)
}

impl Pool {
    /// A pool that keeps at most `cap_bytes` bytes of free buffers cached.
    pub fn new(cap_bytes: usize) -> Pool {
        Pool {
            shared: Arc::new(PoolShared {
                cap_bytes,
                state: Mutex::new(PoolState::default()),
            }),
        }
    }

    /// A buffer of at least `bytes` bytes. Its contents are unspecified (a reused buffer keeps
    /// old values; a fresh one comes from the allocator's zeroed pages), so callers must write
    /// every element they later read.
    pub fn alloc(&self, bytes: usize) -> Buffer {
        let words = bytes.div_ceil(8);
        if words == 0 {
            return Buffer {
                words: Vec::new(),
                pool: None,
            };
        }
        let (index, class) = size_class(words);
        let mut st = self.shared.lock();
        if let Some(w) = st.free.get_mut(index).and_then(Vec::pop) {
            st.hits += 1;
            st.cached_bytes -= class * 8;
            st.in_use_bytes += class * 8;
            drop(st);
            return Buffer {
                words: w,
                pool: Some(self.shared.clone()),
            };
        }
        st.misses += 1;
        st.in_use_bytes += class * 8;
        drop(st);
        // `vec![0; n]` maps to the allocator's zeroed allocation, which for large sizes is fresh
        // zero pages from the OS (no fill pass) and keeps this code free of uninitialized memory.
        Buffer {
            words: vec![0u64; class],
            pool: Some(self.shared.clone()),
        }
    }

    /// Hit/miss counters, the bytes cached for reuse and the bytes handed out and not returned.
    pub fn stats(&self) -> PoolStats {
        let st = self.shared.lock();
        PoolStats {
            hits: st.hits,
            misses: st.misses,
            cached_bytes: st.cached_bytes as u64,
            in_use_bytes: st.in_use_bytes as u64,
        }
    }

    /// The most bytes this pool keeps cached.
    pub fn cap_bytes(&self) -> usize {
        self.shared.cap_bytes
    }

    /// Frees every cached buffer (counters are kept).
    pub fn clear(&self) {
        let free = {
            let mut st = self.shared.lock();
            st.cached_bytes = 0;
            std::mem::take(&mut st.free)
        };
        drop(free);
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.stats();
        write!(
            f,
            "Pool(hits {}, misses {}, cached {} of {} bytes)",
            s.hits, s.misses, s.cached_bytes, self.shared.cap_bytes
        )
    }
}
