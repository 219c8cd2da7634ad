//! Closed sets of label values. Each is one enum whose values (`ALL`, in declaration order) and
//! names come from one list, so a new variant is counted and rendered with no other change, and
//! code that maps onto it (`Policy::label`) does not compile until it names the new variant.

/// Declares a label set: `Name { Variant => "text", … }`.
macro_rules! label_set {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            /// Every value, in declaration order (`ALL[v.index()] == v`).
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];
            pub const COUNT: usize = Self::ALL.len();

            /// The label value as exposed.
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }

            pub(super) fn index(self) -> usize {
                self as usize
            }
        }
    };
}

label_set! {
    /// The transport a message came over; it also decides the size limit of a reply.
    Transport {
        Udp => "udp",
        Tcp => "tcp",
        Tls => "tls",
    }
}

label_set! {
    /// The policy that decided an answer; `Static` for answers no pool decided.
    PolicyLabel {
        Static => "static",
        RoundRobin => "round_robin",
        Weighted => "weighted",
        WeightedRandom => "weighted_random",
        All => "all",
        Failover => "failover",
        Geo => "geo",
        Sticky => "sticky",
        LeastLoad => "least_load",
    }
}

label_set! {
    /// Response codes counted by name; the rest are `other`.
    Rcode {
        NoError => "NOERROR",
        FormErr => "FORMERR",
        ServFail => "SERVFAIL",
        NxDomain => "NXDOMAIN",
        NotImp => "NOTIMP",
        Refused => "REFUSED",
        BadVers => "BADVERS",
        Other => "other",
    }
}

impl Rcode {
    pub fn of(rcode: hickory_proto::op::ResponseCode) -> Self {
        use hickory_proto::op::ResponseCode as R;
        match rcode {
            R::NoError => Self::NoError,
            R::FormErr => Self::FormErr,
            R::ServFail => Self::ServFail,
            R::NXDomain => Self::NxDomain,
            R::NotImp => Self::NotImp,
            R::Refused => Self::Refused,
            R::BADVERS => Self::BadVers,
            _ => Self::Other,
        }
    }
}

label_set! {
    /// What response rate limiting did to a reply over the rate.
    Limited {
        Slipped => "slipped",
        Dropped => "dropped",
        LogOnly => "log_only",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_are_positions_in_all() {
        for (i, t) in Transport::ALL.iter().enumerate() {
            assert_eq!(t.index(), i);
        }
        for (i, p) in PolicyLabel::ALL.iter().enumerate() {
            assert_eq!(p.index(), i);
        }
        for (i, r) in Rcode::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }
}
