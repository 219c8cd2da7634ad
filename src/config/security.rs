//! The protections a public authoritative server needs: DNS Cookies (`[cookies]`, RFC 7873)
//! and response rate limiting (`[rate_limit]`), as read from the config file and validated.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// `[rate_limit]`: response rate limiting (see `dns::ratelimit`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRateLimit {
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default = "default_rate")]
    responses_per_second: u32,
    #[serde(default = "default_slip")]
    slip: u32,
    #[serde(default = "default_v4_prefix")]
    ipv4_prefix: u8,
    #[serde(default = "default_v6_prefix")]
    ipv6_prefix: u8,
    #[serde(default = "default_exempt")]
    exempt: Vec<String>,
    #[serde(default)]
    log_only: bool,
    #[serde(default = "default_table_size")]
    table_size: usize,
}

impl Default for RawRateLimit {
    fn default() -> Self {
        toml::from_str("").expect("every field has a default")
    }
}

fn default_rate() -> u32 {
    100
}
fn default_slip() -> u32 {
    2
}
fn default_v4_prefix() -> u8 {
    24
}
fn default_v6_prefix() -> u8 {
    56
}
fn default_exempt() -> Vec<String> {
    vec!["127.0.0.1/32".into(), "::1/128".into()]
}
fn default_table_size() -> usize {
    1 << 16
}

/// Response rate limiting, validated.
#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    pub responses_per_second: u32,
    /// Every `slip`-th limited reply slips out truncated; 0 drops them all.
    pub slip: u32,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    /// Sources never limited.
    pub exempt: Vec<ipnet::IpNet>,
    /// Count what would be limited, but send everything.
    pub log_only: bool,
    /// Slots in the table (a power of two).
    pub table_size: usize,
}

impl RawRateLimit {
    pub(super) fn validate(self) -> Result<Option<RateLimitConfig>, String> {
        if !self.enabled {
            return Ok(None);
        }
        if self.responses_per_second == 0 || self.responses_per_second > 1_000_000 {
            return Err("rate_limit.responses_per_second: must be between 1 and 1000000".into());
        }
        if self.ipv4_prefix > 32 || self.ipv6_prefix > 128 {
            return Err("rate_limit: ipv4_prefix is at most 32, ipv6_prefix at most 128".into());
        }
        if !(1..=1 << 24).contains(&self.table_size) {
            return Err("rate_limit.table_size: must be between 1 and 16777216".into());
        }
        let exempt = self
            .exempt
            .iter()
            .map(|net| {
                net.parse::<ipnet::IpNet>()
                    .or_else(|_| net.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| format!("rate_limit.exempt: {net} is not an address or network"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Some(RateLimitConfig {
            responses_per_second: self.responses_per_second,
            slip: self.slip,
            ipv4_prefix: self.ipv4_prefix,
            ipv6_prefix: self.ipv6_prefix,
            exempt,
            log_only: self.log_only,
            table_size: self.table_size.next_power_of_two(),
        }))
    }
}

/// `[cookies]`: DNS Cookies (RFC 7873).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCookies {
    #[serde(default = "yes")]
    enabled: bool,
    /// 16 bytes as 32 hex digits; servers of one set share it.
    #[serde(default)]
    secret: Option<String>,
    /// A file holding the secret (32 hex digits).
    #[serde(default)]
    secret_file: Option<PathBuf>,
    /// A second secret also accepted (rollover), as hex.
    #[serde(default)]
    staging_secret: Option<String>,
}

impl Default for RawCookies {
    fn default() -> Self {
        Self {
            enabled: true,
            secret: None,
            secret_file: None,
            staging_secret: None,
        }
    }
}

fn yes() -> bool {
    true
}

/// The server cookie secrets (RFC 9018 §4.4).
#[derive(Clone, Copy)]
pub struct CookieSecrets {
    pub secret: [u8; 16],
    /// Also accepted, during a rollover.
    pub staging: Option<[u8; 16]>,
}

/// Secrets stay out of logs.
impl std::fmt::Debug for CookieSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieSecrets { .. }")
    }
}

impl RawCookies {
    /// The secrets, or `None` when cookies are off. Without a configured secret one is drawn
    /// at random: fine for a single server, while a set of servers must share one.
    pub(super) fn secrets(&self, base: &Path) -> Result<Option<CookieSecrets>, String> {
        if !self.enabled {
            return Ok(None);
        }
        let secret = match (&self.secret, &self.secret_file) {
            (Some(_), Some(_)) => {
                return Err("cookies: give secret or secret_file, not both".into());
            }
            (Some(hex), None) => parse_secret(hex, "cookies.secret")?,
            (None, Some(file)) => {
                let path = base.join(file);
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("cookies.secret_file: {}: {e}", path.display()))?;
                parse_secret(text.trim(), "cookies.secret_file")?
            }
            (None, None) => crate::sys::random_bytes()
                .map_err(|e| format!("cookies: cannot draw a random secret: {e}"))?,
        };
        let staging = self
            .staging_secret
            .as_deref()
            .map(|hex| parse_secret(hex, "cookies.staging_secret"))
            .transpose()?;
        Ok(Some(CookieSecrets { secret, staging }))
    }
}

/// 16 bytes from 32 hex digits.
fn parse_secret(hex: &str, field: &str) -> Result<[u8; 16], String> {
    let bytes: Option<Vec<u8>> = (hex.len() == 32 && hex.is_ascii())
        .then(|| {
            (0..32)
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
                .collect()
        })
        .flatten();
    bytes
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("{field}: must be 32 hex digits (16 bytes)"))
}
