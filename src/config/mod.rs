//! The server configuration file (`meridian.toml`): strict raw serde structs turned into one
//! validated [`Config`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

mod cluster;
mod security;
mod tsig;

pub use cluster::{ClusterConfig, EtcdConfig, Quorum};
pub use security::{CookieSecrets, RateLimitConfig};
use security::{RawCookies, RawRateLimit};
pub use tsig::{TransferConfig, TsigAlgorithm, TsigConfig, TsigOperation};

/// Why a configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {cause}")]
    Read {
        file: PathBuf,
        cause: std::io::Error,
    },
    #[error("{file}: {message}")]
    Invalid { file: PathBuf, message: String },
}

/// `meridian.toml` as written. Unknown fields are errors.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    zones: RawZones,
    #[serde(default)]
    geoip: RawGeoip,
    #[serde(default)]
    health: RawHealth,
    #[serde(default)]
    api: Option<ApiConfig>,
    #[serde(default)]
    query_log: QueryLogConfig,
    #[serde(default)]
    cookies: RawCookies,
    #[serde(default)]
    rate_limit: RawRateLimit,
    #[serde(default)]
    store: cluster::RawStore,
    #[serde(default)]
    tsig: Vec<tsig::RawTsig>,
    #[serde(default)]
    transfer: tsig::RawTransfer,
    #[serde(default)]
    tls: Option<RawTls>,
}

/// `[tls]`: DNS over TLS (RFC 7858).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    #[serde(default = "default_tls_listen")]
    listen: Vec<SocketAddr>,
    cert_file: PathBuf,
    key_file: PathBuf,
}

fn default_tls_listen() -> Vec<SocketAddr> {
    vec!["127.0.0.1:853".parse().expect("literal")]
}

/// DNS over TLS: where, and the certificate chain and key (PEM), re-read on SIGHUP.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub listen: Vec<SocketAddr>,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// `[query_log]`: JSON lines about sampled queries; off unless enabled.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct QueryLogConfig {
    #[serde(default)]
    pub enabled: bool,
    /// Log one query in `sample` (1 logs every query).
    #[serde(default = "one")]
    pub sample: u64,
    /// At most this many lines a second; the rest are counted as dropped.
    #[serde(default = "default_log_rate")]
    pub max_lines_per_second: u32,
    /// `"stdout"` or a file (appended to; relative to the config file's folder).
    #[serde(default = "default_log_path")]
    pub path: PathBuf,
}

impl Default for QueryLogConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            sample: 1,
            max_lines_per_second: default_log_rate(),
            path: default_log_path(),
        }
    }
}

fn one() -> u64 {
    1
}
fn default_log_rate() -> u32 {
    1000
}
fn default_log_path() -> PathBuf {
    PathBuf::from("stdout")
}

/// The HTTP API (`[api]`); off unless configured.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    #[serde(default = "default_api_listen")]
    pub listen: SocketAddr,
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
}

fn default_api_listen() -> SocketAddr {
    "127.0.0.1:8053".parse().expect("literal")
}

/// One API token: its SHA-256 (hex) in the config, or the token itself in an environment
/// variable; a scope; and optionally the zones it may touch.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    pub name: String,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub env: Option<String>,
    pub scope: TokenScope,
    #[serde(default)]
    pub zones: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenScope {
    Read,
    Write,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    /// Where last-known endpoint states are kept across restarts.
    state_file: Option<PathBuf>,
    #[serde(default = "default_max_probes")]
    max_concurrent_probes: usize,
    /// The address probes are sent from (default: the system's choice).
    #[serde(default)]
    source_address: Option<std::net::IpAddr>,
    /// With the etcd store: how many instances' failures take an endpoint out.
    #[serde(default)]
    quorum: Quorum,
    /// With the etcd store: each endpoint probed by only this many instances (0: by all).
    #[serde(default)]
    probes_per_endpoint: usize,
}

impl Default for RawHealth {
    fn default() -> Self {
        Self {
            state_file: None,
            max_concurrent_probes: default_max_probes(),
            source_address: None,
            quorum: Quorum::default(),
            probes_per_endpoint: 0,
        }
    }
}

fn default_max_probes() -> usize {
    64
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGeoip {
    /// A MaxMind DB file (GeoIP2/GeoLite2 City or Country, DB-IP Lite).
    database: Option<PathBuf>,
    #[serde(default = "default_geoip_watch")]
    watch_interval_secs: u64,
}

fn default_geoip_watch() -> u64 {
    5
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    #[serde(default = "default_listen")]
    listen: Vec<SocketAddr>,
    #[serde(default = "default_udp_payload")]
    udp_payload: u16,
    #[serde(default = "default_tcp_idle_timeout")]
    tcp_idle_timeout_secs: u64,
    #[serde(default = "default_tcp_max_connections")]
    tcp_max_connections: usize,
    #[serde(default = "default_tcp_max_per_network")]
    tcp_max_per_network: usize,
    #[serde(default)]
    udp_workers: Option<usize>,
    #[serde(default)]
    udp_steering: Steering,
    /// Our NSID (RFC 5001): a string, or `"hostname"` for the machine's name.
    #[serde(default)]
    nsid: Option<String>,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            udp_payload: default_udp_payload(),
            tcp_idle_timeout_secs: default_tcp_idle_timeout(),
            tcp_max_connections: default_tcp_max_connections(),
            tcp_max_per_network: default_tcp_max_per_network(),
            udp_workers: None,
            udp_steering: Steering::default(),
            nsid: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawZones {
    #[serde(default = "default_zones_dir")]
    directory: PathBuf,
}

impl Default for RawZones {
    fn default() -> Self {
        Self {
            directory: default_zones_dir(),
        }
    }
}

fn default_listen() -> Vec<SocketAddr> {
    vec![
        "127.0.0.1:5300".parse().expect("literal"),
        "[::1]:5300".parse().expect("literal"),
    ]
}
/// 1232 bytes avoids IP fragmentation on any path (DNS Flag Day 2020).
fn default_udp_payload() -> u16 {
    1232
}
fn default_tcp_idle_timeout() -> u64 {
    10
}
fn default_tcp_max_connections() -> usize {
    1024
}
/// Connections one network (IPv4 /24, IPv6 /56) may hold open at once.
fn default_tcp_max_per_network() -> usize {
    64
}
fn default_zones_dir() -> PathBuf {
    PathBuf::from("zones")
}

/// How datagrams are spread over the UDP workers' sockets (`server.udp_steering`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Steering {
    /// The kernel's hash of the source address and port (SO_REUSEPORT's own).
    #[default]
    Hash,
    /// To the worker of the CPU that received the datagram, each worker kept on its CPUs.
    Cpu,
}

/// The validated configuration every other module reads.
#[derive(Debug, Clone)]
pub struct Config {
    /// Addresses to serve DNS on, UDP and TCP alike. Port 0 picks a free port (tests).
    pub listen: Vec<SocketAddr>,
    /// The EDNS UDP payload size we advertise and the most we send over UDP.
    pub udp_payload: u16,
    pub tcp_idle_timeout: Duration,
    pub tcp_max_connections: usize,
    /// Open connections one network (IPv4 /24, IPv6 /56) may hold, of each transport.
    pub tcp_max_per_network: usize,
    /// UDP workers (and TCP listeners) per listen address, each on a socket of its own.
    pub udp_workers: usize,
    /// How the kernel spreads datagrams over the workers' sockets.
    pub udp_steering: Steering,
    /// Our NSID (RFC 5001), sent to clients that ask.
    pub nsid: Option<Box<[u8]>>,
    /// DNS Cookies (RFC 7873), unless turned off.
    pub cookies: Option<CookieSecrets>,
    /// Response rate limiting, unless turned off.
    pub rate_limit: Option<RateLimitConfig>,
    /// Folder holding one `<origin>.toml` (and/or `<origin>.zone`) per zone.
    pub zones_dir: PathBuf,
    /// The GeoIP database, if any.
    pub geoip: Option<PathBuf>,
    /// How often the database file is checked for changes (0: never; SIGHUP still reloads).
    pub geoip_watch: Duration,
    /// Last-known endpoint states, kept across restarts.
    pub health_state_file: Option<PathBuf>,
    /// Probes in flight at most.
    pub max_concurrent_probes: usize,
    /// The address probes are sent from, if set.
    pub probe_source: Option<std::net::IpAddr>,
    /// The nameserver set this instance belongs to (`[store] backend = "etcd"`), if any.
    pub cluster: Option<ClusterConfig>,
    /// TSIG keys (`[[tsig]]`).
    pub tsig: Vec<TsigConfig>,
    /// Zone transfers out and NOTIFY (`[transfer]`).
    pub transfer: TransferConfig,
    /// DNS over TLS, if on (`[tls]`).
    pub tls: Option<TlsConfig>,
    /// The HTTP API, if configured.
    pub api: Option<ApiConfig>,
    pub query_log: QueryLogConfig,
}

/// Where the served state is loaded from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub zones_dir: PathBuf,
    pub geoip: Option<PathBuf>,
    /// Last-known endpoint states, read at start and rewritten on every change.
    pub health_file: Option<PathBuf>,
    /// The etcd the zones, changes and health are shared through, if any.
    pub cluster: Option<ClusterConfig>,
}

impl Config {
    /// Where the shared state is loaded from.
    pub fn sources(&self) -> Sources {
        Sources {
            zones_dir: self.zones_dir.clone(),
            geoip: self.geoip.clone(),
            health_file: self.health_state_file.clone(),
            cluster: self.cluster.clone(),
        }
    }
}

impl Config {
    /// Reads and validates a config file. Relative paths inside it are taken from the
    /// file's own folder, so `meridian serve --config /etc/meridian/meridian.toml` works from
    /// anywhere.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
            file: path.to_owned(),
            cause,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base).map_err(|message| {
            // A TOML error starts with its line: `file:line: field: message`, as zone errors.
            let (file, message) = match message.split_once(": ") {
                Some((line, rest)) if line.parse::<usize>().is_ok() => {
                    let file = PathBuf::from(format!("{}:{line}", path.display()));
                    (file, rest.to_owned())
                }
                _ => (path.to_owned(), message),
            };
            ConfigError::Invalid { file, message }
        })
    }

    /// Parses config text; relative paths are resolved against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Self, String> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
        if raw.server.listen.is_empty() {
            return Err("server.listen: at least one address is needed".into());
        }
        if raw.server.udp_payload < 512 {
            return Err("server.udp_payload: must be at least 512 (RFC 6891 §6.2.5)".into());
        }
        let udp_workers = raw.server.udp_workers.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
        if raw.query_log.sample == 0 {
            return Err("query_log.sample: must be at least 1 (1 logs every query)".into());
        }
        if udp_workers == 0 {
            return Err("server.udp_workers: must be at least 1".into());
        }
        let nsid = raw.server.nsid.as_deref().map(nsid).transpose()?;
        let cookies = raw.cookies.secrets(base)?;
        let rate_limit = raw.rate_limit.validate()?;
        let cluster = raw.store.validate(&raw.server.listen, base)?;
        let tsig = raw
            .tsig
            .into_iter()
            .map(|k| k.validate(base))
            .collect::<Result<Vec<_>, _>>()?;
        let transfer = raw.transfer.validate(&tsig)?;
        let health = &raw.health;
        let cluster = cluster.map(|c| ClusterConfig {
            quorum: health.quorum,
            probes_per_endpoint: health.probes_per_endpoint,
            ..c
        });
        Ok(Self {
            listen: raw.server.listen,
            udp_payload: raw.server.udp_payload,
            tcp_idle_timeout: Duration::from_secs(raw.server.tcp_idle_timeout_secs.max(1)),
            tcp_max_connections: raw.server.tcp_max_connections.max(1),
            tcp_max_per_network: raw.server.tcp_max_per_network.max(1),
            udp_workers,
            udp_steering: raw.server.udp_steering,
            nsid,
            cookies,
            rate_limit,
            zones_dir: base.join(raw.zones.directory),
            geoip: raw.geoip.database.map(|p| base.join(p)),
            geoip_watch: Duration::from_secs(raw.geoip.watch_interval_secs),
            health_state_file: raw.health.state_file.map(|p| base.join(p)),
            max_concurrent_probes: raw.health.max_concurrent_probes.max(1),
            probe_source: raw.health.source_address,
            cluster,
            tsig,
            transfer,
            tls: raw.tls.map(|t| TlsConfig {
                listen: t.listen,
                cert_file: base.join(t.cert_file),
                key_file: base.join(t.key_file),
            }),
            api: raw.api,
            query_log: QueryLogConfig {
                path: match raw.query_log.path.as_os_str() == "stdout" {
                    true => raw.query_log.path,
                    false => base.join(raw.query_log.path),
                },
                ..raw.query_log
            },
        })
    }
}

/// The NSID payload `server.nsid` gives: its text, or the machine's name for `"hostname"`.
/// A TOML error as one line: `line: field: message` (the field is the key on the error's line,
/// under the table above it).
fn toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim().replace('\n', " ");
    let Some(offset) = error.span().map(|s| s.start.min(text.len())) else {
        return message;
    };
    let line = text[..offset].matches('\n').count() + 1;
    let before = &text[..offset];
    let here = text[offset..].split('\n').next().unwrap_or_default();
    let line_text = format!("{}{here}", before.rsplit('\n').next().unwrap_or_default());
    let key = line_text
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_owned());
    let table = before
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['));
    let table = table.map(|t| t.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
    match (table, key) {
        (Some(table), Some(key)) => format!("{line}: {table}.{key}: {message}"),
        (None, Some(key)) => format!("{line}: {key}: {message}"),
        _ => format!("{line}: {message}"),
    }
}

fn nsid(value: &str) -> Result<Box<[u8]>, String> {
    let text = match value {
        "hostname" => crate::sys::hostname()
            .map_err(|e| format!("server.nsid: cannot read the host name: {e}"))?,
        text => text.to_owned(),
    };
    // RFC 5001 leaves the length open; a reply must stay small.
    match text.len() {
        1..=128 => Ok(text.into_bytes().into()),
        _ => Err("server.nsid: must be 1 to 128 bytes".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_an_empty_file() {
        let config = Config::parse("", Path::new("/etc/m")).unwrap();
        assert_eq!(config.listen.len(), 2);
        assert_eq!(config.udp_payload, 1232);
        assert_eq!(config.zones_dir, PathBuf::from("/etc/m/zones"));
    }

    #[test]
    fn unknown_fields_are_named() {
        let err = Config::parse("[server]\nlisten_on = []\n", Path::new(".")).unwrap_err();
        assert!(
            err.starts_with("2: server.listen_on: unknown field"),
            "{err}"
        );
    }

    #[test]
    fn tiny_payload_is_refused() {
        let err = Config::parse("[server]\nudp_payload = 100\n", Path::new(".")).unwrap_err();
        assert!(err.contains("udp_payload"), "{err}");
    }
}
