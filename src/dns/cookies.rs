//! DNS Cookies (RFC 7873) with server cookies built as RFC 9018 specifies, so that every server
//! of a set that shares the secret (Meridian, Knot, BIND, NSD…) accepts the others' cookies:
//! version 1, three reserved bytes, a timestamp, and SipHash-2-4 over the client cookie, those
//! eight bytes and the client's address. A second ("staging") secret is accepted too, so that a
//! secret can be rolled over across a set of servers without a moment of refused cookies.

use std::hash::Hasher;
use std::net::IpAddr;

use siphasher::sip::SipHasher24;

/// A server cookie lives an hour (RFC 9018 §4.3) and may come from up to five minutes in the
/// future (another server's clock).
const LIFETIME: u32 = 3600;
const FUTURE: u32 = 300;
/// A cookie older than this gets a fresh one in the reply; younger ones are echoed.
const REFRESH: u32 = 1800;

/// The COOKIE option of a request: the client cookie, and the server cookie if it sent one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestCookie {
    pub client: [u8; 8],
    server: [u8; 32],
    server_len: u8,
}

impl RequestCookie {
    /// RFC 7873 §4: 8 bytes of client cookie, then none or 8 to 32 bytes of server cookie;
    /// `None` for any other length (FORMERR).
    pub fn parse(data: &[u8]) -> Option<Self> {
        let (client, server) = data.split_first_chunk::<8>()?;
        if !(server.is_empty() || (8..=32).contains(&server.len())) {
            return None;
        }
        let mut cookie = Self {
            client: *client,
            server: [0; 32],
            server_len: server.len() as u8,
        };
        cookie.server[..server.len()].copy_from_slice(server);
        Some(cookie)
    }

    pub fn server(&self) -> &[u8] {
        &self.server[..usize::from(self.server_len)]
    }
}

/// What a request's cookie is worth (RFC 7873 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No server cookie: a client that has not learned ours yet (§5.2.3).
    ClientOnly,
    /// A server cookie we did not make, or one too old (§5.2.4).
    Invalid,
    /// Ours, and fresh: the client has talked to us from this address before (§5.2.5).
    Valid,
}

/// The server secrets.
#[derive(Debug, Clone)]
pub struct Cookies {
    secret: [u8; 16],
    staging: Option<[u8; 16]>,
}

impl Cookies {
    pub fn new(secret: [u8; 16], staging: Option<[u8; 16]>) -> Self {
        Self { secret, staging }
    }

    /// Judges `cookie`, sent from `source` at `now` (Unix seconds).
    pub fn check(&self, cookie: &RequestCookie, source: IpAddr, now: u32) -> Verdict {
        let server = cookie.server();
        let Some((head, hash)) = server.split_first_chunk::<8>() else {
            return match server.is_empty() {
                true => Verdict::ClientOnly,
                false => Verdict::Invalid,
            };
        };
        let stamp = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        // Serial number arithmetic (RFC 1982): the age is what the clock moved since.
        let age = now.wrapping_sub(stamp);
        let fresh = age <= LIFETIME || stamp.wrapping_sub(now) <= FUTURE;
        let ours = |secret| hash == hash_of(secret, &cookie.client, head, source);
        match hash.len() == 8 && head[..4] == [1, 0, 0, 0] && fresh {
            true if ours(&self.secret) || self.staging.as_ref().is_some_and(ours) => Verdict::Valid,
            _ => Verdict::Invalid,
        }
    }

    /// The server cookie for a reply to `cookie`, which [`Cookies::check`] judged `verdict`:
    /// the request's own where it is valid and younger than half an hour (RFC 9018 §4.3), else
    /// a new one stamped `now`.
    pub fn server_cookie(
        &self,
        cookie: &RequestCookie,
        verdict: Verdict,
        source: IpAddr,
        now: u32,
    ) -> [u8; 16] {
        let server = cookie.server();
        if server.len() == 16 && verdict == Verdict::Valid {
            let stamp = u32::from_be_bytes([server[4], server[5], server[6], server[7]]);
            if now.wrapping_sub(stamp) <= REFRESH {
                return server.try_into().expect("16 bytes");
            }
        }
        let mut out = [0u8; 16];
        out[0] = 1;
        out[4..8].copy_from_slice(&now.to_be_bytes());
        let head: [u8; 8] = out[..8].try_into().expect("8 bytes");
        let hash = hash_of(&self.secret, &cookie.client, &head, source);
        out[8..].copy_from_slice(&hash);
        out
    }
}

/// SipHash-2-4 of client cookie | version | reserved | timestamp | client address (RFC 9018
/// §4.4), keyed with `secret`.
fn hash_of(secret: &[u8; 16], client: &[u8; 8], head: &[u8; 8], source: IpAddr) -> [u8; 8] {
    let mut hasher = SipHasher24::new_with_key(secret);
    hasher.write(client);
    hasher.write(head);
    match crate::geo::canonical(source) {
        IpAddr::V4(v4) => hasher.write(&v4.octets()),
        IpAddr::V6(v6) => hasher.write(&v6.octets()),
    }
    hasher.finish().to_le_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn secret(s: &str) -> [u8; 16] {
        hex(s).try_into().unwrap()
    }

    #[test]
    fn rfc_9018_appendix_a_vectors() {
        let cookies = Cookies::new(secret("e5e973e5a6b2a43f48e7dc849e37bfcf"), None);
        // A.1: learning a new server cookie.
        let request = RequestCookie::parse(&hex("2464c4abcf10c957")).unwrap();
        let source: IpAddr = "198.51.100.100".parse().unwrap();
        let made = cookies.server_cookie(&request, Verdict::ClientOnly, source, 1559731985);
        assert_eq!(made.to_vec(), hex("010000005cf79f111f8130c3eee29480"));
        // It is valid afterwards, from that address only, and for an hour.
        let full = [hex("2464c4abcf10c957"), made.to_vec()].concat();
        let back = RequestCookie::parse(&full).unwrap();
        assert_eq!(
            cookies.check(&back, source, 1559731985 + 60),
            Verdict::Valid
        );
        let elsewhere: IpAddr = "198.51.100.101".parse().unwrap();
        assert_eq!(
            cookies.check(&back, elsewhere, 1559731985),
            Verdict::Invalid
        );
        assert_eq!(
            cookies.check(&back, source, 1559731985 + 3601),
            Verdict::Invalid
        );
        // Another server's secret does not make it; a staging secret equal to it does.
        let other = Cookies::new(secret("00112233445566778899aabbccddeeff"), None);
        assert_eq!(other.check(&back, source, 1559731985), Verdict::Invalid);
        let rolling = Cookies::new(
            secret("00112233445566778899aabbccddeeff"),
            Some(secret("e5e973e5a6b2a43f48e7dc849e37bfcf")),
        );
        assert_eq!(rolling.check(&back, source, 1559731985), Verdict::Valid);
    }

    #[test]
    fn lengths_and_client_only() {
        assert!(RequestCookie::parse(&[1; 7]).is_none());
        assert!(RequestCookie::parse(&[1; 12]).is_none());
        assert!(RequestCookie::parse(&[1; 41]).is_none());
        let cookies = Cookies::new([7; 16], None);
        let only = RequestCookie::parse(&[1; 8]).unwrap();
        let source: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(cookies.check(&only, source, 100), Verdict::ClientOnly);
        let junk = RequestCookie::parse(&[1; 24]).unwrap();
        assert_eq!(cookies.check(&junk, source, 100), Verdict::Invalid);
    }
}
