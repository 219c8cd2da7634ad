//! A watch: one long HTTP response of newline-separated JSON messages, each a batch of
//! committed changes.

use serde_json::Value;

use super::{EtcdError, Event, error_message, int, kv};

/// A watch's stream of changes.
#[derive(Debug)]
pub struct Watch {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

impl Watch {
    pub(super) fn new(response: reqwest::Response) -> Self {
        Self {
            response,
            buffer: Vec::new(),
        }
    }

    /// The next committed changes, with the revision they bring etcd to; `Err` when the stream
    /// ends (etcd went away: watch again from the next revision).
    pub async fn next(&mut self) -> Result<(i64, Vec<Event>), EtcdError> {
        loop {
            if let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let value: Value = serde_json::from_slice(&line)
                    .map_err(|e| EtcdError::Refused(format!("watch: {e}")))?;
                if !value["error"].is_null() {
                    return Err(EtcdError::Refused(error_message(&value)));
                }
                let result = &value["result"];
                let compacted = int(&result["compact_revision"]);
                if compacted > 0 {
                    return Err(EtcdError::Compacted(compacted));
                }
                if result["canceled"].as_bool() == Some(true) {
                    return Err(EtcdError::Refused("the watch was cancelled".into()));
                }
                let events = result["events"].as_array().map_or(&[][..], Vec::as_slice);
                let events = events.iter().map(event).collect::<Result<_, _>>()?;
                return Ok((int(&result["header"]["revision"]), events));
            }
            match self.response.chunk().await {
                Ok(Some(chunk)) => self.buffer.extend_from_slice(&chunk),
                Ok(None) => return Err(EtcdError::Unreachable("the watch ended".into())),
                Err(e) => return Err(EtcdError::Unreachable(e.to_string())),
            }
        }
    }
}

pub(super) fn event(value: &Value) -> Result<Event, EtcdError> {
    let kv = kv(&value["kv"])?;
    Ok(match value["type"].as_str() {
        Some("DELETE") => Event::Delete {
            key: kv.key,
            mod_revision: kv.mod_revision,
        },
        _ => Event::Put(kv),
    })
}
