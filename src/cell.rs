//! A value the query path reads without a lock and a writer replaces whole: for the parts of a
//! snapshot that outlive it (a geo pool's steering table). arc-swap is named here and in
//! `snapshot` only.

use std::sync::Arc;

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
