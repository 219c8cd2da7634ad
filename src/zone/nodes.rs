//! A zone's nodes by key, in shards shared between snapshots: a change to one pool copies the
//! one shard that holds its node (a few dozen entries) and shares the rest, so that a change
//! in a zone of a hundred thousand pools costs what it costs in a zone of ten.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use rustc_hash::{FxBuildHasher, FxHashMap};

use super::Node;

/// Nodes per shard, on average, that a zone is cut into (a power of two of shards).
const SHARD_NODES: usize = 32;

type Shard = FxHashMap<Key, Arc<Node>>;

/// A node's key, inline in the map's bucket where it is as short as most names: comparing a
/// key kept in an allocation of its own was a cache miss a query in a zone of many names.
type Key = smallvec::SmallVec<[u8; 24]>;

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
            shards[shard_of(&key, mask)].insert(Key::from_slice(&key), Arc::new(node));
        }
        Self {
            shards: shards.into_iter().map(Arc::new).collect(),
            mask,
            len,
        }
    }

    pub fn get(&self, key: &[u8]) -> Option<&Node> {
        self.shards[shard_of(key, self.mask)].get(key).map(|n| &**n)
    }

    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.shards[shard_of(key, self.mask)].contains_key(key)
    }

    pub fn values(&self) -> impl Iterator<Item = &Node> {
        self.shards.iter().flat_map(|s| s.values()).map(|n| &**n)
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
            shard.insert(Key::from_slice(&key), Arc::new(node));
        });
        copy.len += 1;
        copy
    }

    /// The same nodes with the one at `key` replaced by `node` (which must exist): only its
    /// shard is copied.
    pub fn replacing(&self, key: &[u8], node: Node) -> Self {
        self.with_shard_copied(key, |shard| {
            let slot = shard.get_mut(key).expect("the node being replaced exists");
            *slot = Arc::new(node);
        })
    }

    /// The same nodes with the shard of `key` copied and changed by `change`; the others
    /// shared.
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
