//! The EDNS options of a request that the query path acts on (RFC 6891 §6.1.2): Client Subnet
//! (RFC 7871), NSID (RFC 5001) and COOKIE (RFC 7873). Others are ignored, as RFC 6891 §6.1.2
//! says.

use super::cookies::RequestCookie;
use super::ecs::{self, ClientSubnet};

/// The option code of NSID (RFC 5001 §2.3).
pub const NSID: u16 = 3;
/// The option code of ECS (RFC 7871 §6).
pub const ECS: u16 = 8;
/// The option code of COOKIE (RFC 7873 §4).
pub const COOKIE: u16 = 10;
/// RR type of OPT.
const TYPE_OPT: u16 = 41;

/// What a request's options ask for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    pub subnet: Option<ClientSubnet>,
    /// An NSID option (empty in a query): the client wants to know which server answered.
    pub nsid: bool,
    pub cookie: Option<RequestCookie>,
}

/// Reads an OPT record's RDATA; `Err(())` for a malformed list, ECS or COOKIE option (two of
/// either included: which one would count?). `known_only` refuses options other than ECS,
/// NSID and COOKIE (the lean decoder leaves those to hickory's).
pub(crate) fn read(mut rdata: &[u8], known_only: bool) -> Result<Options, ()> {
    let mut found = Options::default();
    // Fewer than 4 bytes left cannot be an option; hickory's decoder ignores them too.
    while let [c1, c2, l1, l2, rest @ ..] = rdata {
        let len = usize::from(u16::from_be_bytes([*l1, *l2]));
        let data = rest.get(..len).ok_or(())?;
        rdata = &rest[len..];
        match u16::from_be_bytes([*c1, *c2]) {
            ECS if found.subnet.is_some() => return Err(()),
            ECS => found.subnet = Some(ecs::parse(data)?),
            NSID => found.nsid = true,
            COOKIE if found.cookie.is_some() => return Err(()),
            // RFC 7873 §5.2.2: a malformed COOKIE option is a FORMERR.
            COOKIE => found.cookie = Some(RequestCookie::parse(data).ok_or(())?),
            _ if known_only => return Err(()),
            _ => {}
        }
    }
    if known_only && !rdata.is_empty() {
        return Err(());
    }
    Ok(found)
}

/// The options of the message's OPT record (none without one). `msg` has already been decoded
/// by hickory, so the walk only needs to find the OPT record, not to check the rest again.
#[allow(clippy::result_unit_err)]
pub fn find(msg: &[u8]) -> Result<Options, ()> {
    let count = |i: usize| -> Result<usize, ()> {
        Ok(usize::from(u16::from_be_bytes([
            *msg.get(i).ok_or(())?,
            *msg.get(i + 1).ok_or(())?,
        ])))
    };
    let (qd, an, ns, ar) = (count(4)?, count(6)?, count(8)?, count(10)?);
    let mut pos = 12;
    for _ in 0..qd {
        pos = skip_name(msg, pos)? + 4;
    }
    for _ in 0..an + ns {
        pos = skip_name(msg, pos)?;
        pos += 10 + count(pos + 8)?;
    }
    for _ in 0..ar {
        pos = skip_name(msg, pos)?;
        let rtype = count(pos)? as u16;
        let rdlen = count(pos + 8)?;
        let rdata = msg.get(pos + 10..pos + 10 + rdlen).ok_or(())?;
        pos += 10 + rdlen;
        if rtype == TYPE_OPT {
            return read(rdata, false);
        }
    }
    Ok(Options::default())
}

/// Offset just past the (possibly compressed) name at `pos`.
fn skip_name(msg: &[u8], mut pos: usize) -> Result<usize, ()> {
    loop {
        let len = *msg.get(pos).ok_or(())?;
        match len & 0xc0 {
            0x00 if len == 0 => return Ok(pos + 1),
            0x00 => pos += 1 + usize::from(len),
            0xc0 => return Ok(pos + 2),
            _ => return Err(()),
        }
    }
}
