//! Values the query path reads without a lock and a writer replaces whole: [`Cell`] (the served
//! snapshot) and [`Swappable`], which may be empty (the parts of a snapshot that outlive it: a
//! geo pool's steering table). arc-swap is named here only.

use std::sync::Arc;

/// A value held by a [`Cell`], loaded: one atomic load, no reference count taken.
pub type Loaded<T> = arc_swap::Guard<Arc<T>>;

/// A value that is always there.
#[derive(Debug)]
pub struct Cell<T>(arc_swap::ArcSwap<T>);

impl<T> Cell<T> {
    pub fn new(value: T) -> Self {
        Self(arc_swap::ArcSwap::from_pointee(value))
    }

    /// The current value. Never hold it across an `.await`.
    pub fn load(&self) -> Loaded<T> {
        self.0.load()
    }

    pub fn replace(&self, value: Arc<T>) {
        self.0.store(value);
    }
}

#[derive(Debug)]
pub struct Swappable<T>(arc_swap::ArcSwapOption<T>);

impl<T> Default for Swappable<T> {
    fn default() -> Self {
        Self(arc_swap::ArcSwapOption::empty())
    }
}

impl<T> Swappable<T> {
    /// Calls `f` with the current value (no reference count taken).
    pub fn read<R>(&self, f: impl FnOnce(Option<&T>) -> R) -> R {
        f(self.0.load().as_deref())
    }

    /// The current value, held.
    pub fn get(&self) -> Option<Arc<T>> {
        self.0.load_full()
    }

    pub fn replace(&self, value: Option<Arc<T>>) {
        self.0.store(value);
    }
}
