//! [`Recycler`]: emptied batch vectors handed back from the consumer of a link to its producer.
//!
//! A batch is a `Vec` of messages of ~200 bytes each (an `Op` is large), so a full client batch
//! of 1024 instructions is ~200 KB. Allocating one per batch and freeing it on another thread
//! costs more than the instructions themselves: the allocator returns such blocks to the kernel
//! and the next batch page-faults them in again, and a vector grown by pushes is copied at every
//! doubling. Handing the emptied vector back keeps a few warm, already-sized buffers cycling
//! between the two threads instead.

use std::sync::Mutex;

/// Spare vectors kept at most (a producer rarely has more than two batches in flight).
const KEEP: usize = 4;

/// Vectors larger than this many bytes are freed rather than kept, so one burst cannot pin a
/// huge buffer for the life of the link.
const MAX_SPARE_BYTES: usize = 1 << 20;

/// A small stack of emptied, still-allocated vectors shared by a link's two ends.
pub struct Recycler<M> {
    spares: Mutex<Vec<Vec<M>>>,
}

impl<M> Default for Recycler<M> {
    fn default() -> Self {
        Recycler {
            spares: Mutex::new(Vec::with_capacity(KEEP)),
        }
    }
}

impl<M> Recycler<M> {
    /// An empty recycler.
    pub fn new() -> Recycler<M> {
        Recycler::default()
    }

    /// An empty vector: a recycled one if there is one, else a new one with room for `capacity`.
    pub fn take(&self, capacity: usize) -> Vec<M> {
        match self.spares.lock().unwrap().pop() {
            Some(v) => v,
            None => Vec::with_capacity(capacity),
        }
    }

    /// Hands back a consumed batch; it is emptied and kept if it is worth keeping.
    pub fn give(&self, mut v: Vec<M>) {
        let bytes = v.capacity().saturating_mul(std::mem::size_of::<M>().max(1));
        if v.capacity() == 0 || bytes > MAX_SPARE_BYTES {
            return;
        }
        // Drop the elements before taking the lock: dropping may free tensor data.
        v.clear();
        let mut spares = self.spares.lock().unwrap();
        if spares.len() < KEEP {
            spares.push(v);
        }
    }

    /// How many spare vectors are waiting (for tests and statistics).
    pub fn spares(&self) -> usize {
        self.spares.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_vector_comes_back_empty_with_its_capacity() {
        let r = Recycler::<u64>::new();
        let mut v = r.take(16);
        assert!(v.capacity() >= 16);
        v.extend([1, 2, 3]);
        let (ptr, cap) = (v.as_ptr(), v.capacity());
        r.give(v);
        assert_eq!(r.spares(), 1);
        let again = r.take(1);
        assert!(again.is_empty());
        assert_eq!((again.as_ptr(), again.capacity()), (ptr, cap));
        assert_eq!(r.spares(), 0);
    }

    #[test]
    fn keeps_a_few_small_vectors_only() {
        let r = Recycler::<u64>::new();
        for _ in 0..10 {
            r.give(Vec::with_capacity(8));
        }
        assert_eq!(r.spares(), KEEP);
        r.give(Vec::new()); // nothing allocated: nothing to keep
        let huge = Vec::<u64>::with_capacity(MAX_SPARE_BYTES / 8 + 1);
        let r2 = Recycler::<u64>::new();
        r2.give(huge);
        assert_eq!(r2.spares(), 0);
    }

    #[test]
    fn given_elements_are_dropped() {
        let r = Recycler::<std::sync::Arc<()>>::new();
        let a = std::sync::Arc::new(());
        r.give(vec![a.clone(), a.clone()]);
        assert_eq!(std::sync::Arc::strong_count(&a), 1);
    }
}
