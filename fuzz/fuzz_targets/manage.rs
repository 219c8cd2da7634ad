//! TSIG and zone transfers on arbitrary bytes: finding and reading a TSIG record, checking it
//! against a key, signing the reply (good or error), and a transfer's answer to whatever
//! hickory decodes. Nothing may panic; a signed reply must still decode.
#![no_main]

use std::sync::LazyLock;

use hickory_proto::op::Message;
use libfuzzer_sys::fuzz_target;
use meridian::config::{TsigAlgorithm, TsigConfig, TsigOperation};
use meridian::dns::history::History;
use meridian::dns::{transfer, tsig};
use meridian::zone::Name;

static KEYS: LazyLock<Vec<tsig::Key>> = LazyLock::new(|| {
    [TsigAlgorithm::HmacSha256, TsigAlgorithm::HmacSha512]
        .into_iter()
        .map(|algorithm| {
            tsig::Key::new(&TsigConfig {
                name: Name::from_ascii("acme.").unwrap(),
                algorithm,
                secret: b"secret-secret-secret-secret-32b!".to_vec(),
                zones: None,
                operations: vec![TsigOperation::Transfer],
            })
        })
        .collect()
});

static ZONES: LazyLock<meridian::zone::ZoneSet> = LazyLock::new(|| {
    let text = format!(
        "{}[pools.p]\nendpoints = [\"192.0.2.1\", \"2001:db8::1\"]\n",
        meridian::fixture::ZONE_HEAD
    );
    meridian::fixture::zone_set(&[("t.", &text)])
});

fuzz_target!(|data: &[u8]| {
    match tsig::verify(data, &KEYS, 1_800_000_000) {
        tsig::Verdict::Good(mut signer) => {
            let mut reply = data.to_vec();
            signer.sign(&mut reply, 1_800_000_000, 0);
        }
        tsig::Verdict::Bad { error, record, signer } => {
            let mut reply = vec![0u8; 12];
            match signer {
                Some(mut signer) => signer.sign(&mut reply, 1_800_000_000, error),
                None => tsig::append_error(&mut reply, &record, error),
            }
            assert!(Message::from_vec(&reply).is_ok(), "an error reply decodes");
        }
        tsig::Verdict::Unsigned | tsig::Verdict::Malformed => {}
    }
    if let Ok(request) = Message::from_vec(data) {
        let zone = ZONES.iter().next().unwrap();
        let history = History::default();
        for message in transfer::answer(&request, zone, &history) {
            let _ = message.to_vec();
        }
    }
});
