//! The API's JSON bodies (a pool, a record set, an endpoint patch, a whole zone), applied to a
//! zone document as the API applies them and the result built as a change is validated: any
//! error is a refusal, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meridian::fixture::ZONE_HEAD;
use meridian::store::edit::{self, EndpointPatch};
use meridian::zone::spec::{PoolSpec, RecordSpec, ZoneSpec};
use meridian::zone::{Name, build_zone};

fuzz_target!(|data: &[u8]| {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let origin = Name::from_ascii("example.test.").unwrap();
    let base = format!("{ZONE_HEAD}[pools.www]\nendpoints = [\"192.0.2.10\"]\n");
    let Ok(mut doc) = edit::parse(&base) else {
        return;
    };
    let applied = match kind % 4 {
        0 => serde_json::from_slice::<PoolSpec>(body)
            .ok()
            .map(|pool| edit::set_pool(&mut doc, &origin, "www", &pool)),
        1 => serde_json::from_slice::<RecordSpec>(body)
            .ok()
            .map(|records| edit::set_records(&mut doc, &origin, &records)),
        2 => serde_json::from_slice::<EndpointPatch>(body)
            .ok()
            .map(|patch| {
                let address = "192.0.2.10".parse().unwrap();
                edit::patch_endpoint(&mut doc, &origin, "www", address, &patch)
            }),
        _ => serde_json::from_slice::<ZoneSpec>(body).ok().map(|zone| {
            let _ = build_zone(&origin, &zone, None);
            Ok(())
        }),
    };
    if let Some(Ok(())) = applied {
        edit::bump_serial(&mut doc, Some(1));
        if let Ok(spec) = toml::from_str::<ZoneSpec>(&doc.to_string()) {
            let _ = build_zone(&origin, &spec, None);
        }
    }
});
