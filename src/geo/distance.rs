//! Great-circle distance between two points on the Earth.

/// Mean Earth radius (IUGG), km.
const EARTH_RADIUS_KM: f64 = 6371.0088;

/// Haversine distance in km between (lat, lon) points given in degrees.
pub fn haversine_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (lat1, lon1) = (a.0.to_radians(), a.1.to_radians());
    let (lat2, lon2) = (b.0.to_radians(), b.1.to_radians());
    let h = ((lat2 - lat1) / 2.0).sin().powi(2)
        + lat1.cos() * lat2.cos() * ((lon2 - lon1) / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

/// The point at (lat, lon) degrees on the unit sphere.
pub fn unit_vector(lat: f64, lon: f64) -> [f64; 3] {
    let (lat, lon) = (lat.to_radians(), lon.to_radians());
    [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()]
}

/// Great-circle distance in km between two unit vectors: the haversine of the angle is the
/// squared half chord, so this is the same distance as [`haversine_km`] with one `asin` and no
/// other trigonometry (the query path ranks datacenters with it, vectors precomputed).
pub fn chord_km(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    let squared: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    2.0 * EARTH_RADIUS_KM * (squared.sqrt() / 2.0).min(1.0).asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_distances() {
        let ashburn = (39.04, -77.49);
        let frankfurt = (50.11, 8.68);
        let singapore = (1.35, 103.82);
        let d = haversine_km(ashburn, frankfurt);
        assert!((6500.0..6600.0).contains(&d), "{d}");
        let d = haversine_km(frankfurt, singapore);
        assert!((10_200.0..10_300.0).contains(&d), "{d}");
        assert_eq!(haversine_km(ashburn, ashburn), 0.0);
        // Antipodes: half the circumference.
        let d = haversine_km((0.0, 0.0), (0.0, 180.0));
        assert!((d - std::f64::consts::PI * EARTH_RADIUS_KM).abs() < 1e-6);
    }

    #[test]
    fn chords_give_haversine_distances() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..10_000 {
            let a = (rng.f64() * 180.0 - 90.0, rng.f64() * 360.0 - 180.0);
            let b = (rng.f64() * 180.0 - 90.0, rng.f64() * 360.0 - 180.0);
            let chord = chord_km(&unit_vector(a.0, a.1), &unit_vector(b.0, b.1));
            let haversine = haversine_km(a, b);
            assert!(
                (chord - haversine).abs() < 1e-6,
                "{a:?} {b:?}: {chord} {haversine}"
            );
        }
    }
}
