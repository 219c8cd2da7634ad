//! The record types Meridian reads and writes, each as the list of fields its RDATA is made of
//! (the types Knot 3.2 loads from a master file), and their mnemonics both ways; any other type
//! is `TYPEnnn` with RFC 3597's generic data.

use super::rdata::Field::{self, *};

/// A type's code, mnemonic and fields.
pub struct TypeInfo {
    pub code: u16,
    pub name: &'static str,
    pub fields: &'static [Field],
}

macro_rules! types {
    ($(($code:expr, $name:expr, [$($field:expr),*])),* $(,)?) => {
        &[$(TypeInfo { code: $code, name: $name, fields: &[$($field),*] }),*]
    };
}

/// Every type with a known presentation form.
pub const TYPES: &[TypeInfo] = types![
    (1, "A", [V4]),
    (2, "NS", [Name]),
    (5, "CNAME", [Name]),
    (6, "SOA", [Name, Name, U32, Period, Period, Period, Period]),
    (12, "PTR", [Name]),
    (13, "HINFO", [Str, Str]),
    (14, "MINFO", [Name, Name]),
    (15, "MX", [U16, Name]),
    (16, "TXT", [Strs]),
    (17, "RP", [Name, Name]),
    (18, "AFSDB", [U16, Name]),
    (21, "RT", [U16, Name]),
    (25, "KEY", [U16, U8, Alg, Base64]),
    (28, "AAAA", [V6]),
    (29, "LOC", [Loc]),
    (33, "SRV", [U16, U16, U16, Name]),
    (35, "NAPTR", [U16, U16, Str, Str, Str, Name]),
    (36, "KX", [U16, Name]),
    (37, "CERT", [CertType, U16, Alg, Base64]),
    (39, "DNAME", [Name]),
    (42, "APL", [Apl]),
    (43, "DS", [U16, Alg, U8, Hex]),
    (44, "SSHFP", [U8, U8, Hex]),
    (45, "IPSECKEY", [Ipseckey]),
    (
        46,
        "RRSIG",
        [Type, Alg, U8, Period, Time, Time, U16, Name, Base64]
    ),
    (47, "NSEC", [Name, Bitmap]),
    (48, "DNSKEY", [U16, U8, Alg, Base64]),
    (49, "DHCID", [Base64]),
    (50, "NSEC3", [U8, U8, U16, Salt, Hash, Bitmap]),
    (51, "NSEC3PARAM", [U8, U8, U16, Salt]),
    (52, "TLSA", [U8, U8, U8, Hex]),
    (53, "SMIMEA", [U8, U8, U8, Hex]),
    (59, "CDS", [U16, Alg, U8, Hex]),
    (60, "CDNSKEY", [U16, U8, Alg, Base64]),
    (61, "OPENPGPKEY", [Base64]),
    (62, "CSYNC", [U32, U16, Bitmap]),
    (63, "ZONEMD", [U32, U8, U8, Hex]),
    (64, "SVCB", [U16, Name, Svcb]),
    (65, "HTTPS", [U16, Name, Svcb]),
    (99, "SPF", [Strs]),
    (104, "NID", [U16, L64]),
    (105, "L32", [U16, V4]),
    (106, "L64", [U16, L64]),
    (107, "LP", [U16, Name]),
    (108, "EUI48", [Eui48]),
    (109, "EUI64", [Eui64]),
    (256, "URI", [U16, U16, Rest]),
    (257, "CAA", [U8, Tag, Rest]),
];

/// Types that are only ever in a question or made by the protocol, never zone data.
const META: &[(u16, &str)] = &[
    (41, "OPT"),
    (128, "NXNAME"),
    (249, "TKEY"),
    (250, "TSIG"),
    (251, "IXFR"),
    (252, "AXFR"),
    (253, "MAILB"),
    (254, "MAILA"),
    (255, "ANY"),
];

/// The type `code`, if its presentation form is known.
pub fn info(code: u16) -> Option<&'static TypeInfo> {
    TYPES.iter().find(|t| t.code == code)
}

/// Whether `code` can never be zone data (a question-only or protocol type).
pub fn is_meta(code: u16) -> bool {
    META.iter().any(|(c, _)| *c == code)
}

/// The type a mnemonic or `TYPEnnn` names.
pub fn code(text: &str) -> Option<u16> {
    let known = TYPES
        .iter()
        .map(|t| (t.code, t.name))
        .chain(META.iter().copied())
        .find(|(_, name)| name.eq_ignore_ascii_case(text));
    if let Some((code, _)) = known {
        return Some(code);
    }
    let digits = text
        .get(..4)
        .filter(|p| p.eq_ignore_ascii_case("TYPE"))
        .map(|_| &text[4..])?;
    match digits.bytes().all(|b| b.is_ascii_digit()) && !digits.is_empty() {
        true => digits.parse().ok(),
        false => None,
    }
}

/// `code`'s mnemonic, or `TYPEnnn`.
pub fn name(code: u16) -> String {
    TYPES
        .iter()
        .map(|t| (t.code, t.name))
        .chain(META.iter().copied())
        .find(|(c, _)| *c == code)
        .map_or_else(|| format!("TYPE{code}"), |(_, name)| name.to_owned())
}

/// Types whose names in RDATA are written in lower case in DNSSEC's canonical form (RFC 4034
/// §6.2, less NSEC as RFC 6840 §5.1 says).
pub fn lower_in_canonical_form(code: u16) -> bool {
    matches!(
        code,
        2 | 5 | 6 | 12 | 14 | 15 | 17 | 18 | 21 | 33 | 35 | 36 | 39 | 46
    )
}

/// DNSSEC algorithm mnemonics (RFC 8624, IANA).
pub const ALGORITHMS: &[(u8, &str)] = &[
    (1, "RSAMD5"),
    (2, "DH"),
    (3, "DSA"),
    (5, "RSASHA1"),
    (6, "DSA-NSEC3-SHA1"),
    (7, "RSASHA1-NSEC3-SHA1"),
    (8, "RSASHA256"),
    (10, "RSASHA512"),
    (12, "ECC-GOST"),
    (13, "ECDSAP256SHA256"),
    (14, "ECDSAP384SHA384"),
    (15, "ED25519"),
    (16, "ED448"),
    (252, "INDIRECT"),
    (253, "PRIVATEDNS"),
    (254, "PRIVATEOID"),
];

/// CERT type mnemonics (RFC 4398 §2.1).
pub const CERT_TYPES: &[(u16, &str)] = &[
    (1, "PKIX"),
    (2, "SPKI"),
    (3, "PGP"),
    (4, "IPKIX"),
    (5, "ISPKI"),
    (6, "IPGP"),
    (7, "ACPKIX"),
    (8, "IACPKIX"),
    (253, "URI"),
    (254, "OID"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mnemonics_both_ways() {
        assert_eq!(code("txt"), Some(16));
        assert_eq!(code("TYPE65280"), Some(65280));
        assert_eq!(code("type16"), Some(16));
        assert_eq!(code("TYPE"), None);
        assert_eq!(code("TYPE70000"), None);
        assert_eq!(code("BOGUS"), None);
        assert_eq!(name(65280), "TYPE65280");
        assert_eq!(name(257), "CAA");
        let mut codes: Vec<u16> = TYPES.iter().map(|t| t.code).collect();
        codes.dedup();
        assert_eq!(codes.len(), TYPES.len());
    }
}
