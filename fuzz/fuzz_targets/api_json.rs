//! The API's JSON bodies (a pool, a record set, an endpoint patch, a whole zone), applied to a
//! zone document as the API applies them and the result built as a change is validated: any
//! error is a refusal, never a panic. An edit applied both to the zone model (what is served)
//! and to the document (what a compaction writes) must give the same zone.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meridian::fixture::ZONE_HEAD;
use meridian::store::change::{self, Edit, ZoneEdit};
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
    let address = "192.0.2.10".parse().unwrap();
    let edit = match kind % 4 {
        0 => serde_json::from_slice(body).ok().map(|pool| Edit::SetPool {
            name: "www".into(),
            pool,
        }),
        1 => serde_json::from_slice(body).ok().map(Edit::SetRecords),
        2 => serde_json::from_slice(body).ok().map(|patch| Edit::PatchEndpoint {
            pool: "www".into(),
            address,
            patch,
        }),
        _ => None,
    };
    if let Some(edit) = edit {
        same_both_ways(&origin, &base, edit);
    }
});

/// The edit applied to the model and to the document: where both take it, the same zone.
fn same_both_ways(origin: &Name, base: &str, edit: Edit) {
    let (Ok(mut doc), Ok(mut spec)) = (edit::parse(base), toml::from_str::<ZoneSpec>(base)) else {
        return;
    };
    let change = ZoneEdit { edit, serial: Some(2) };
    if change.apply_to_document(&mut doc, origin).is_err()
        || change::apply_to_spec(&mut spec, origin, &change.edit).is_err()
    {
        return;
    }
    spec.soa.as_mut().unwrap().serial = 2;
    let Ok(written) = toml::from_str::<ZoneSpec>(&doc.to_string()) else {
        return;
    };
    assert_eq!(
        serde_json::to_value(&written).unwrap(),
        serde_json::to_value(&spec).unwrap(),
        "the model and the written document differ"
    );
}
