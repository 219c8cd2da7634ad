//! `[[tsig]]`: the shared keys (RFC 8945) that sign UPDATE, zone transfers and NOTIFY, each with
//! the zones and operations it may be used for, like the API's tokens; and `[transfer]`: who
//! may transfer zones without a key, and which secondaries are sent NOTIFY.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use hickory_proto::rr::Name;
use ipnet::IpNet;
use serde::Deserialize;

/// The HMAC a key signs with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TsigAlgorithm {
    #[default]
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

/// What a key may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TsigOperation {
    /// RFC 2136 UPDATE.
    Update,
    /// AXFR and IXFR.
    Transfer,
    /// NOTIFY to us.
    Notify,
}

/// One key, validated.
#[derive(Debug, Clone, Default)]
pub struct TsigConfig {
    pub name: Name,
    pub algorithm: TsigAlgorithm,
    pub secret: Vec<u8>,
    /// The zones it may be used for (`None`: every zone).
    pub zones: Option<Vec<Name>>,
    pub operations: Vec<TsigOperation>,
}

/// `[[tsig]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTsig {
    name: String,
    #[serde(default)]
    algorithm: TsigAlgorithm,
    /// Base64, as `tsig-keygen` and `dnssec-keygen` print it; or from a file or a variable.
    secret: Option<String>,
    secret_file: Option<PathBuf>,
    secret_env: Option<String>,
    zones: Option<Vec<String>>,
    operations: Vec<TsigOperation>,
}

impl RawTsig {
    pub(super) fn validate(self, base: &Path) -> Result<TsigConfig, String> {
        use base64::Engine;
        let at = format!("tsig {}", self.name);
        let name = absolute(&self.name).map_err(|e| format!("{at}: name: {e}"))?;
        let secret = match (self.secret, self.secret_file, self.secret_env) {
            (Some(s), None, None) => s,
            (None, Some(file), None) => std::fs::read_to_string(base.join(&file))
                .map_err(|e| format!("{at}: secret_file {}: {e}", file.display()))?,
            (None, None, Some(var)) => std::env::var(&var)
                .map_err(|_| format!("{at}: the environment variable {var} is not set"))?,
            _ => return Err(format!("{at}: one of secret, secret_file or secret_env")),
        };
        let secret = base64::engine::general_purpose::STANDARD
            .decode(secret.trim())
            .map_err(|e| format!("{at}: the secret is not base64: {e}"))?;
        if secret.len() < 16 {
            return Err(format!(
                "{at}: the secret must be at least 16 bytes (128 bits)"
            ));
        }
        if self.operations.is_empty() {
            return Err(format!(
                "{at}: operations: name at least one of update, transfer, notify"
            ));
        }
        let zones = self
            .zones
            .map(|zones| {
                zones
                    .iter()
                    .map(|z| absolute(z))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()
            .map_err(|e| format!("{at}: zones: {e}"))?;
        Ok(TsigConfig {
            name,
            algorithm: self.algorithm,
            secret,
            zones,
            operations: self.operations,
        })
    }
}

fn absolute(name: &str) -> Result<Name, String> {
    let mut name = Name::from_ascii(name).map_err(|e| e.to_string())?;
    name.set_fqdn(true);
    Ok(name.to_lowercase())
}

/// `[transfer]`: zone transfers out and NOTIFY.
#[derive(Debug, Clone, Default)]
pub struct TransferConfig {
    /// Networks that may transfer every zone without a key (a key with `transfer` may anyway).
    pub allow: Vec<IpNet>,
    /// Secondaries sent NOTIFY (RFC 1996) when a zone's serial changes.
    pub notify: Vec<SocketAddr>,
    /// The key NOTIFY messages are signed with, if any (a `[[tsig]]` name).
    pub notify_key: Option<Name>,
}

/// `[transfer]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTransfer {
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    notify: Vec<SocketAddr>,
    #[serde(default)]
    notify_key: Option<String>,
}

impl RawTransfer {
    pub(super) fn validate(self, keys: &[TsigConfig]) -> Result<TransferConfig, String> {
        let allow = self
            .allow
            .iter()
            .map(|net| {
                net.parse::<IpNet>()
                    .or_else(|_| net.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("transfer.allow: {net} is not an address or network"))
            })
            .collect::<Result<_, _>>()?;
        let notify_key = self.notify_key.as_deref().map(absolute).transpose()?;
        if let Some(name) = &notify_key
            && !keys.iter().any(|k| k.name == *name)
        {
            return Err(format!(
                "transfer.notify_key: no [[tsig]] key is named {name}"
            ));
        }
        Ok(TransferConfig {
            allow,
            notify: self.notify,
            notify_key,
        })
    }
}
