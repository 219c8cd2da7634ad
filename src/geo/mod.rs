//! Where a client is: GeoIP2/GeoLite2 City and Country and DB-IP Lite databases (all MaxMind DB
//! format) read with `maxminddb`, which is named only here. A lookup gives a [`Location`] and the
//! prefix length of the database network that holds the address (the ECS scope).

mod centroids;
pub mod distance;
pub mod table;
mod watch;

pub use watch::watch;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use distance::{chord_km, haversine_km, unit_vector};
pub use table::NetworkTable;

/// Why a database file was refused.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct GeoError {
    pub path: PathBuf,
    pub message: String,
}

/// A short place code kept inline (no allocation per lookup): a continent (`EU`), an ISO
/// country (`DE`) or an ISO subdivision with its country (`US-CA`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Code {
    bytes: [u8; 8],
    len: u8,
}

impl Code {
    /// `None` for codes longer than any ISO code.
    pub fn new(code: &str) -> Option<Self> {
        let mut bytes = [0u8; 8];
        bytes
            .get_mut(..code.len())?
            .copy_from_slice(code.as_bytes());
        Some(Self {
            bytes,
            len: code.len() as u8,
        })
    }

    /// `country-sub`, as ISO 3166-2 writes subdivisions.
    fn subdivision(country: Code, sub: &str) -> Option<Self> {
        let mut code = country;
        let cc = country.len as usize;
        let len = cc + 1 + sub.len();
        code.bytes.get_mut(cc..len)?[0] = b'-';
        code.bytes[cc + 1..len].copy_from_slice(sub.as_bytes());
        code.len = len as u8;
        Some(code)
    }

    pub fn as_str(&self) -> &str {
        // Built only from &str pieces joined by '-': always UTF-8.
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or_default()
    }
}

impl std::ops::Deref for Code {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Debug for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for Code {
    /// For literals; longer strings are cut to 8 bytes.
    fn from(s: &str) -> Self {
        Self::new(&s[..s.len().min(8)]).expect("at most 8 bytes")
    }
}

/// A client's place as the database has it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Location {
    pub latitude: f64,
    pub longitude: f64,
    /// Continent code: AF AN AS EU NA OC SA.
    pub continent: Option<Code>,
    /// ISO 3166-1 alpha-2 country code.
    pub country: Option<Code>,
    /// ISO 3166-2 subdivision code, as `US-CA` (only where the database has one).
    pub subdivision: Option<Code>,
    /// True when the point is the country's centroid (country-level database or record).
    pub centroid: bool,
}

/// The answer of one lookup: a location (if any) and the network it holds for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Located {
    pub location: Option<Location>,
    /// Prefix length of the database network holding the address; 0 when unknown.
    pub prefix: u8,
    /// The record it came from, as (database generation, data offset): the same for every
    /// network that shares it, so a cache key for anything derived from the location.
    pub record: Option<(u64, usize)>,
}

/// An open database.
pub struct GeoDb {
    reader: maxminddb::Reader<memmap2::Mmap>,
    /// Where the reader's map is (start address, length), to give its pages back.
    mapped: (usize, usize),
    path: PathBuf,
    /// Tells this database's cache entries from those of one loaded before it.
    generation: u64,
}

/// Every database opened gets the next generation.
static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Records decoded so far, per query thread, keyed by (database generation, data offset): many
/// networks share one record, and decoding one walks names in ten languages. Bounded: cleared
/// when full. Per thread, so the query path takes no lock.
const CACHE_ENTRIES: usize = 1 << 16;
thread_local! {
    static DECODED: std::cell::RefCell<rustc_hash::FxHashMap<(u64, usize), Option<Location>>> =
        std::cell::RefCell::new(rustc_hash::FxHashMap::default());
}

impl std::fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoDb").field("path", &self.path).finish()
    }
}

/// The fields we read of a record; everything else is skipped.
#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow)]
    continent: Option<RawCode<'a>>,
    #[serde(borrow)]
    country: Option<RawCode<'a>>,
    #[serde(borrow)]
    subdivisions: Option<FirstCode<'a>>,
    location: Option<Coordinates>,
}

#[derive(Deserialize)]
struct RawCode<'a> {
    code: Option<&'a str>,
    iso_code: Option<&'a str>,
}

/// The first subdivision's `iso_code`, read without collecting the list.
struct FirstCode<'a>(Option<&'a str>);

impl<'de: 'a, 'a> Deserialize<'de> for FirstCode<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = FirstCode<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of subdivisions")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let first: Option<RawCode<'de>> = seq.next_element()?;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(FirstCode(first.and_then(|c| c.iso_code)))
            }
        }
        d.deserialize_seq(Visit(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
struct Coordinates {
    latitude: Option<f64>,
    longitude: Option<f64>,
}

impl GeoDb {
    /// Opens and checks a database file. A file that is not a readable MaxMind DB is refused.
    pub fn open(path: &Path) -> Result<Self, GeoError> {
        let error = |message: String| GeoError {
            path: path.to_owned(),
            message,
        };
        let bytes = private_map(path).map_err(|e| error(format!("cannot read: {e}")))?;
        let mapped = (bytes.as_ptr() as usize, bytes.len());
        let reader = maxminddb::Reader::from_source(bytes)
            .map_err(|e| error(format!("not a MaxMind DB: {e}")))?;
        // Walk a few lookups through the tree so a file cut short is caught now, not per query.
        for probe in ["1.1.1.1", "8.8.8.8", "2001:db8::1"] {
            let ip: IpAddr = probe.parse().expect("literal");
            if let Ok(found) = reader.lookup(ip)
                && found.has_data()
            {
                found
                    .decode::<Record<'_>>()
                    .map_err(|e| error(format!("corrupt data: {e}")))?;
            }
        }
        Ok(Self {
            reader,
            mapped,
            path: path.to_owned(),
            generation: GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        })
    }

    /// Tells this database from every other opened in this process.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Drops the database pages this process has read (after a steering table walked all of
    /// them): they are read back from the private copy if a lookup needs them again, and
    /// meanwhile do not count towards the server's RSS.
    pub fn release_pages(&self) {
        let (start, len) = self.mapped;
        // SAFETY: the range is exactly the reader's live read-only mapping (shared, as
        // memmap2 maps read-only files) of our copy of the database, an unlinked file whose
        // only descriptor is ours and that nothing writes after the copy (see `private_map`):
        // pages faulted back in hold the same bytes.
        unsafe { crate::sys::drop_file_pages(start, len) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `database_type` and build date, for logs and `explain`.
    /// When the database was built (Unix seconds), from its metadata.
    pub fn build_epoch(&self) -> u64 {
        self.reader.metadata().build_epoch
    }

    pub fn describe(&self) -> String {
        let meta = self.reader.metadata();
        format!(
            "{} built {} (epoch {})",
            meta.database_type,
            crate::civil::date(meta.build_epoch),
            meta.build_epoch
        )
    }

    /// Locates `ip` (IPv4-mapped IPv6 addresses are looked up as IPv4).
    pub fn locate(&self, ip: IpAddr) -> Located {
        let ip = canonical(ip);
        let Ok(found) = self.reader.lookup(ip) else {
            return Located {
                location: None,
                prefix: 0,
                record: None,
            };
        };
        let prefix = found.network().map(|n| n.prefix()).unwrap_or(0);
        let decode = || match found.decode::<Record<'_>>() {
            Ok(Some(record)) => to_location(record),
            _ => None,
        };
        let location = match found.offset() {
            Some(offset) => DECODED.with(|cache| {
                let mut cache = cache.borrow_mut();
                if let Some(hit) = cache.get(&(self.generation, offset)) {
                    return *hit;
                }
                if cache.len() >= CACHE_ENTRIES {
                    cache.clear();
                }
                let location = decode();
                cache.insert((self.generation, offset), location);
                location
            }),
            None => None,
        };
        Located {
            location,
            prefix,
            record: found.offset().map(|offset| (self.generation, offset)),
        }
    }
}

/// Maps a private copy of the file: copied to an unlinked temp file that nobody else can
/// reach, so an operator overwriting the database in place can never change or truncate the
/// pages we read (which a plain mmap would turn into wrong answers or SIGBUS). Only the pages
/// lookups touch count towards RSS, unlike reading 100 MB into the heap.
fn private_map(path: &Path) -> std::io::Result<memmap2::Mmap> {
    let mut source = std::fs::File::open(path)?;
    let copy_path = std::env::temp_dir().join(format!(
        ".meridian-geoip-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let mut copy = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&copy_path)?;
    let copied = std::io::copy(&mut source, &mut copy);
    let _ = std::fs::remove_file(&copy_path);
    copied?;
    // SAFETY: the file is unlinked and its only descriptor is ours; nothing else can write to
    // or truncate it while the map lives.
    unsafe { memmap2::Mmap::map(&copy) }
}

fn to_location(record: Record<'_>) -> Option<Location> {
    let continent = record.continent.and_then(|c| c.code).and_then(Code::new);
    let country = record.country.and_then(|c| c.iso_code).and_then(Code::new);
    let subdivision = match (country, record.subdivisions.and_then(|s| s.0)) {
        (Some(cc), Some(sub)) => Code::subdivision(cc, sub),
        _ => None,
    };
    let coordinates = record
        .location
        .and_then(|l| Some((l.latitude?, l.longitude?)));
    let (latitude, longitude, centroid) = match coordinates {
        Some((lat, lon)) => (lat, lon, false),
        None => {
            let (lat, lon) = centroids::country(country?.as_str())?;
            (lat, lon, true)
        }
    };
    Some(Location {
        latitude,
        longitude,
        continent,
        country,
        subdivision,
        centroid,
    })
}

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`) is the IPv4 client it stands for.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

/// Public unicast space: not private, loopback, link-local, multicast, shared (CGNAT),
/// reserved or unspecified.
pub fn is_global_unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_unspecified()
                || v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || o[0] == 0
                || o[0] >= 240
                || (o[0] == 100 && (o[1] & 0xc0) == 64))
        }
        // 2000::/3 is the global unicast block (RFC 4291 §2.4).
        IpAddr::V6(v6) => (v6.segments()[0] & 0xe000) == 0x2000,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_addresses_are_ipv4() {
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(canonical(mapped), "192.0.2.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn garbage_files_are_refused() {
        let path =
            std::env::temp_dir().join(format!("meridian-garbage-{}.mmdb", std::process::id()));
        std::fs::write(&path, b"this is not a database").unwrap();
        let err = GeoDb::open(&path).unwrap_err();
        assert!(err.to_string().contains("not a MaxMind DB"), "{err}");
        let _ = std::fs::remove_file(&path);
    }
}
