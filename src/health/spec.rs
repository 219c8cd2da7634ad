//! How an endpoint is checked, as written in zone files: `check` tables on pools, datacenters
//! and endpoints. Hashable, so that one (address, check) pair is probed once however many pools
//! use it.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One health check.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    /// `tcp`, `http` or `https`.
    #[serde(rename = "type")]
    pub kind: CheckKind,
    /// Port to connect to; `http` defaults to 80, `https` to 443, `tcp` needs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// HTTP method.
    #[serde(default = "default_method")]
    pub method: String,
    /// HTTP path (with query string, if any).
    #[serde(default = "default_path")]
    pub path: String,
    /// HTTP Host header (and the default TLS server name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Statuses that count as healthy: a list (`[200, 204]`) or a class (`"2xx"`).
    #[serde(default)]
    pub expect: Expect,
    /// A substring the response body must contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Extra request headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// TLS server name (SNI) for `https`; `host` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// Verify the server's certificate (`https`). Turn off only for self-signed backends.
    #[serde(default = "yes")]
    pub verify_tls: bool,
    /// Time between probes.
    #[serde(default = "default_interval")]
    pub interval: Millis,
    /// Time a probe may take; half the interval when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Millis>,
    /// Consecutive failures that mark an endpoint down.
    #[serde(default = "default_fall")]
    pub fall: u32,
    /// Consecutive successes that mark an endpoint up again.
    #[serde(default = "default_rise")]
    pub rise: u32,
    /// A response header that carries the endpoint's load (a number, lower is better), for
    /// `least_load` pools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_header: Option<String>,
    /// A field of the JSON response body that carries the load: a name (`"connections"`) or
    /// a JSON pointer (`"/stats/active"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_json: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    Tcp,
    Http,
    Https,
}

fn default_method() -> String {
    "GET".into()
}
fn default_path() -> String {
    "/".into()
}
fn yes() -> bool {
    true
}
fn default_interval() -> Millis {
    Millis(10_000)
}
fn default_fall() -> u32 {
    3
}
fn default_rise() -> u32 {
    2
}

impl CheckSpec {
    pub fn port(&self) -> Option<u16> {
        match (self.port, self.kind) {
            (Some(p), _) => Some(p),
            (None, CheckKind::Http) => Some(80),
            (None, CheckKind::Https) => Some(443),
            (None, CheckKind::Tcp) => None,
        }
    }

    pub fn interval(&self) -> Duration {
        self.interval.duration()
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
            .map_or(self.interval.duration() / 2, |t| t.duration())
    }

    /// Everything wrong with this check, as (field, reason).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.kind == CheckKind::Tcp && self.port.is_none() {
            return Err(("port", "a tcp check needs a port".into()));
        }
        if self.interval.0 < 10 {
            return Err(("interval", "must be at least 10ms".into()));
        }
        if self
            .timeout
            .is_some_and(|t| t.0 == 0 || t.0 > self.interval.0)
        {
            return Err(("timeout", "must be above 0 and at most the interval".into()));
        }
        if self.fall == 0 || self.rise == 0 {
            let field = if self.fall == 0 { "fall" } else { "rise" };
            return Err((field, "must be at least 1".into()));
        }
        if !self.path.starts_with('/') {
            return Err(("path", "must start with /".into()));
        }
        if self.method.is_empty() || !self.method.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(("method", "an HTTP method such as GET or HEAD".into()));
        }
        let reads_load = self.load_header.is_some() || self.load_json.is_some();
        if reads_load && self.kind == CheckKind::Tcp {
            return Err((
                "load_header",
                "only http and https checks read a load".into(),
            ));
        }
        if self.load_header.is_some() && self.load_json.is_some() {
            return Err((
                "load_json",
                "read the load from a header or the body, not both".into(),
            ));
        }
        self.expect.validate().map_err(|e| ("expect", e))
    }
}

/// Healthy HTTP statuses.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Expect {
    Codes(Vec<u16>),
    /// `"2xx"`, `"3xx"`, …
    Class(String),
}

impl Default for Expect {
    fn default() -> Self {
        Self::Class("2xx".into())
    }
}

impl Expect {
    pub fn matches(&self, status: u16) -> bool {
        match self {
            Self::Codes(codes) => codes.contains(&status),
            Self::Class(class) => class.as_bytes().first() == Some(&(b'0' + (status / 100) as u8)),
        }
    }

    fn validate(&self) -> Result<(), String> {
        match self {
            Self::Codes(codes) if codes.is_empty() => Err("list at least one status".into()),
            Self::Codes(codes) => match codes.iter().find(|c| !(100..=599).contains(*c)) {
                Some(c) => Err(format!("{c} is not an HTTP status")),
                None => Ok(()),
            },
            Self::Class(c) => match c.as_bytes() {
                [d @ b'1'..=b'5', b'x', b'x'] if *d != 0 => Ok(()),
                _ => Err(format!(
                    "{c:?}: write a class as \"2xx\" or a list of statuses"
                )),
            },
        }
    }
}

/// A duration in milliseconds, written as seconds (`10`, `0.5`) or with a unit (`"500ms"`,
/// `"10s"`, `"1m"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Millis(pub u64);

impl Millis {
    pub fn duration(self) -> Duration {
        Duration::from_millis(self.0)
    }
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 % 1000 {
            0 => write!(f, "{}s", self.0 / 1000),
            _ => write!(f, "{}ms", self.0),
        }
    }
}

impl Serialize for Millis {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Float(f64),
            Text(String),
        }
        let secs = |s: f64| {
            if s.is_finite() && s >= 0.0 {
                Ok(Millis((s * 1000.0).round() as u64))
            } else {
                Err(serde::de::Error::custom(
                    "a duration must be a positive number",
                ))
            }
        };
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(Millis(n * 1000)),
            Raw::Float(f) => secs(f),
            Raw::Text(t) => {
                let t = t.trim();
                let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
                    (n, 0.001)
                } else if let Some(n) = t.strip_suffix('s') {
                    (n, 1.0)
                } else if let Some(n) = t.strip_suffix('m') {
                    (n, 60.0)
                } else {
                    (t, 1.0)
                };
                let value: f64 = num.trim().parse().map_err(|_| {
                    serde::de::Error::custom(format!(
                        "{t:?}: write a duration as 10, \"500ms\", \"10s\" or \"1m\""
                    ))
                })?;
                secs(value * scale)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct T {
        d: Millis,
    }

    #[test]
    fn durations_parse() {
        for (text, ms) in [
            ("d = 10", 10_000),
            ("d = 0.25", 250),
            ("d = \"500ms\"", 500),
            ("d = \"2s\"", 2000),
            ("d = \"1m\"", 60_000),
        ] {
            assert_eq!(toml::from_str::<T>(text).unwrap().d, Millis(ms), "{text}");
        }
        assert!(toml::from_str::<T>("d = \"soon\"").is_err());
    }

    #[test]
    fn expectations() {
        assert!(Expect::default().matches(204));
        assert!(!Expect::default().matches(301));
        assert!(Expect::Codes(vec![200, 301]).matches(301));
        assert!(Expect::Class("3xx".into()).validate().is_ok());
        assert!(Expect::Class("2x".into()).validate().is_err());
        assert!(Expect::Codes(vec![700]).validate().is_err());
    }
}
