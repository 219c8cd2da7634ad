//! Zone files as operators write them: the first byte picks a TOML zone (parsed and built as
//! the loader does) or an RFC 1035 master file (loaded from a zones folder); any error is a
//! refusal, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meridian::zone::spec::ZoneSpec;
use meridian::zone::{Name, build_zone, load_dir};

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match kind % 2 {
        0 => {
            let origin = Name::from_ascii("example.test.").unwrap();
            if let Ok(spec) = toml::from_str::<ZoneSpec>(text) {
                let _ = build_zone(&origin, &spec, None);
            }
        }
        _ => {
            let dir = std::env::temp_dir().join(format!("meridian-fuzz-{}", std::process::id()));
            let _ = std::fs::create_dir_all(&dir);
            if std::fs::write(dir.join("example.test.zone"), text).is_ok() {
                let _ = load_dir(&dir);
            }
        }
    }
});
