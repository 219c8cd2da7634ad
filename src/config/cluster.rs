//! `[store]`: where zones live — the zones folder alone (`files`, the default) or an etcd
//! cluster shared by a set of instances (`etcd`), with the zones folder as this instance's
//! local copy.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// How an endpoint's state is decided from the live instances' opinions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quorum {
    /// Out when more than half of the instances that probe it see it fail.
    #[default]
    Majority,
    /// Out when any one of them sees it fail.
    Any,
    /// Out only when every one of them sees it fail.
    All,
}

/// How to reach etcd.
#[derive(Debug, Clone, Default)]
pub struct EtcdConfig {
    /// Client URLs, `http://host:2379` or `https://…`; tried in turn.
    pub endpoints: Vec<String>,
    /// Every key Meridian writes starts with it (`/meridian`).
    pub prefix: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// A CA to trust for `https` endpoints (PEM), besides the system's.
    pub ca_file: Option<PathBuf>,
    /// A client certificate and key (PEM), for etcd's `--client-cert-auth`.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

/// This instance's place in a nameserver set.
#[derive(Debug, Clone, Default)]
pub struct ClusterConfig {
    pub etcd: EtcdConfig,
    /// This instance's name in the set, unique among its members.
    pub instance: String,
    pub quorum: Quorum,
    /// Each endpoint probed by only this many instances (0: every instance probes it).
    pub probes_per_endpoint: usize,
    /// etcd's history older than this is compacted (0: never, left to etcd's own flags).
    pub keep_history: std::time::Duration,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Backend {
    #[default]
    Files,
    Etcd,
}

/// `[store]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    #[serde(default)]
    backend: Backend,
    #[serde(default)]
    endpoints: Vec<String>,
    #[serde(default = "default_prefix")]
    prefix: String,
    /// Default: the host name and the first DNS port.
    instance: Option<String>,
    username: Option<String>,
    password: Option<String>,
    /// The password from this environment variable rather than the file.
    password_env: Option<String>,
    ca_file: Option<PathBuf>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    #[serde(default = "default_keep_history")]
    keep_history_secs: u64,
}

fn default_keep_history() -> u64 {
    30
}

fn default_prefix() -> String {
    "/meridian".into()
}

impl RawStore {
    /// The cluster settings, if the backend is etcd; relative paths from `base`.
    pub(super) fn validate(
        self,
        listen: &[SocketAddr],
        base: &Path,
    ) -> Result<Option<ClusterConfig>, String> {
        if self.backend == Backend::Files {
            return Ok(None);
        }
        if self.endpoints.is_empty() {
            return Err("store.endpoints: the etcd backend needs at least one client URL".into());
        }
        if let Some(bad) = self
            .endpoints
            .iter()
            .find(|e| !(e.starts_with("http://") || e.starts_with("https://")))
        {
            return Err(format!(
                "store.endpoints: {bad} is not an http:// or https:// URL"
            ));
        }
        let prefix = self.prefix.trim_end_matches('/').to_owned();
        if !prefix.starts_with('/') {
            return Err("store.prefix: must start with /".into());
        }
        let instance = match self.instance {
            Some(name) => name,
            None => {
                let host = crate::sys::hostname().unwrap_or_else(|_| "meridian".into());
                format!("{host}-{}", listen.first().map_or(0, SocketAddr::port))
            }
        };
        if instance.is_empty() || instance.contains('/') || instance.len() > 64 {
            return Err("store.instance: 1 to 64 characters, no /".into());
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err("store.cert_file and store.key_file go together".into());
        }
        let password = match &self.password_env {
            Some(var) => Some(std::env::var(var).map_err(|_| {
                format!("store.password_env: the environment variable {var} is not set")
            })?),
            None => self.password,
        };
        if self.username.is_some() != password.is_some() {
            return Err("store.username and a password go together".into());
        }
        let path = |p: Option<PathBuf>| p.map(|p| base.join(p));
        Ok(Some(ClusterConfig {
            etcd: EtcdConfig {
                endpoints: self.endpoints,
                prefix,
                username: self.username,
                password,
                ca_file: path(self.ca_file),
                cert_file: path(self.cert_file),
                key_file: path(self.key_file),
            },
            instance,
            keep_history: std::time::Duration::from_secs(self.keep_history_secs),
            ..ClusterConfig::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::path::Path;

    #[test]
    fn the_etcd_backend_is_validated() {
        let config = Config::parse("", Path::new(".")).unwrap();
        assert!(config.cluster.is_none(), "files by default");
        let text = "[store]\nbackend = \"etcd\"\nendpoints = [\"http://127.0.0.1:2379\"]\n\
                    instance = \"a\"\n[health]\nquorum = \"all\"\nprobes_per_endpoint = 2\n";
        let cluster = Config::parse(text, Path::new("."))
            .unwrap()
            .cluster
            .unwrap();
        assert_eq!(cluster.etcd.prefix, "/meridian");
        assert_eq!(cluster.instance, "a");
        assert_eq!(cluster.quorum, super::Quorum::All);
        assert_eq!(cluster.probes_per_endpoint, 2);
        let err = Config::parse("[store]\nbackend = \"etcd\"\n", Path::new(".")).unwrap_err();
        assert!(err.contains("store.endpoints"), "{err}");
        let err = Config::parse("[store]\nbackend = \"zk\"\n", Path::new(".")).unwrap_err();
        assert!(err.contains("zk"), "{err}");
    }
}
