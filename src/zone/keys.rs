//! A signed zone's keys as records at its apex: DNSKEY, and CDS and CDNSKEY (RFC 7344) for a
//! parent that follows them. Keys are combined (sign everything), KSKs (the DNSKEY set), ZSKs
//! (the rest), or published only (a rollover's next key). A key that cannot be read — missing, readable by others, not a
//! key — refuses the zone, so a server never starts signing without its keys.

use std::path::Path;

use hickory_proto::rr::rdata::NULL;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::spec::DnssecSpec;
use crate::dnssec::{self, FLAGS_CSK, FLAGS_ZSK, REFRESH, Role, SigningKey, Timing, ZoneKeys};

/// The keys `spec` names (files relative to `dir`), each with its role, and their apex
/// records: every key's DNSKEY, and CDS and CDNSKEY of the entry points (combined keys, KSKs).
pub fn records(
    dir: &Path,
    origin: &Name,
    ttl: u32,
    spec: &DnssecSpec,
) -> Result<(ZoneKeys, Vec<Record>), String> {
    let signs_data = !spec.keys.is_empty() || !spec.zsk.is_empty();
    let signs_keys = !spec.keys.is_empty() || !spec.ksk.is_empty();
    if !(signs_data && signs_keys) {
        return Err(
            "name a combined key (keys), or a KSK (ksk) and a ZSK (zsk); \
                    meridian keygen makes them"
                .into(),
        );
    }
    let roles = [
        (&spec.keys, Role::Combined),
        (&spec.ksk, Role::KeySigning),
        (&spec.zsk, Role::ZoneSigning),
        (&spec.publish, Role::Published),
    ];
    let mut out = Vec::new();
    let mut keys = Vec::new();
    for (files, role) in roles {
        for file in files {
            let flags = match role {
                Role::Combined | Role::KeySigning => FLAGS_CSK,
                Role::ZoneSigning | Role::Published => FLAGS_ZSK,
            };
            let key = SigningKey::load(&dir.join(file), flags)?;
            let dnskey = key.dnskey();
            let mut records = vec![(RecordType::DNSKEY, dnskey.clone())];
            if flags == FLAGS_CSK {
                records.push((RecordType::CDS, dnssec::ds(origin, &dnskey)));
                records.push((RecordType::CDNSKEY, dnskey));
            }
            for (rtype, rdata) in records {
                let data = RData::Unknown {
                    code: rtype,
                    rdata: NULL::with(rdata),
                };
                out.push(Record::from_rdata(origin.clone(), ttl, data));
            }
            keys.push((key, role));
        }
    }
    warn_unmatched_ds(origin, &keys, &spec.parent_ds);
    Ok((keys, out))
}

/// The signatures' validity `spec` asks for: valid for at least three refreshes (so that a
/// resolver's copy never expires before a fresh one is served), at most 90 days; an inception
/// at most a day back.
pub fn timing(spec: &DnssecSpec) -> Result<Timing, String> {
    let default = Timing::default();
    let validity = spec.validity_secs.unwrap_or(default.validity);
    let inception_back = spec.inception_back_secs.unwrap_or(default.inception_back);
    if !(3 * REFRESH..=90 * 86_400).contains(&validity) {
        return Err(format!(
            "validity_secs = {validity}: give between {} (three hours: signatures are remade \
             hourly) and {} (90 days)",
            3 * REFRESH,
            90 * 86_400
        ));
    }
    if inception_back > 86_400 {
        return Err(format!(
            "inception_back_secs = {inception_back}: at most 86400 (a day)"
        ));
    }
    Ok(Timing {
        validity,
        inception_back,
    })
}

/// Warns when `parent_ds` is given and none of its DS records matches an entry point of `keys`:
/// the chain of trust from the parent would be broken.
fn warn_unmatched_ds(origin: &Name, keys: &ZoneKeys, parent_ds: &[String]) {
    if parent_ds.is_empty() {
        return;
    }
    let normal = |ds: &str| {
        ds.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_uppercase()
    };
    let ours: Vec<String> = keys
        .iter()
        .filter(|(k, _)| k.flags == FLAGS_CSK)
        .map(|(k, _)| {
            let line = dnssec::ds_line(origin, &k.dnskey());
            normal(line.split(" DS ").nth(1).unwrap_or_default())
        })
        .collect();
    if !parent_ds.iter().any(|ds| ours.contains(&normal(ds))) {
        tracing::warn!(
            "{origin}: no DS in dnssec.parent_ds matches a KSK or combined key ({}): validating \
             resolvers will fail this zone",
            ours.join("; ")
        );
    }
}
