//! Answer counters side by side: a pool's counter is reached on every answer, and a zone of a
//! hundred thousand pools whose counters lay each in an allocation of its own (among the
//! zone's other data) took a cache miss for it; packed, eight share a line and all of them
//! fit in the second-level cache.

use std::sync::atomic::AtomicU64;

/// Counters a chunk: one page.
const CHUNK: usize = 512;

/// Hands out counters from chunks that live as long as the process (as the registry's
/// counters do: a pool removed and added again counts on where it was).
#[derive(Debug, Default)]
pub(super) struct Slab {
    /// The unused rest of the current chunk.
    free: &'static [AtomicU64],
}

impl Slab {
    /// A counter at zero, next to the one handed out before it.
    pub(super) fn counter(&mut self) -> &'static AtomicU64 {
        if self.free.is_empty() {
            self.free = Box::leak((0..CHUNK).map(|_| AtomicU64::new(0)).collect());
        }
        let (counter, rest) = self.free.split_first().expect("a chunk is never empty");
        self.free = rest;
        counter
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::Relaxed;

    #[test]
    fn counters_are_distinct_and_packed() {
        let mut slab = Slab::default();
        let counters: Vec<_> = (0..CHUNK + 3).map(|_| slab.counter()).collect();
        for pair in counters[..CHUNK].windows(2) {
            assert_eq!(
                pair[1] as *const _ as usize - pair[0] as *const _ as usize,
                8
            );
        }
        for (i, c) in counters.iter().enumerate() {
            c.fetch_add(i as u64, Relaxed);
        }
        for (i, c) in counters.iter().enumerate() {
            assert_eq!(c.load(Relaxed), i as u64);
        }
    }
}
