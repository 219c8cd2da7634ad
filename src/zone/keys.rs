//! A signed zone's keys as records at its apex: DNSKEY, and CDS and CDNSKEY (RFC 7344) for a
//! parent that follows them. A key that cannot be read — missing, readable by others, not a
//! key — refuses the zone, so a server never starts signing without its keys.

use std::path::Path;

use hickory_proto::rr::rdata::NULL;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::spec::DnssecSpec;
use crate::dnssec::{self, FLAGS_CSK, SigningKey};

/// The keys `spec` names (files relative to `dir`) and their apex records.
pub fn records(
    dir: &Path,
    origin: &Name,
    ttl: u32,
    spec: &DnssecSpec,
) -> Result<(Vec<SigningKey>, Vec<Record>), String> {
    if spec.keys.is_empty() {
        return Err("name at least one key file (meridian keygen makes one)".into());
    }
    let mut out = Vec::new();
    let mut keys = Vec::new();
    for file in &spec.keys {
        let key = SigningKey::load(&dir.join(file), FLAGS_CSK)?;
        let dnskey = key.dnskey();
        let ds = dnssec::ds(origin, &dnskey);
        for (rtype, rdata) in [
            (RecordType::DNSKEY, dnskey.clone()),
            (RecordType::CDNSKEY, dnskey),
            (RecordType::CDS, ds),
        ] {
            let data = RData::Unknown {
                code: rtype,
                rdata: NULL::with(rdata),
            };
            out.push(Record::from_rdata(origin.clone(), ttl, data));
        }
        keys.push(key);
    }
    Ok((keys, out))
}
