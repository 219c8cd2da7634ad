//! A network → value table built once from the whole database, for one way of steering
//! (gdnsd builds the same at load). Walking the database's binary tree costs a chain of ~24
//! dependent loads per IPv4 client, most of them cache misses; this table costs two. Every
//! database network is given a small value by the caller (a datacenter order, in practice),
//! and neighbouring networks with the same value merge into one run, so the table is small
//! (≈ 160k IPv4 runs for three datacenters and DB-IP City Lite, against 6M networks) and a
//! lookup also gives the widest prefix around the client over which the value holds: the
//! right ECS scope (RFC 7871 §7.2.1).

use std::net::IpAddr;

use super::{GeoDb, Location, canonical};

/// A value no network has: the table does not cover the address (IPv4-mapped and 6to4 alias
/// ranges, an IPv6 address in an IPv4 database); the caller walks the tree instead.
pub const UNCOVERED: u16 = u16::MAX;

/// Marks a run in special space (see `SPECIAL_V4`): it answers like its network, but never
/// merges with the global space around it. Callers' values stay below it.
const SPECIAL: u16 = 0x8000;

/// Gives a network's location (`None`: not located) its value in one table.
pub type ValueOf<'a> = &'a mut dyn FnMut(Option<&Location>) -> u16;

/// Runs of equal value over one address family, found through an index of aligned networks
/// (buckets: IPv4 /16s, IPv6 /19s of 2000::/3). A bucket inside one run holds its value and
/// scope itself, so most lookups read one cache line of the index and nothing else.
#[derive(Debug, Default)]
struct Runs<K> {
    /// `index[b]`: bucket `b`'s first run, or its answer (`Key::BUCKETS + 1` entries).
    index: Vec<Bucket>,
    /// Sorted run starts; the first is 0, each run ends where the next starts.
    starts: Vec<K>,
    values: Vec<u16>,
}

/// One bucket of the index: how many runs start below it, and where one run covers it all,
/// that run's value and the scope every address of the bucket gets.
#[derive(Debug, Default, Clone, Copy)]
struct Bucket {
    first_run: u32,
    value: u16,
    /// 0xff: not covered by one run; search the runs.
    scope: u8,
}

/// `Bucket::scope` of a bucket that no single run covers.
const MIXED: u8 = u8::MAX;

/// An address as an integer of its family's width.
trait Key: Copy + Ord + Default + std::fmt::Debug {
    const BITS: u32;
    /// Buckets of the index; `bucket` numbers them in address order.
    const BUCKETS: usize;
    fn bucket(self) -> usize;
    /// Bucket `b` as one aligned network (first address, prefix length), if it is one.
    fn bucket_network(b: usize) -> Option<(Self, u8)>;
    fn leading_zeros(self) -> u32;
    fn xor(self, other: Self) -> Self;
    fn pred(self) -> Self;
    fn succ(self) -> Self;
    /// The last address of the network `self/prefix`.
    fn last(self, prefix: u8) -> Self;
}

macro_rules! key {
    ($t:ty, $buckets:expr, $bucket:expr, $network:expr) => {
        impl Key for $t {
            const BITS: u32 = <$t>::BITS;
            const BUCKETS: usize = $buckets;
            fn bucket(self) -> usize {
                $bucket(self)
            }
            fn bucket_network(b: usize) -> Option<(Self, u8)> {
                $network(b)
            }
            fn leading_zeros(self) -> u32 {
                <$t>::leading_zeros(self)
            }
            fn xor(self, other: Self) -> Self {
                self ^ other
            }
            fn pred(self) -> Self {
                self - 1
            }
            fn succ(self) -> Self {
                self + 1
            }
            fn last(self, prefix: u8) -> Self {
                self | <$t>::MAX.checked_shr(u32::from(prefix)).unwrap_or(0)
            }
        }
    };
}
// IPv4: the /16s.
key!(u32, 1 << 16, |k: u32| (k >> 16) as usize, |b: usize| Some(
    ((b as u32) << 16, 16)
));
// IPv6: the /19s of global unicast 2000::/3 (where allocations are), between one bucket for
// everything below it and one for everything above.
key!(
    u128,
    (1 << 16) + 2,
    |k: u128| match k >> 125 {
        0 => 0,
        1 => 1 + ((k >> 109) & 0xffff) as usize,
        _ => (1 << 16) + 1,
    },
    |b: usize| (1..=1 << 16)
        .contains(&b)
        .then(|| ((1u128 << 125) | ((b as u128 - 1) << 109), 19))
);

/// Space that is not global unicast, as inclusive ranges in order (the same as
/// `geo::is_global_unicast`): no run may span it and the space around it, since a client
/// subnet there is not used and the answer goes by the resolver's address instead. (Resolvers
/// asking from such addresses, loopback above all, are still answered from the table.)
const SPECIAL_V4: [(u32, u32); 8] = [
    (0x0000_0000, 0x00ff_ffff), // 0/8
    (0x0a00_0000, 0x0aff_ffff), // 10/8
    (0x6440_0000, 0x647f_ffff), // 100.64/10
    (0x7f00_0000, 0x7fff_ffff), // 127/8
    (0xa9fe_0000, 0xa9fe_ffff), // 169.254/16
    (0xac10_0000, 0xac1f_ffff), // 172.16/12
    (0xc0a8_0000, 0xc0a8_ffff), // 192.168/16
    (0xe000_0000, 0xffff_ffff), // 224/4 multicast, 240/4 reserved, broadcast
];
const SPECIAL_V6: [(u128, u128); 2] = [(0, (0x2000 << 112) - 1), (0x4000 << 112, u128::MAX)];

impl<K: Key> Runs<K> {
    fn new() -> Self {
        Self {
            index: Vec::new(),
            starts: vec![K::default()],
            values: vec![UNCOVERED],
        }
    }

    /// Appends `value` from `start` on; starts come in increasing order.
    fn push(&mut self, start: K, value: u16) {
        if self.values.last() == Some(&value) {
            return;
        }
        if self.starts.last() == Some(&start) {
            // The previous run was empty: it is replaced.
            self.values.pop();
            self.starts.pop();
            if self.values.last() == Some(&value) {
                return;
            }
        }
        self.starts.push(start);
        self.values.push(value);
    }

    /// Gives `first..=last` the value, marked [`SPECIAL`] where it overlaps `specials`
    /// (sorted, disjoint) so that those parts form runs of their own.
    fn push_clipped(&mut self, first: K, last: K, value: u16, specials: &[(K, K)]) {
        let mut at = first;
        for &(s, e) in specials {
            if e < at || s > last {
                continue;
            }
            if s > at {
                self.push(at, value);
            }
            self.push(s.max(at), value | SPECIAL);
            if e >= last {
                return;
            }
            at = e.succ();
        }
        self.push(at, value);
    }

    fn finish(&mut self) {
        self.starts.shrink_to_fit();
        self.values.shrink_to_fit();
        let mut index = Vec::with_capacity(K::BUCKETS + 1);
        let mut run = 0;
        for bucket in 0..K::BUCKETS {
            while run < self.starts.len() && self.starts[run].bucket() < bucket {
                run += 1;
            }
            index.push(Bucket {
                first_run: run as u32,
                value: 0,
                scope: MIXED,
            });
        }
        index.push(Bucket {
            first_run: self.starts.len() as u32,
            value: 0,
            scope: MIXED,
        });
        // A bucket that no run starts inside is covered by one run: the run of its first
        // address. Every address of it then gets the same scope (at most the bucket's prefix:
        // the widest network around the bucket within the run).
        for b in 0..K::BUCKETS {
            let Some((first, prefix)) = K::bucket_network(b) else {
                continue;
            };
            let (lo, hi) = (index[b].first_run as usize, index[b + 1].first_run as usize);
            let inside = &self.starts[lo..hi];
            if inside.len() > 1 || inside.first().is_some_and(|&s| s != first) {
                continue;
            }
            let (value, scope) = self.search(first, lo, hi);
            index[b].value = value;
            index[b].scope = scope.min(prefix);
        }
        self.index = index;
    }

    /// The value for `key` and the widest prefix around it that the value covers.
    fn lookup(&self, key: K) -> (u16, u8) {
        let b = key.bucket();
        let bucket = self.index[b];
        if bucket.scope != MIXED {
            return (bucket.value, bucket.scope);
        }
        let hi = self.index[b + 1].first_run as usize;
        self.search(key, bucket.first_run as usize, hi)
    }

    /// [`Runs::lookup`] by the runs starting in `key`'s bucket (`lo..hi`).
    fn search(&self, key: K, lo: usize, hi: usize) -> (u16, u8) {
        // The run holding `key` is the last to start at or below it: within this bucket, or
        // the one running into it from below.
        let run = lo + self.starts[lo..hi].partition_point(|&s| s <= key) - 1;
        let start = self.starts[run];
        // Wide enough to hold no address below the run's start, nor any from the next run on.
        let mut scope = 0;
        if start != K::default() {
            scope = key.xor(start.pred()).leading_zeros() + 1;
        }
        if let Some(&end) = self.starts.get(run + 1) {
            scope = scope.max(key.xor(end).leading_zeros() + 1);
        }
        (self.values[run], scope.min(K::BITS) as u8)
    }
}

/// Values by network for both families.
#[derive(Debug)]
pub struct NetworkTable {
    v4: Runs<u32>,
    v6: Runs<u128>,
    /// The database aliases 6to4 (2002::/16) and Teredo (2001::/32) addresses to the IPv4
    /// addresses they embed, as MaxMind's and DB-IP's do: its walk skips them, and lookups
    /// go to `v4` with the alias's bits added to the prefix.
    alias_6to4: bool,
    alias_teredo: bool,
    /// The database it was built from.
    pub generation: u64,
}

impl super::GeoDb {
    /// Every IPv4 network of the database, in address order, as (first address, prefix
    /// length, country); `None` if the database cannot be walked. Gaps are networks it does
    /// not have.
    pub fn ipv4_networks(&self) -> Option<Vec<(u32, u8, Option<super::Code>)>> {
        let options = maxminddb::WithinOptions::default();
        let mut out = Vec::new();
        let mut countries: rustc_hash::FxHashMap<usize, Option<super::Code>> = Default::default();
        for found in self
            .reader
            .within("0.0.0.0/0".parse().ok()?, options)
            .ok()?
        {
            let found = found.ok()?;
            let network = found.network().ok()?;
            let IpAddr::V4(start) = network.network() else {
                continue;
            };
            let country = match found.offset() {
                Some(offset) => *countries.entry(offset).or_insert_with(|| {
                    match found.decode::<super::Record<'_>>() {
                        Ok(Some(record)) => super::to_location(record).and_then(|l| l.country),
                        _ => None,
                    }
                }),
                None => None,
            };
            out.push((u32::from(start), network.prefix(), country));
        }
        Some(out)
    }
}

/// What the table walk visits: IPv4 from its own subtree; with an IPv6 database, the 96
/// networks that make up ::/0 without ::/96 (the IPv4 subtree again, which the IPv4 walk
/// already covered), in address order. Each as (CIDR, first address, last address).
fn walks(ipv6: bool) -> Vec<(String, u128, u128)> {
    let mut walks: Vec<(String, u128, u128)> = vec![("0.0.0.0/0".into(), 0, 0)];
    if ipv6 {
        walks.extend((0..96u32).rev().map(|bit| {
            let start = 1u128 << (127 - bit);
            let cidr = format!("{}/{}", std::net::Ipv6Addr::from(start), bit + 1);
            (cidr, start, start.last(bit as u8 + 1))
        }));
    }
    walks
}

impl NetworkTable {
    /// Walks every network of `db` once and builds one table per function in `value_of`:
    /// each gives every network the value it returns for the network's location (`None`: no
    /// data, or no usable location), computed once per database record. `None` when the
    /// database cannot be walked (lookups are then left to the tree) or a value is not below
    /// 0x8000.
    pub fn build_many(db: &GeoDb, value_of: &mut [ValueOf<'_>]) -> Option<Vec<Self>> {
        let n = value_of.len();
        // Values by record: `values[i * n..][..n]` for the record numbered `i`.
        let mut by_record: rustc_hash::FxHashMap<usize, usize> = Default::default();
        let mut values: Vec<u16> = Vec::new();
        let unlocated: Vec<u16> = value_of.iter_mut().map(|f| f(None)).collect();
        let mut v4: Vec<Runs<u32>> = (0..n).map(|_| Runs::new()).collect();
        let mut v6: Vec<Runs<u128>> = (0..n).map(|_| Runs::new()).collect();
        let options = maxminddb::WithinOptions::default().include_networks_without_data();
        let ipv6 = db.reader.metadata().ip_version == 6;
        let walks = walks(ipv6);
        // Where the last network ended: a gap before the next one is uncovered.
        let (mut end4, mut end6): (u64, Option<u128>) = (0, Some(0));
        for (i, (cidr, walk_start, walk_last)) in walks.iter().enumerate() {
            let ipv4_walk = i == 0;
            let networks = db.reader.within(cidr.parse().ok()?, options).ok()?;
            for found in networks {
                let found = found.ok()?;
                let network = found.network().ok()?;
                let these: &[u16] = match found.offset() {
                    None => &unlocated,
                    Some(offset) => {
                        let record = *by_record.entry(offset).or_insert_with(|| {
                            let location = match found.decode::<super::Record<'_>>() {
                                Ok(Some(record)) => super::to_location(record),
                                _ => None,
                            };
                            values.extend(value_of.iter_mut().map(|f| f(location.as_ref())));
                            values.len() / n.max(1) - 1
                        });
                        &values[record * n..][..n]
                    }
                };
                if these.iter().any(|&v| v >= SPECIAL) {
                    return None;
                }
                match (network.network(), network.prefix()) {
                    (IpAddr::V4(start), prefix) if ipv4_walk => {
                        let start = u32::from(start);
                        let gap = end4 != u64::from(start);
                        for (runs, &value) in v4.iter_mut().zip(these) {
                            if gap {
                                runs.push(end4 as u32, UNCOVERED);
                            }
                            runs.push_clipped(start, start.last(prefix), value, &SPECIAL_V4);
                        }
                        end4 = u64::from(start) + (1u64 << (32 - u32::from(prefix)));
                    }
                    (IpAddr::V6(network_start), prefix) if !ipv4_walk => {
                        // A record holding more than the walked network (the walk stops at a
                        // data node above its prefix) counts only within it.
                        let network_start = u128::from(network_start);
                        let start = network_start.max(*walk_start);
                        let last = network_start.last(prefix).min(*walk_last);
                        let end = end6?;
                        if start < end {
                            continue;
                        }
                        let gap = end != start;
                        for (runs, &value) in v6.iter_mut().zip(these) {
                            if gap {
                                runs.push(end, UNCOVERED);
                            }
                            runs.push_clipped(start, last, value, &SPECIAL_V6);
                        }
                        // None once the last address is reached.
                        end6 = last.checked_add(1);
                    }
                    _ => {}
                }
            }
        }
        for runs in &mut v4 {
            if end4 < 1 << 32 {
                runs.push(end4 as u32, UNCOVERED);
            }
        }
        for runs in &mut v6 {
            if let Some(end) = end6
                && end != 0
            {
                runs.push(end, UNCOVERED);
            }
        }
        let generation = db.generation;
        let tables = v4
            .into_iter()
            .zip(v6)
            .map(|(v4, v6)| Self::finish(v4, v6, ipv6, generation))
            .collect();
        Some(tables)
    }

    /// A table of the walked runs; the 6to4 and Teredo ranges alias IPv4 where the database
    /// leaves them to it.
    fn finish(mut v4: Runs<u32>, mut v6: Runs<u128>, ipv6: bool, generation: u64) -> Self {
        v4.finish();
        v6.finish();
        // An alias is a hole of exactly its size in the IPv6 walk.
        let hole = |start: u128, prefix: u8| v6.lookup(start) == (UNCOVERED, prefix);
        let alias_6to4 = ipv6 && hole(0x2002 << 112, 16);
        let alias_teredo = ipv6 && hole(0x2001_0000 << 96, 32);
        Self {
            v4,
            v6,
            alias_6to4,
            alias_teredo,
            generation,
        }
    }

    /// The value for `ip` and the prefix it holds for; [`UNCOVERED`] where the table has none.
    pub fn lookup(&self, ip: IpAddr) -> (u16, u8) {
        let (value, prefix) = match canonical(ip) {
            IpAddr::V4(v4) => self.v4.lookup(u32::from(v4)),
            IpAddr::V6(v6) => {
                let v6 = u128::from(v6);
                match self.v6.lookup(v6) {
                    (UNCOVERED, _) if self.alias_6to4 && v6 >> 112 == 0x2002 => {
                        let (value, prefix) = self.v4.lookup((v6 >> 80) as u32);
                        (value, prefix + 16)
                    }
                    (UNCOVERED, _) if self.alias_teredo && v6 >> 96 == 0x2001_0000 => {
                        let (value, prefix) = self.v4.lookup((v6 >> 64) as u32);
                        (value, prefix + 32)
                    }
                    found => found,
                }
            }
        };
        match value {
            UNCOVERED => (UNCOVERED, prefix),
            value => (value & !SPECIAL, prefix),
        }
    }

    /// Runs in the table (both families), for logs.
    pub fn runs(&self) -> usize {
        self.v4.starts.len() + self.v6.starts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_merge_and_give_the_widest_scope() {
        let mut runs = Runs::<u32>::new();
        runs.push(0, 1);
        runs.push(0x0a00_0000, 2); // 10.0.0.0
        runs.push(0x0a00_0100, 2); // 10.0.1.0: same value, merged
        runs.push(0x0b00_0000, 3); // 11.0.0.0
        runs.push(0x0c00_0000, 1); // 12.0.0.0
        runs.finish();
        assert_eq!(runs.starts.len(), 4);
        // 10.0.0.0-10.255.255.255 is one run: a client in it gets /8.
        assert_eq!(runs.lookup(0x0a01_0203), (2, 8));
        // 11/8 likewise.
        assert_eq!(runs.lookup(0x0b00_0001), (3, 8));
        // Below 10/8: the widest block that stays below 10.0.0.0 around 9.1.2.3 is 8/7.
        assert_eq!(runs.lookup(0x0901_0203), (1, 7));
        // 0.0.0.1 and 200.1.2.3: the blocks must avoid 10/8 and 11/8 only.
        assert_eq!(runs.lookup(1), (1, 5));
        assert_eq!(runs.lookup(0xc801_0203), (1, 1));
    }

    #[test]
    fn special_space_forms_runs_of_its_own() {
        let mut runs = Runs::<u32>::new();
        runs.push_clipped(0, u32::MAX, 7, &SPECIAL_V4);
        runs.finish();
        // 8.8.8.8: its run is 1.0.0.0-9.255.255.255, so the widest block inside is 8/7.
        assert_eq!(runs.lookup(0x0808_0808), (7, 7));
        // 10/8 answers alike but is a run of its own.
        assert_eq!(runs.lookup(0x0a01_0203), (7 | SPECIAL, 8));
        assert_eq!(runs.lookup(0xffff_ffff), (7 | SPECIAL, 3));
        // Agrees with the ECS rule for the edges of every range.
        for (s, e) in SPECIAL_V4 {
            for ip in [s, e] {
                assert!(!crate::geo::is_global_unicast(
                    std::net::Ipv4Addr::from(ip).into()
                ));
            }
            for ip in [s.wrapping_sub(1), e.wrapping_add(1)] {
                let special = SPECIAL_V4.iter().any(|&(a, b)| (a..=b).contains(&ip));
                assert_eq!(
                    crate::geo::is_global_unicast(std::net::Ipv4Addr::from(ip).into()),
                    !special,
                    "{}",
                    std::net::Ipv4Addr::from(ip)
                );
            }
        }
        let mut runs = Runs::<u128>::new();
        runs.push_clipped(0, u128::MAX, 7, &SPECIAL_V6);
        runs.finish();
        assert_eq!(runs.lookup(0x2a00 << 112), (7, 3));
        assert_eq!(runs.lookup(1), (7 | SPECIAL, 3));
    }

    #[test]
    fn an_empty_run_is_replaced() {
        let mut runs = Runs::<u128>::new();
        runs.push(0, 4);
        runs.finish();
        assert_eq!(runs.starts.len(), 1);
        assert_eq!(runs.lookup(12345), (4, 0));
    }

    /// The bucket index's shortcut gives what a search of every run gives, for random runs
    /// (dense and sparse, so that buckets are covered by one run or cut by several) and
    /// random addresses, bucket edges included.
    #[test]
    fn the_bucket_index_agrees_with_a_search_of_every_run() {
        let mut rng = fastrand::Rng::with_seed(16);
        for density in [1u32 << 8, 1 << 14, 1 << 20, 1 << 26] {
            let mut v4 = Runs::<u32>::new();
            let mut v6 = Runs::<u128>::new();
            let mut at: u64 = 0;
            while at < 1 << 32 {
                let value = rng.u16(0..4);
                v4.push(at as u32, value);
                v6.push((0x2000u128 << 112) | (u128::from(at as u32) << 80), value);
                at += u64::from(rng.u32(1..density)) * 256;
            }
            v4.finish();
            v6.finish();
            let whole = |runs: &Runs<u32>, key| runs.search(key, 0, runs.starts.len());
            for _ in 0..20_000 {
                let key = match rng.u8(0..3) {
                    0 => rng.u32(..) & 0xffff_0000,
                    1 => rng.u32(..) | 0xffff,
                    _ => rng.u32(..),
                };
                assert_eq!(v4.lookup(key), whole(&v4, key), "{key:#x}");
                let key6 = (0x2000u128 << 112) | (u128::from(key) << 80) | u128::from(rng.u64(..));
                let whole6 = v6.search(key6, 0, v6.starts.len());
                assert_eq!(v6.lookup(key6), whole6, "{key6:#x}");
            }
            let shortcut = v4.index.iter().filter(|b| b.scope != MIXED).count();
            assert!(
                density < 1 << 20 || shortcut > 0,
                "dense runs leave whole buckets"
            );
        }
    }
}
