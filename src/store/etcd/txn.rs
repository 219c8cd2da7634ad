//! Conditional writes: transactions of several operations behind compares, made exactly once
//! with a marker (see [`Marker`]).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use super::{Etcd, EtcdError, Marker, Written, int, prefix_end};

/// One operation of a transaction.
#[derive(Debug, Clone)]
pub enum Op {
    Put(String, Vec<u8>),
    Delete(String),
    /// Every key under the prefix.
    DeletePrefix(String),
}

impl Op {
    fn to_json(&self) -> Value {
        match self {
            Op::Put(key, value) => {
                json!({ "request_put": { "key": BASE64.encode(key), "value": BASE64.encode(value) } })
            }
            Op::Delete(key) => json!({ "request_delete_range": { "key": BASE64.encode(key) } }),
            Op::DeletePrefix(prefix) => json!({ "request_delete_range": {
                "key": BASE64.encode(prefix),
                "range_end": BASE64.encode(prefix_end(prefix)),
            }}),
        }
    }
}

/// etcd's default limit of operations in one transaction (`--max-txn-ops`).
pub const MAX_TXN_OPS: usize = 128;

impl Etcd {
    /// Writes `value` at `key` (`None`: deletes it) if the key is still at `revision` (0: does
    /// not exist); `lease`: attached to that lease (0: none). With `marker`, exactly once: an
    /// answer lost after the request was sent is settled by the marker.
    pub async fn write_if(
        &self,
        key: &str,
        value: Option<&[u8]>,
        revision: i64,
        lease: i64,
        marker: Option<Marker<'_>>,
    ) -> Result<Written, EtcdError> {
        let key64 = BASE64.encode(key);
        let op = match value {
            Some(v) => {
                json!({ "request_put": { "key": key64, "value": BASE64.encode(v), "lease": lease.to_string() } })
            }
            None => json!({ "request_delete_range": { "key": key64 } }),
        };
        let compare = json!({ "key": key64, "target": "MOD", "result": "EQUAL", "mod_revision": revision.to_string() });
        self.txn_once(vec![compare], vec![op], marker).await
    }

    /// `ops` in one transaction if each of `guards` (a key and its revision, 0: does not
    /// exist) still holds, exactly once with `marker` (see [`Etcd::write_if`]).
    pub async fn write_all_if(
        &self,
        guards: &[(&str, i64)],
        ops: &[Op],
        marker: Option<Marker<'_>>,
    ) -> Result<Written, EtcdError> {
        let compares = guards
            .iter()
            .map(|(key, revision)| json!({ "key": BASE64.encode(key), "target": "MOD", "result": "EQUAL", "mod_revision": revision.to_string() }))
            .collect();
        self.txn_once(compares, ops.iter().map(Op::to_json).collect(), marker)
            .await
    }

    /// Deletes `key` if it exists, exactly once with `marker`: `Conflict` if it did not.
    pub async fn delete_once(&self, key: &str, marker: Marker<'_>) -> Result<Written, EtcdError> {
        let key64 = BASE64.encode(key);
        let compare =
            json!({ "key": key64, "target": "VERSION", "result": "GREATER", "version": "0" });
        let op = json!({ "request_delete_range": { "key": key64 } });
        self.txn_once(vec![compare], vec![op], Some(marker)).await
    }

    /// `success` if every `compare` holds, with `marker` put in the same transaction.
    async fn txn_once(
        &self,
        compare: Vec<Value>,
        mut success: Vec<Value>,
        marker: Option<Marker<'_>>,
    ) -> Result<Written, EtcdError> {
        if let Some(m) = marker {
            success.push(json!({ "request_put": { "key": BASE64.encode(m.key), "value": "", "lease": m.lease.to_string() } }));
        }
        let body = json!({ "compare": compare, "success": success });
        // A lost answer: the same transaction again (at most one copy passes the compare).
        for _ in 0..2 {
            let conflict = match self.call("/v3/kv/txn", &body).await {
                Ok(value) if value["succeeded"].as_bool() == Some(true) => {
                    return Ok(Written::At(int(&value["header"]["revision"])));
                }
                Ok(value) => int(&value["header"]["revision"]),
                Err(EtcdError::Unreachable(why)) if marker.is_some() => {
                    tracing::warn!("etcd: a write's answer was lost ({why}); sending it again");
                    continue;
                }
                Err(error) => return Err(error),
            };
            let Some(marker) = marker else {
                return Ok(Written::Conflict(conflict));
            };
            // The conflict may be with this write's own copy, committed while its answer was
            // lost; if not, no copy can commit any more (the compare fails for good).
            return match self.revision_of(marker.key).await {
                Ok(Some(at)) => Ok(Written::At(at)),
                Ok(None) => Ok(Written::Conflict(conflict)),
                Err(_) => Err(EtcdError::OutcomeUnknown(marker.key.to_owned())),
            };
        }
        let marker = marker.map_or("", |m| m.key);
        Err(EtcdError::OutcomeUnknown(marker.to_owned()))
    }
}
