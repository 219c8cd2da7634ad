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
}
