//! A zone's nodes by key, in shards shared between snapshots: a change to one pool copies the
//! one shard that holds its node (a few dozen entries) and shares the rest, so that a change
//! in a zone of a hundred thousand pools costs what it costs in a zone of ten.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;

use rustc_hash::FxBuildHasher;

use super::Node;

/// Nodes per shard, on average, that a zone is cut into (a power of two of shards).
const SHARD_NODES: usize = 32;

type Shard = std::collections::HashSet<Entry, FxBuildHasher>;

/// A node and its key, one cache line of the shard's table: the key inline where it is as
/// short as most names (a key kept in an allocation of its own, or an entry across two lines,
/// was one more cache miss a query in a zone of many names).
#[derive(Debug, Clone)]
#[repr(C, align(64))]
struct Entry {
    key: smallvec::SmallVec<[u8; 40]>,
    node: Arc<Node>,
}

const _: () = assert!(std::mem::size_of::<Entry>() == 64);

impl Entry {
    fn new(key: &[u8], node: Node) -> Self {
        Self {
            key: key.into(),
            node: Arc::new(node),
        }
    }
}

// An entry is its key to the set: found by it, equal by it, hashed as it.
impl Borrow<[u8]> for Entry {
    fn borrow(&self) -> &[u8] {
        &self.key
    }
}

impl Hash for Entry {
    fn hash<H: Hasher>(&self, state: &mut H) {
        <[u8]>::hash(&self.key, state)
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for Entry {}

#[derive(Debug)]
pub struct NodeMap {
    shards: Box<[Arc<Shard>]>,
    /// `shards.len() - 1`.
    mask: usize,
    len: usize,
}

/// The shard of a key: from a hash of its own, not the maps', so that both stay independent.
fn shard_of(key: &[u8], mask: usize) -> usize {
    let mut hasher = FxBuildHasher.build_hasher();
    hasher.write(key);
    // The high bits: Fx's low bits are weak.
    (hasher.finish() >> 40) as usize & mask
}

impl NodeMap {
    /// The map of `nodes` (keys unique).
    pub fn new(nodes: Vec<(Box<[u8]>, Node)>) -> Self {
        let len = nodes.len();
        let count = (len / SHARD_NODES).max(1).next_power_of_two();
        let mask = count - 1;
        let per_shard = len / count + len / count / 2;
        let mut shards: Vec<Shard> = (0..count)
            .map(|_| Shard::with_capacity_and_hasher(per_shard, FxBuildHasher))
            .collect();
        for (key, node) in nodes {
            shards[shard_of(&key, mask)].insert(Entry::new(&key, node));
        }
        Self {
            shards: shards.into_iter().map(Arc::new).collect(),
            mask,
            len,
        }
    }

    pub fn get(&self, key: &[u8]) -> Option<&Node> {
        self.shards[shard_of(key, self.mask)]
            .get(key)
            .map(|e| &*e.node)
    }

    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.shards[shard_of(key, self.mask)].contains(key)
    }

    pub fn values(&self) -> impl Iterator<Item = &Node> {
        self.shards.iter().flat_map(|s| s.iter()).map(|e| &*e.node)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The same nodes with `node` added at `key` (which must be new): only its shard is
    /// copied.
    pub fn inserting(&self, key: Box<[u8]>, node: Node) -> Self {
        let mut copy = self.with_shard_copied(&key, |shard| {
            shard.insert(Entry::new(&key, node));
        });
        copy.len += 1;
        copy
    }

    /// The same nodes with the one at `key` replaced by `node` (which must exist): only its
    /// shard is copied.
    pub fn replacing(&self, key: &[u8], node: Node) -> Self {
        self.with_shard_copied(key, |shard| {
            let old = shard.replace(Entry::new(key, node));
            assert!(old.is_some(), "the node being replaced exists");
        })
    }

    /// The same nodes with the shard of `key` copied and changed by `change`; the others
    /// shared.
    #[expect(
        clippy::mutable_key_type,
        reason = "an entry hashes and compares by its key bytes alone, which never change"
    )]
    fn with_shard_copied(&self, key: &[u8], change: impl FnOnce(&mut Shard)) -> Self {
        let at = shard_of(key, self.mask);
        let mut shards = self.shards.clone();
        let mut shard = Shard::clone(&shards[at]);
        change(&mut shard);
        shards[at] = Arc::new(shard);
        Self {
            shards,
            mask: self.mask,
            len: self.len,
        }
    }
}
