//! The query log: one JSON line per sampled query (time, client, ECS, name, type, rcode, the
//! datacenter chosen and the answers). Off by default. It cannot slow the server down: a query
//! thread skips all but one query in `sample` (one relaxed atomic add), drops lines over
//! `max_lines_per_second`, formats the kept ones, and hands them to a writer thread through a
//! bounded queue without waiting (a full queue drops the line). Drops are counted in the
//! metrics.

use std::io::Write;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{SystemTime, UNIX_EPOCH};

use hickory_proto::op::Message;
use serde_json::json;

use super::respond::{Outcome, Transport};
use crate::config::QueryLogConfig;
use crate::metrics;

/// Lines waiting for the writer at most.
const QUEUE: usize = 4096;

#[derive(Debug)]
pub struct QueryLog {
    sample: u64,
    max_per_second: u32,
    /// The second the rate limit counts in, and how many lines it has had.
    window: AtomicU64,
    in_window: AtomicU32,
    /// Queries offered so far: exactly one in `sample` is kept, across all threads.
    seen: AtomicU64,
    tx: SyncSender<String>,
}

impl QueryLog {
    /// Opens the destination and starts the writer thread.
    pub fn start(config: &QueryLogConfig) -> std::io::Result<Self> {
        let out: Box<dyn Write + Send> = match config.path.as_os_str() == "stdout" {
            true => Box::new(std::io::stdout()),
            false => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&config.path)
                    .map_err(|e| {
                        std::io::Error::new(
                            e.kind(),
                            format!("query log {}: {e}", config.path.display()),
                        )
                    })?,
            ),
        };
        let (tx, rx) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("query-log".into())
            .spawn(move || write_lines(rx, out))?;
        Ok(Self {
            sample: config.sample.max(1),
            max_per_second: config.max_lines_per_second,
            window: AtomicU64::new(0),
            in_window: AtomicU32::new(0),
            seen: AtomicU64::new(0),
            tx,
        })
    }

    /// Considers one answered query for the log.
    #[inline(never)]
    pub fn offer(&self, outcome: &Outcome<'_>, source: IpAddr, transport: Transport, reply: &[u8]) {
        let n = self.seen.fetch_add(1, Relaxed) + 1;
        if !n.is_multiple_of(self.sample) {
            return;
        }
        if !self.admit() {
            metrics::global().record_query_log(false);
            return;
        }
        let line = format_line(outcome, source, transport, reply, SystemTime::now());
        let written = match self.tx.try_send(line) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        };
        metrics::global().record_query_log(written);
    }

    /// The per-second rate limit (approximate under races, never far over).
    fn admit(&self) -> bool {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if self.window.swap(now, Relaxed) != now {
            self.in_window.store(0, Relaxed);
        }
        self.in_window.fetch_add(1, Relaxed) < self.max_per_second
    }
}

fn write_lines(rx: Receiver<String>, out: Box<dyn Write + Send>) {
    let mut out = std::io::BufWriter::new(out);
    while let Ok(line) = rx.recv() {
        let _ = writeln!(out, "{line}");
        // Flush whenever the queue is empty: lines show up promptly, bursts are batched.
        while let Ok(line) = rx.try_recv() {
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
    }
}

/// One log line. The question, code and answers are read back from the reply itself, so the
/// log shows exactly what was sent.
fn format_line(
    outcome: &Outcome<'_>,
    source: IpAddr,
    transport: Transport,
    reply: &[u8],
    now: SystemTime,
) -> String {
    let message = Message::from_vec(reply).ok();
    let question = message.as_ref().and_then(|m| m.queries.first());
    let answers: Vec<String> = message
        .as_ref()
        .map(|m| {
            // The answer's data as presentation text; the signatures over it are not answers.
            m.answers
                .iter()
                .filter(|r| r.record_type() != hickory_proto::rr::RecordType::RRSIG)
                .map(crate::presentation::record_text)
                .collect()
        })
        .unwrap_or_default();
    let served = outcome.served.as_ref();
    json!({
        "time": crate::civil::rfc3339(now),
        "client": source,
        "ecs": outcome.subnet.map(|(addr, prefix)| format!("{addr}/{prefix}")),
        "protocol": transport.name(),
        "name": question.map(|q| q.name().to_ascii()),
        "type": question.map(|q| q.query_type().to_string()),
        "rcode": metrics::rcode_name(outcome.rcode),
        "zone": outcome.zone.map(|z| z.origin.to_ascii()),
        "policy": served.map(|s| s.set.policy.name()),
        "datacenter": served.and_then(|s| s.datacenter_name()),
        "answers": answers,
    })
    .to_string()
}
