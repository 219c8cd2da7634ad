//! EDNS Client Subnet (RFC 7871): finding and checking the option in a query, and choosing the
//! client address an answer is for.
//!
//! The option is read from the raw message rather than from hickory's decoded `Edns`, because
//! hickory accepts options that RFC 7871 §7.1.1 tells a server to refuse with FORMERR (extra
//! address bytes, bits set beyond the source prefix).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A well-formed ECS option from a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientSubnet {
    pub addr: IpAddr,
    pub source_prefix: u8,
}

impl ClientSubnet {
    /// Whether this subnet is the one to answer for: a global unicast address with a non-zero
    /// source prefix. Otherwise (prefix 0: "do not use my address"; private or special
    /// addresses) the packet's source address decides.
    pub fn usable(&self) -> bool {
        self.source_prefix > 0 && crate::geo::is_global_unicast(crate::geo::canonical(self.addr))
    }
}

/// The message's ECS option, `Ok(None)` if it has none, `Err(())` if the option is malformed
/// (the caller answers FORMERR). See [`super::options::find`].
#[allow(clippy::result_unit_err)]
pub fn find(msg: &[u8]) -> Result<Option<ClientSubnet>, ()> {
    super::options::find(msg).map(|o| o.subnet)
}

/// RFC 7871 §6 and §7.1.1: FAMILY, SOURCE PREFIX-LENGTH, SCOPE PREFIX-LENGTH (0 in queries),
/// then exactly ceil(source/8) address octets with no bits set beyond the source prefix.
pub(crate) fn parse(data: &[u8]) -> Result<ClientSubnet, ()> {
    let [f0, f1, source, scope, address @ ..] = data else {
        return Err(());
    };
    let family = u16::from_be_bytes([*f0, *f1]);
    let max = match family {
        1 => 32,
        2 => 128,
        _ => return Err(()),
    };
    if *source > max || *scope != 0 || address.len() != usize::from(source.div_ceil(8)) {
        return Err(());
    }
    let mut octets = [0u8; 16];
    octets[..address.len()].copy_from_slice(address);
    let bits = u128::from_be_bytes(octets);
    let kept = if *source == 0 {
        0
    } else {
        bits & (u128::MAX << (128 - u32::from(*source)))
    };
    if kept != bits {
        return Err(());
    }
    let addr = match family {
        1 => IpAddr::V4(Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3])),
        _ => IpAddr::V6(Ipv6Addr::from(octets)),
    };
    Ok(ClientSubnet {
        addr,
        source_prefix: *source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opt(family: u16, source: u8, scope: u8, addr: &[u8]) -> Vec<u8> {
        let mut o = family.to_be_bytes().to_vec();
        o.extend([source, scope]);
        o.extend(addr);
        o
    }

    #[test]
    fn well_formed_options_parse() {
        let s = parse(&opt(1, 24, 0, &[81, 2, 69])).unwrap();
        assert_eq!(s.addr, "81.2.69.0".parse::<IpAddr>().unwrap());
        assert_eq!(s.source_prefix, 24);
        assert!(s.usable());
        let s = parse(&opt(2, 48, 0, &[0x20, 0x01, 0x48, 0x60, 0, 0])).unwrap();
        assert_eq!(s.addr, "2001:4860::".parse::<IpAddr>().unwrap());
        let zero = parse(&opt(1, 0, 0, &[])).unwrap();
        assert!(!zero.usable());
        let private = parse(&opt(1, 24, 0, &[10, 1, 2])).unwrap();
        assert!(!private.usable());
    }

    #[test]
    fn malformed_options_are_refused() {
        for bad in [
            opt(3, 24, 0, &[1, 2, 3]),       // unknown family
            opt(1, 33, 0, &[1, 2, 3, 4, 5]), // prefix too long
            opt(1, 24, 0, &[1, 2, 3, 4]),    // extra octet
            opt(1, 24, 0, &[1, 2]),          // missing octet
            opt(1, 23, 0, &[1, 2, 3]),       // bit set beyond the prefix
            opt(1, 24, 8, &[1, 2, 3]),       // scope set in a query
            vec![0, 1, 24],                  // cut short
        ] {
            assert!(parse(&bad).is_err(), "{bad:?}");
        }
    }
}
