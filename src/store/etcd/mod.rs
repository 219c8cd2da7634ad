//! An etcd v3 client over etcd's JSON gateway (`/v3/kv/range`, `/v3/kv/txn`, `/v3/watch`,
//! `/v3/lease/*`, `/v3/auth/authenticate`): the same API as gRPC, served by every etcd since
//! 3.4 on the client port. Through reqwest, which the prober already uses, so the default
//! build needs no `protoc` and no gRPC stack (the etcd-client crate needs both). Keys and
//! values are base64 on the wire; 64-bit numbers come as strings.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use crate::config::EtcdConfig;

mod txn;
mod watch;
pub use txn::{MAX_TXN_OPS, Op};
pub use watch::Watch;

/// Why an etcd request failed.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// No endpoint answered (down, partitioned away, or too slow).
    #[error("etcd is unreachable: {0}")]
    Unreachable(String),
    /// etcd answered with an error.
    #[error("etcd refused: {0}")]
    Refused(String),
    /// A watch asked for history etcd compacted away: read everything again.
    #[error("etcd compacted its history up to revision {0}")]
    Compacted(i64),
    /// A write was sent and no answer came back: it may or may not have been committed. Its
    /// marker key tells, once etcd can be asked.
    #[error("etcd did not answer whether write {0} was committed")]
    OutcomeUnknown(String),
}

/// What makes a write's outcome knowable when its answer is lost: a key put in the same
/// transaction (under a lease, so that markers expire), looked for after a conflict or a lost
/// answer. A retry sends the same transaction, whose compare lets at most one copy commit.
#[derive(Debug, Clone, Copy)]
pub struct Marker<'a> {
    pub key: &'a str,
    pub lease: i64,
}

/// One key as etcd holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    pub key: String,
    pub value: Vec<u8>,
    pub mod_revision: i64,
    /// The lease it is attached to (0: none).
    pub lease: i64,
}

/// One change a watch reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Put(Kv),
    Delete { key: String, mod_revision: i64 },
}

/// The keys under a prefix at one revision.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub revision: i64,
    pub cluster_id: String,
    pub kvs: Vec<Kv>,
}

/// What a conditional write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Committed at this revision (durable on a quorum of etcd's members).
    At(i64),
    /// The key was changed meanwhile; etcd is at this revision now.
    Conflict(i64),
}

/// Keys read per request of a long listing.
const PAGE: usize = 2000;

/// A client of one etcd cluster. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Etcd {
    http: reqwest::Client,
    endpoints: Arc<[String]>,
    /// The endpoint that last answered, tried first.
    preferred: Arc<AtomicUsize>,
    credentials: Option<(String, String)>,
    token: Arc<Mutex<Option<String>>>,
}

/// A request that found nothing at an endpoint within this is tried at the next, so that a
/// frozen member costs a request this much. A second round over every endpoint waits longer
/// (`SLOW_TIMEOUT`), for an etcd that is only slow.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(400);
const SLOW_TIMEOUT: Duration = Duration::from_secs(2);

impl Etcd {
    pub fn new(config: &EtcdConfig) -> Result<Self, String> {
        if config.endpoints.is_empty() {
            return Err("store.endpoints: at least one etcd client URL is needed".into());
        }
        // Straight to etcd: a proxy set in the environment for other tools must not sit
        // between the set and its store.
        let mut http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(30));
        if let Some(ca) = &config.ca_file {
            let pem = std::fs::read(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| e.to_string())?;
            http = http.add_root_certificate(cert);
        }
        if let (Some(cert), Some(key)) = (&config.cert_file, &config.key_file) {
            let mut pem = std::fs::read(cert).map_err(|e| format!("{}: {e}", cert.display()))?;
            pem.extend(std::fs::read(key).map_err(|e| format!("{}: {e}", key.display()))?);
            let identity = reqwest::Identity::from_pem(&pem).map_err(|e| e.to_string())?;
            http = http.identity(identity);
        }
        let endpoints = config
            .endpoints
            .iter()
            .map(|e| e.trim_end_matches('/').to_owned())
            .collect();
        Ok(Self {
            http: http.build().map_err(|e| e.to_string())?,
            endpoints,
            preferred: Arc::default(),
            credentials: config.username.clone().zip(config.password.clone()),
            token: Arc::default(),
        })
    }

    /// One unary call, at the preferred endpoint first, then the others: an endpoint that does
    /// not answer in time, or answers that it cannot serve now (no leader, too many requests,
    /// any 5xx), is left for the next. Every endpoint failing, a second round waits longer.
    async fn call(&self, path: &str, body: &Value) -> Result<Value, EtcdError> {
        let mut last = String::new();
        let mut token_renewed = false;
        for timeout in [REQUEST_TIMEOUT, SLOW_TIMEOUT] {
            let first = self.preferred.load(Ordering::Relaxed);
            let mut i = 0;
            while i < self.endpoints.len() {
                let at = (first + i) % self.endpoints.len();
                i += 1;
                let request = self.request(at, path).await?.body(body.to_string());
                let response = match request.timeout(timeout).send().await {
                    Ok(r) => r,
                    Err(e) => {
                        last = format!("{}: {e}", self.endpoints[at]);
                        continue;
                    }
                };
                let status = response.status();
                let value = match tokio::time::timeout(timeout, json_of(response)).await {
                    Ok(Ok(value)) => value,
                    Ok(Err(e)) => {
                        last = format!("{}: {e}", self.endpoints[at]);
                        continue;
                    }
                    Err(_) => {
                        last = format!("{}: no answer within {timeout:?}", self.endpoints[at]);
                        continue;
                    }
                };
                if status.is_success() {
                    self.preferred.store(at, Ordering::Relaxed);
                    return Ok(value);
                }
                let message = error_message(&value);
                if !token_renewed && self.credentials.is_some() && message.contains("token") {
                    *self.token.lock().unwrap_or_else(|e| e.into_inner()) = None;
                    token_renewed = true;
                    i -= 1;
                    continue;
                }
                if status.is_server_error() || status.as_u16() == 429 {
                    last = format!("{}: {status}: {message}", self.endpoints[at]);
                    continue;
                }
                self.preferred.store(at, Ordering::Relaxed);
                return Err(EtcdError::Refused(message));
            }
        }
        Err(EtcdError::Unreachable(last))
    }

    /// Endpoint `at`'s URL.
    pub fn endpoint(&self, at: usize) -> &str {
        &self.endpoints[at % self.endpoints.len()]
    }

    /// The endpoint requests go to first: the one that last answered.
    pub fn preferred(&self) -> usize {
        self.preferred.load(Ordering::Relaxed) % self.endpoints.len()
    }

    /// A POST to endpoint `at`, with the auth token if etcd wants one.
    async fn request(&self, at: usize, path: &str) -> Result<reqwest::RequestBuilder, EtcdError> {
        let url = format!("{}{path}", self.endpoints[at]);
        // A member cut off from its cluster's leader refuses rather than answers from what it
        // last knew (etcd's gateway passes this on as the gRPC `hasleader` requirement).
        let mut request = self
            .http
            .post(url)
            .header("Grpc-Metadata-hasleader", "true");
        if let Some(token) = self.token(at).await? {
            request = request.header("Authorization", token);
        }
        Ok(request)
    }

    /// The auth token, asked for once and again when etcd says it expired.
    async fn token(&self, at: usize) -> Result<Option<String>, EtcdError> {
        let Some((name, password)) = &self.credentials else {
            return Ok(None);
        };
        if let Some(token) = self.token.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Ok(Some(token));
        }
        let url = format!("{}/v3/auth/authenticate", self.endpoints[at]);
        let body = json!({ "name": name, "password": password });
        let response = self
            .http
            .post(url)
            .body(body.to_string())
            .timeout(REQUEST_TIMEOUT);
        let response = response
            .send()
            .await
            .map_err(|e| EtcdError::Unreachable(e.to_string()))?;
        let value = json_of(response).await?;
        let token = value["token"]
            .as_str()
            .ok_or_else(|| EtcdError::Refused(error_message(&value)))?
            .to_owned();
        *self.token.lock().unwrap_or_else(|e| e.into_inner()) = Some(token.clone());
        Ok(Some(token))
    }

    /// Every key under `prefix` (`keys_only`: without values), or only those changed after
    /// `after` (their values; deletions do not show: compare a keys-only listing).
    pub async fn list(
        &self,
        prefix: &str,
        keys_only: bool,
        after: i64,
    ) -> Result<Listing, EtcdError> {
        let mut body = json!({
            "key": BASE64.encode(prefix),
            "range_end": BASE64.encode(prefix_end(prefix)),
            "keys_only": keys_only,
        });
        if after > 0 {
            body["min_mod_revision"] = json!((after + 1).to_string());
        }
        let value = self.call("/v3/kv/range", &body).await?;
        let kvs = value["kvs"].as_array().map_or(&[][..], Vec::as_slice);
        Ok(Listing {
            revision: int(&value["header"]["revision"]),
            cluster_id: value["header"]["cluster_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            kvs: kvs.iter().map(kv).collect::<Result<_, _>>()?,
        })
    }

    /// `key` as etcd holds it now, if it exists, and etcd's revision.
    pub async fn get(&self, key: &str) -> Result<(Option<Kv>, i64), EtcdError> {
        let body = json!({ "key": BASE64.encode(key) });
        let value = self.call("/v3/kv/range", &body).await?;
        let kvs = value["kvs"].as_array().map_or(&[][..], Vec::as_slice);
        let revision = int(&value["header"]["revision"]);
        Ok((kvs.first().map(kv).transpose()?, revision))
    }

    /// Every key under `prefix` with its value, as etcd held them at `revision`, read in
    /// pages (each request stays small and quick whatever the zone's size).
    pub async fn list_at(&self, prefix: &str, revision: i64) -> Result<Vec<Kv>, EtcdError> {
        let mut all = Vec::new();
        let mut from = prefix.as_bytes().to_vec();
        loop {
            let body = json!({
                "key": BASE64.encode(&from),
                "range_end": BASE64.encode(prefix_end(prefix)),
                "revision": revision.to_string(),
                "limit": PAGE.to_string(),
            });
            let value = self.call("/v3/kv/range", &body).await?;
            let kvs = value["kvs"].as_array().map_or(&[][..], Vec::as_slice);
            for value in kvs {
                all.push(kv(value)?);
            }
            match (value["more"].as_bool(), all.last()) {
                (Some(true), Some(last)) => {
                    from = last.key.as_bytes().to_vec();
                    from.push(0);
                }
                _ => return Ok(all),
            }
        }
    }

    /// The revision `key` was last written at, if it exists (a write's marker: the revision
    /// the write committed at).
    pub async fn revision_of(&self, key: &str) -> Result<Option<i64>, EtcdError> {
        let body = json!({ "key": BASE64.encode(key) });
        let value = self.call("/v3/kv/range", &body).await?;
        let kvs = value["kvs"].as_array().map_or(&[][..], Vec::as_slice);
        Ok(kvs.first().map(|kv| int(&kv["mod_revision"])))
    }

    /// Writes `value` at `key` whatever is there; the revision it was committed at.
    pub async fn put(&self, key: &str, value: &[u8], lease: i64) -> Result<i64, EtcdError> {
        let body = json!({ "key": BASE64.encode(key), "value": BASE64.encode(value), "lease": lease.to_string() });
        let value = self.call("/v3/kv/put", &body).await?;
        Ok(int(&value["header"]["revision"]))
    }

    /// Writes every one of `kvs` in one transaction (at most 128: etcd's limit per txn).
    pub async fn put_all(&self, kvs: &[(String, Vec<u8>)], lease: i64) -> Result<i64, EtcdError> {
        let ops: Vec<Value> = kvs
            .iter()
            .map(|(k, v)| json!({ "request_put": { "key": BASE64.encode(k), "value": BASE64.encode(v), "lease": lease.to_string() } }))
            .collect();
        let value = self.call("/v3/kv/txn", &json!({ "success": ops })).await?;
        Ok(int(&value["header"]["revision"]))
    }

    /// Deletes `key`; the revision and whether there was one.
    pub async fn delete(&self, key: &str) -> Result<(i64, bool), EtcdError> {
        let body = json!({ "key": BASE64.encode(key) });
        let value = self.call("/v3/kv/deleterange", &body).await?;
        Ok((
            int(&value["header"]["revision"]),
            int(&value["deleted"]) > 0,
        ))
    }

    /// Drops the history before `revision` (etcd keeps only each key's value from then on);
    /// a revision already compacted is no error.
    pub async fn compact(&self, revision: i64) -> Result<(), EtcdError> {
        let body = json!({ "revision": revision.to_string() });
        match self.call("/v3/kv/compaction", &body).await {
            Err(EtcdError::Refused(m)) if m.contains("compacted") => Ok(()),
            other => other.map(drop),
        }
    }

    /// A new lease of `ttl` seconds: its ID.
    pub async fn grant(&self, ttl: u64) -> Result<i64, EtcdError> {
        let value = self
            .call("/v3/lease/grant", &json!({ "TTL": ttl.to_string() }))
            .await?;
        match int(&value["ID"]) {
            0 => Err(EtcdError::Refused(error_message(&value))),
            id => Ok(id),
        }
    }

    /// Renews lease `id`: `false` if it has expired (its keys are gone).
    pub async fn keep_alive(&self, id: i64) -> Result<bool, EtcdError> {
        let value = self
            .call("/v3/lease/keepalive", &json!({ "ID": id.to_string() }))
            .await?;
        Ok(int(&value["result"]["TTL"]) > 0)
    }

    /// Ends lease `id` now: its keys are deleted.
    pub async fn revoke(&self, id: i64) -> Result<(), EtcdError> {
        self.call("/v3/lease/revoke", &json!({ "ID": id.to_string() }))
            .await
            .map(drop)
    }

    /// The changes under `prefix` from revision `from` on, as they are committed.
    pub async fn watch(&self, prefix: &str, from: i64) -> Result<Watch, EtcdError> {
        let body = json!({ "create_request": {
            "key": BASE64.encode(prefix),
            "range_end": BASE64.encode(prefix_end(prefix)),
            "start_revision": from.to_string(),
        }});
        let at = self.preferred.load(Ordering::Relaxed) % self.endpoints.len();
        let request = self.request(at, "/v3/watch").await?.body(body.to_string());
        let response = request
            .send()
            .await
            .map_err(|e| EtcdError::Unreachable(e.to_string()))?;
        if !response.status().is_success() {
            let _ = self.token.lock().map(|mut t| t.take());
            return Err(EtcdError::Refused(format!("watch: {}", response.status())));
        }
        Ok(Watch::new(response))
    }
}

/// A response's body as JSON.
async fn json_of(response: reqwest::Response) -> Result<Value, EtcdError> {
    let body = response
        .bytes()
        .await
        .map_err(|e| EtcdError::Unreachable(e.to_string()))?;
    serde_json::from_slice(&body).map_err(|e| EtcdError::Refused(format!("not JSON: {e}")))
}

/// The end of the range of every key starting with `prefix` (etcd's `range_end`).
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// A 64-bit number as the gateway writes it (a string), absent as 0.
fn int(value: &Value) -> i64 {
    match value {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

fn error_message(value: &Value) -> String {
    let error = &value["error"];
    let message = value["message"]
        .as_str()
        .or(error["message"].as_str())
        .or(error.as_str());
    message.map_or_else(|| value.to_string(), str::to_owned)
}

fn decode(value: &Value) -> Result<Vec<u8>, EtcdError> {
    BASE64
        .decode(value.as_str().unwrap_or_default())
        .map_err(|e| EtcdError::Refused(format!("a key or value not in base64: {e}")))
}

fn kv(value: &Value) -> Result<Kv, EtcdError> {
    let key = String::from_utf8(decode(&value["key"])?)
        .map_err(|_| EtcdError::Refused("a key not in UTF-8".into()))?;
    Ok(Kv {
        key,
        value: decode(&value["value"])?,
        mod_revision: int(&value["mod_revision"]),
        lease: int(&value["lease"]),
    })
}

#[cfg(test)]
mod tests {
    use super::watch::event;
    use super::*;

    #[test]
    fn a_prefix_ends_at_its_last_byte_plus_one() {
        assert_eq!(prefix_end("/m/"), b"/m0".to_vec());
        assert_eq!(prefix_end(""), vec![0]);
    }

    #[test]
    fn gateway_messages_are_read() {
        let line = r#"{"result":{"header":{"revision":"7"},"events":[{"kv":{"key":"L20vYQ==","mod_revision":"7","value":"aGk="}},{"type":"DELETE","kv":{"key":"L20vYg==","mod_revision":"7"}}]}}"#;
        let value: Value = serde_json::from_str(line).unwrap();
        let events: Vec<Event> = value["result"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| event(e).unwrap())
            .collect();
        assert_eq!(
            events,
            vec![
                Event::Put(Kv {
                    key: "/m/a".into(),
                    value: b"hi".to_vec(),
                    mod_revision: 7,
                    lease: 0
                }),
                Event::Delete {
                    key: "/m/b".into(),
                    mod_revision: 7
                }
            ]
        );
        assert_eq!(int(&value["result"]["header"]["revision"]), 7);
    }
}
