//! Values the query path reads without a lock and a writer replaces whole: [`Cell`] (the served
//! snapshot) and [`Swappable`], which may be empty (the parts of a snapshot that outlive it: a
//! geo pool's steering table). arc-swap is named here only.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Acquire, Ordering::Release};

/// A value held by a [`Cell`], loaded: one atomic load, no reference count taken.
pub type Loaded<T> = arc_swap::Guard<Arc<T>>;

/// A value that is always there, with a count of its replacements (see [`Swappable`]).
#[derive(Debug)]
pub struct Cell<T>(arc_swap::ArcSwap<T>, AtomicU64);

impl<T> Cell<T> {
    pub fn new(value: T) -> Self {
        Self(arc_swap::ArcSwap::from_pointee(value), AtomicU64::new(0))
    }

    /// The current value. Never hold it across an `.await`.
    pub fn load(&self) -> Loaded<T> {
        self.0.load()
    }

    /// The current value, held.
    pub fn get(&self) -> Arc<T> {
        self.0.load_full()
    }

    /// How many times it has been replaced: a value taken by [`Cell::get`] after this count
    /// was read is current while the count stays the same.
    pub fn version(&self) -> u64 {
        self.1.load(Acquire)
    }

    pub fn replace(&self, value: Arc<T>) {
        self.0.store(value);
        self.1.fetch_add(1, Release);
    }
}

/// A value that may be empty, with a count of its replacements: a reader that keeps a copy (see
/// `policy::geo::steer`) checks the count, one plain atomic load, instead of loading the value.
#[derive(Debug)]
pub struct Swappable<T>(arc_swap::ArcSwapOption<T>, AtomicU64);

impl<T> Default for Swappable<T> {
    fn default() -> Self {
        Self(arc_swap::ArcSwapOption::empty(), AtomicU64::new(0))
    }
}

impl<T> Swappable<T> {
    /// How many times it has been replaced: a copy taken by [`Swappable::get`] after this
    /// count was read is current while the count stays the same.
    pub fn version(&self) -> u64 {
        self.1.load(Acquire)
    }

    /// The current value, held.
    pub fn get(&self) -> Option<Arc<T>> {
        self.0.load_full()
    }

    pub fn replace(&self, value: Option<Arc<T>>) {
        self.0.store(value);
        self.1.fetch_add(1, Release);
    }
}
