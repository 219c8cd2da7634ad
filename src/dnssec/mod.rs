//! The keys of DNS security, the one module that names ring: DNSSEC keys (RFC 4034) — a zone's
//! signing key made and kept as PKCS#8 (PEM), its DNSKEY record data, key tag and the DS record
//! for the parent (SHA-256, RFC 4509), ECDSA P-256 with SHA-256 (algorithm 13) and Ed25519
//! (algorithm 15), signatures cached per zone — and TSIG's HMAC keys. A leaf: the signing of
//! answers (`dns::sign`) and TSIG (`dns::tsig`) build on it.

use std::path::Path;

use hickory_proto::rr::Name;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair};

mod signer;
pub use signer::{NSEC, NXNAME, REFRESH, RRSIG, Rrsigs, Timing, ZoneSigner, compact_nsec};

/// A TSIG key (RFC 8945): HMAC-SHA256, -SHA384 or -SHA512 over a shared secret.
#[derive(Debug)]
pub struct HmacKey(ring::hmac::Key);

impl HmacKey {
    pub fn new(algorithm: crate::config::TsigAlgorithm, secret: &[u8]) -> Self {
        use crate::config::TsigAlgorithm;
        let algorithm = match algorithm {
            TsigAlgorithm::HmacSha256 => ring::hmac::HMAC_SHA256,
            TsigAlgorithm::HmacSha384 => ring::hmac::HMAC_SHA384,
            TsigAlgorithm::HmacSha512 => ring::hmac::HMAC_SHA512,
        };
        Self(ring::hmac::Key::new(algorithm, secret))
    }

    /// The MAC of `data`.
    pub fn sign(&self, data: &[u8]) -> Vec<u8> {
        ring::hmac::sign(&self.0, data).as_ref().to_vec()
    }
}

/// A DNSSEC algorithm we sign with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    EcdsaP256Sha256,
    Ed25519,
}

impl Algorithm {
    /// Its number (RFC 8624).
    pub fn number(self) -> u8 {
        match self {
            Self::EcdsaP256Sha256 => 13,
            Self::Ed25519 => 15,
        }
    }

    pub fn parse(name: &str) -> Result<Self, String> {
        match name.to_ascii_lowercase().as_str() {
            "ecdsap256sha256" | "13" => Ok(Self::EcdsaP256Sha256),
            "ed25519" | "15" => Ok(Self::Ed25519),
            other => Err(format!(
                "{other}: the algorithms are ecdsap256sha256 and ed25519"
            )),
        }
    }
}

/// DNSKEY flags of a secure entry point (a KSK, or a combined signing key).
pub const FLAGS_CSK: u16 = 257;
/// DNSKEY flags of a zone-signing key.
pub const FLAGS_ZSK: u16 = 256;

/// A zone's keys, each with its role.
pub type ZoneKeys = Vec<(SigningKey, Role)>;

/// What a zone's key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Signs every RRset.
    Combined,
    /// Signs the DNSKEY, CDS and CDNSKEY sets.
    KeySigning,
    /// Signs every other RRset.
    ZoneSigning,
    /// In the DNSKEY set, signing nothing (pre-published).
    Published,
}

impl Role {
    /// Whether a key of this role signs RRsets of `rtype`.
    fn signs(self, rtype: u16) -> bool {
        let key_set = matches!(rtype, 48 | 59 | 60);
        match self {
            Self::Combined => true,
            Self::KeySigning => key_set,
            Self::ZoneSigning => !key_set,
            Self::Published => false,
        }
    }
}

/// A signing key.
#[derive(Debug)]
pub struct SigningKey {
    pub algorithm: Algorithm,
    pair: Pair,
    pub flags: u16,
}

#[derive(Debug)]
enum Pair {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

const PEM_LABEL: &str = "PRIVATE KEY";

impl SigningKey {
    /// A new key's PKCS#8 document.
    pub fn generate(algorithm: Algorithm) -> Result<Vec<u8>, String> {
        let rng = SystemRandom::new();
        let document = match algorithm {
            Algorithm::EcdsaP256Sha256 => {
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            }
            Algorithm::Ed25519 => Ed25519KeyPair::generate_pkcs8(&rng),
        };
        document
            .map(|d| d.as_ref().to_vec())
            .map_err(|_| "cannot generate a key".to_owned())
    }

    /// The key in a PKCS#8 document (its algorithm read from it).
    pub fn from_pkcs8(der: &[u8], flags: u16) -> Result<Self, String> {
        let rng = SystemRandom::new();
        if let Ok(pair) =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
        {
            let pair = Pair::Ecdsa(pair);
            let algorithm = Algorithm::EcdsaP256Sha256;
            return Ok(Self {
                algorithm,
                pair,
                flags,
            });
        }
        match Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            Ok(pair) => Ok(Self {
                algorithm: Algorithm::Ed25519,
                pair: Pair::Ed25519(pair),
                flags,
            }),
            Err(_) => Err("not a PKCS#8 ECDSA P-256 or Ed25519 private key".into()),
        }
    }

    /// Reads a key file: PEM (`PRIVATE KEY`), readable by its owner only.
    pub fn load(path: &Path, flags: u16) -> Result<Self, String> {
        let at = path.display();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map_err(|e| format!("{at}: {e}"))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(format!(
                    "{at}: readable by others (mode {:o}): chmod 600 it",
                    mode & 0o777
                ));
            }
        }
        let text = std::fs::read_to_string(path).map_err(|e| format!("{at}: {e}"))?;
        let der = from_pem(&text).ok_or_else(|| format!("{at}: not a PEM private key"))?;
        Self::from_pkcs8(&der, flags).map_err(|e| format!("{at}: {e}"))
    }

    /// Its public key as DNSKEY carries it (RFC 6605 §4: ECDSA's X and Y; RFC 8080: Ed25519's
    /// 32 bytes).
    pub fn public_key(&self) -> Vec<u8> {
        match &self.pair {
            // ring gives the uncompressed point: 0x04, X, Y.
            Pair::Ecdsa(pair) => pair.public_key().as_ref()[1..].to_vec(),
            Pair::Ed25519(pair) => pair.public_key().as_ref().to_vec(),
        }
    }

    /// Its DNSKEY record data.
    pub fn dnskey(&self) -> Vec<u8> {
        let mut rdata = self.flags.to_be_bytes().to_vec();
        rdata.push(3);
        rdata.push(self.algorithm.number());
        rdata.extend(self.public_key());
        rdata
    }

    /// Signs `data` (an RRSIG's signed data): 64 bytes for both algorithms.
    pub fn sign(&self, data: &[u8]) -> Result<Vec<u8>, String> {
        match &self.pair {
            Pair::Ecdsa(pair) => pair
                .sign(&SystemRandom::new(), data)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| "signing failed".to_owned()),
            Pair::Ed25519(pair) => Ok(pair.sign(data).as_ref().to_vec()),
        }
    }
}

/// The key tag of DNSKEY record data (RFC 4034 Appendix B).
pub fn key_tag(dnskey: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for (i, byte) in dnskey.iter().enumerate() {
        sum += if i % 2 == 0 {
            u32::from(*byte) << 8
        } else {
            u32::from(*byte)
        };
    }
    sum += (sum >> 16) & 0xffff;
    (sum & 0xffff) as u16
}

/// A name in canonical wire form (RFC 4034 §6.2): lower case, uncompressed.
pub fn canonical_name(name: &Name) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.iter() {
        out.push(label.len() as u8);
        out.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    out.push(0);
    out
}

/// The DS record data for `dnskey` at `owner`, SHA-256 digest (type 2).
pub fn ds(owner: &Name, dnskey: &[u8]) -> Vec<u8> {
    let digest = crate::digest::sha256(&[&canonical_name(owner), dnskey]);
    let mut rdata = key_tag(dnskey).to_be_bytes().to_vec();
    rdata.push(dnskey[3]);
    rdata.push(2);
    rdata.extend_from_slice(&digest);
    rdata
}

/// The DNSKEY as a master-file line.
pub fn dnskey_line(owner: &Name, dnskey: &[u8]) -> String {
    use base64::Engine;
    let key = base64::engine::general_purpose::STANDARD.encode(&dnskey[4..]);
    let flags = u16::from_be_bytes([dnskey[0], dnskey[1]]);
    format!(
        "{owner} IN DNSKEY {flags} 3 {} {key} ; key tag {}",
        dnskey[3],
        key_tag(dnskey)
    )
}

/// The DS as a master-file line, to give the parent zone.
pub fn ds_line(owner: &Name, dnskey: &[u8]) -> String {
    let ds = ds(owner, dnskey);
    let hex: String = ds[4..].iter().map(|b| format!("{b:02X}")).collect();
    let tag = u16::from_be_bytes([ds[0], ds[1]]);
    format!("{owner} IN DS {tag} {} 2 {hex}", ds[2])
}

/// A PKCS#8 document as PEM.
pub fn to_pem(der: &[u8]) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    format!(
        "-----BEGIN {PEM_LABEL}-----\n{}\n-----END {PEM_LABEL}-----\n",
        lines.join("\n")
    )
}

fn from_pem(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let begin = format!("-----BEGIN {PEM_LABEL}-----");
    let end = format!("-----END {PEM_LABEL}-----");
    let body = text.split(&begin).nth(1)?.split(&end).next()?;
    let body: String = body.split_whitespace().collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4034 §5.4's example: DNSKEY of dskey.example.com and its SHA-1 DS key tag 60485.
    #[test]
    fn the_key_tag_is_rfc_4034s() {
        use base64::Engine;
        let key = base64::engine::general_purpose::STANDARD
            .decode(
                "AQOeiiR0GOMYkDshWoSKz9XzfwJr1AYtsmx3TGkJaNXVbfi/2pHm822aJ5iI9BMzNXxeYCmZDRD99\
                 WYwYqUSdjMmmAphXdvxegXd/M5+X7OrzKBaMbCVdFLUUh6DhweJBjEVv5f2wwjM9XzcnOf+EPbtG9\
                 DMBmADjFDc2w/rljwvFw==",
            )
            .unwrap();
        let mut rdata = vec![1, 0, 3, 5];
        rdata.extend(key);
        assert_eq!(key_tag(&rdata), 60485);
    }

    #[test]
    fn keys_round_trip_through_pem_and_sign() {
        for algorithm in [Algorithm::EcdsaP256Sha256, Algorithm::Ed25519] {
            let der = SigningKey::generate(algorithm).unwrap();
            let pem = to_pem(&der);
            let key = SigningKey::from_pkcs8(&from_pem(&pem).unwrap(), FLAGS_CSK).unwrap();
            assert_eq!(key.algorithm, algorithm);
            assert_eq!(
                key.public_key().len(),
                if algorithm == Algorithm::Ed25519 {
                    32
                } else {
                    64
                }
            );
            assert_eq!(key.sign(b"data").unwrap().len(), 64);
            let owner = Name::from_ascii("Example.TEST.").unwrap();
            let ds = ds(&owner, &key.dnskey());
            assert_eq!(ds.len(), 4 + 32);
            assert!(ds_line(&owner, &key.dnskey()).contains(" IN DS "));
        }
    }
}
