//! What every reply to one request shares, whatever the answer: the most it may be and our
//! OPT record (DO copied, the Client Subnet echoed with the answer's scope, NSID, cookies).

use super::cookies::Verdict;
use super::reference;
use super::request::{Question, RequestEdns};
use super::respond::{Incoming, Responder, Transport};
use super::wire::{Ecs, Opt};
use hickory_proto::op::ResponseCode;

/// Classic DNS over UDP without EDNS (RFC 1035 §4.2.1).
const PLAIN_UDP_LIMIT: usize = 512;

/// What every reply to one request shares: its size limit and its OPT record.
pub struct Reply<'a> {
    /// The most a reply may be: 512 bytes, the request's EDNS payload size or ours over UDP;
    /// 64 KiB over TCP.
    pub limit: usize,
    /// The request's OPT record, if it had one.
    edns: Option<RequestEdns>,
    payload: u16,
    subnet: Option<super::ecs::ClientSubnet>,
    used: bool,
    nsid: Option<&'a [u8]>,
    /// What the request's cookie is worth, where cookies are on and it sent one.
    pub cookie: Option<Verdict>,
    /// The client cookie and ours, for the reply.
    cookies: Option<[u8; 24]>,
    /// The request's OPT record, where ours is a patched copy of it (see `wire::Opt::echo`).
    echo: Option<&'a [u8]>,
}

impl<'a> Reply<'a> {
    pub fn new(question: &Question<'a>, incoming: Incoming<'_>, with: &Responder<'a>) -> Self {
        let settings = with.settings;
        let limit = match (incoming.transport, &question.edns) {
            (Transport::Tcp | Transport::Tls, _) => usize::from(u16::MAX),
            (Transport::Udp, None) => PLAIN_UDP_LIMIT,
            (Transport::Udp, Some(theirs)) => {
                usize::from(theirs.max_payload.clamp(512, settings.udp_payload.max(512)))
            }
        };
        // The packet's source, never the Client Subnet: the cookie is the sender's.
        let (source, now) = (incoming.source, with.now);
        let cookie = question
            .options
            .cookie
            .zip(settings.cookies.as_ref())
            .map(|(c, cookies)| {
                let verdict = cookies.check(&c, source, now);
                let mut both = [0u8; 24];
                both[..8].copy_from_slice(&c.client);
                both[8..].copy_from_slice(&cookies.server_cookie(&c, verdict, source, now));
                (verdict, both)
            });
        // Only a Client Subnet option: ours has the same, with our scope.
        let options = &question.options;
        let echo = question
            .opt
            .filter(|_| options.subnet.is_some() && !options.nsid && options.cookie.is_none());
        Self {
            limit,
            echo,
            edns: question.edns,
            payload: settings.udp_payload,
            subnet: question.options.subnet,
            used: question.used.is_some(),
            nsid: settings.nsid(question.options.nsid),
            cookie: cookie.map(|(verdict, _)| verdict),
            cookies: cookie.map(|(_, both)| both),
        }
    }

    /// BADCOOKIE (RFC 7873 §5.2.4): the question and our OPT record with a fresh cookie.
    #[cold]
    #[inline(never)]
    pub fn badcookie(&self, question: &Question<'_>) -> Vec<u8> {
        let asked = question.hickory();
        let rcode = ResponseCode::BADCOOKIE;
        reference::error(&question.metadata, asked.as_deref(), rcode, self.opt(0))
    }

    /// Our OPT record: DO copied (RFC 3225 §3), the ECS option echoed (RFC 7871 §7.2.1: family,
    /// address and source prefix as sent, with the scope the answer depended on; 0 when the
    /// subnet was not used), our NSID if asked.
    pub fn opt(&self, scope: u8) -> Option<Opt<'a>> {
        let theirs = self.edns?;
        Some(Opt {
            payload: self.payload,
            dnssec_ok: theirs.dnssec_ok,
            compact_ok: theirs.dnssec_ok && theirs.compact_ok,
            ecs: self.subnet.map(|subnet| {
                let mut scope = if self.used { scope } else { 0 };
                // An IPv4-mapped IPv6 subnet was located as IPv4: count the mapping bits back.
                if scope > 0
                    && subnet.addr.is_ipv6()
                    && crate::geo::canonical(subnet.addr).is_ipv4()
                {
                    scope = scope.saturating_add(96).min(128);
                }
                Ecs {
                    addr: subnet.addr,
                    source: subnet.source_prefix,
                    scope,
                }
            }),
            nsid: self.nsid,
            cookie: self.cookies,
            echo: self.echo,
        })
    }
}
