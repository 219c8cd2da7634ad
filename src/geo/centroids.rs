//! Country centroids for databases (or records) that locate a client only to its country:
//! `geoip/country-centroids.csv`, made by `geoip/make_centroids.py`.

use std::collections::HashMap;
use std::sync::LazyLock;

static TABLE: LazyLock<HashMap<String, (f64, f64)>> = LazyLock::new(|| {
    include_str!("../../geoip/country-centroids.csv")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let mut parts = l.split(',');
            let cc = parts.next()?.trim().to_owned();
            let lat = parts.next()?.trim().parse().ok()?;
            let lon = parts.next()?.trim().parse().ok()?;
            Some((cc, (lat, lon)))
        })
        .collect()
});

/// (latitude, longitude) of a country by ISO 3166-1 alpha-2 code.
pub fn country(code: &str) -> Option<(f64, f64)> {
    TABLE.get(code).copied()
}

#[cfg(test)]
mod tests {
    #[test]
    fn table_covers_the_big_ones() {
        for cc in ["US", "DE", "GB", "JP", "SG", "BR", "IN", "AU", "ZA", "CN"] {
            assert!(super::country(cc).is_some(), "{cc}");
        }
        let (lat, lon) = super::country("JP").unwrap();
        assert!((30.0..40.0).contains(&lat) && (130.0..145.0).contains(&lon));
    }
}
