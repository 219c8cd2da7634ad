//! Running one probe: a TCP connect, or an HTTP(S) request checked for status and body.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::ProbeKey;
use super::spec::CheckKind;

/// `User-Agent` of every HTTP probe.
const USER_AGENT: &str = concat!("meridian-health/", env!("CARGO_PKG_VERSION"));

/// The HTTP client for one check: TLS verification, SNI and timeouts are per check; `source`:
/// the address it connects from.
pub fn client(key: &ProbeKey, source: Option<IpAddr>) -> Result<reqwest::Client, String> {
    let check = &key.check;
    let mut builder = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(check.timeout())
        .pool_max_idle_per_host(0)
        .danger_accept_invalid_certs(!check.verify_tls)
        .local_address(source.filter(|s| s.is_ipv4() == key.addr.is_ipv4()));
    // HTTPS to a name (SNI, certificate name) while connecting to the endpoint's address.
    if check.kind == CheckKind::Https
        && let Some(name) = tls_name(key)
    {
        builder = builder.resolve(name, SocketAddr::new(key.addr, check.port().unwrap_or(443)));
    }
    builder
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// A TCP connection to `addr`, from `source` where it is of the same family.
async fn connect(addr: SocketAddr, source: Option<IpAddr>) -> std::io::Result<()> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    if let Some(source) = source.filter(|s| s.is_ipv4() == addr.is_ipv4()) {
        socket.bind(SocketAddr::new(source, 0))?;
    }
    socket.connect(addr).await.map(drop)
}

fn tls_name(key: &ProbeKey) -> Option<&str> {
    key.check.sni.as_deref().or(key.check.host.as_deref())
}

/// A check that passed: what was seen ("status 200"), and the load it reported where the
/// check reads one.
#[derive(Debug, Clone, PartialEq)]
pub struct Passed {
    pub seen: String,
    pub load: Option<f64>,
}

impl Passed {
    pub fn seen(seen: impl Into<String>) -> Self {
        Self {
            seen: seen.into(),
            load: None,
        }
    }
}

/// Runs the check once (a TCP check from `source`, if given). `Ok` carries what was seen,
/// `Err` why it failed.
pub async fn run(
    key: &ProbeKey,
    client: Option<&reqwest::Client>,
    source: Option<IpAddr>,
) -> Result<Passed, String> {
    let check = &key.check;
    let port = check.port().unwrap_or(0);
    let addr = SocketAddr::new(key.addr, port);
    let timeout = check.timeout();
    if check.kind == CheckKind::Tcp {
        return match tokio::time::timeout(timeout, connect(addr, source)).await {
            Ok(Ok(_)) => Ok(Passed::seen("connected")),
            Ok(Err(e)) => Err(io_reason(&e)),
            Err(_) => Err(timed_out(timeout)),
        };
    }
    let client = client.ok_or("no HTTP client")?;
    let url = match (check.kind, tls_name(key)) {
        (CheckKind::Https, Some(name)) => format!("https://{name}:{port}{}", check.path),
        (CheckKind::Https, None) => format!("https://{addr}{}", check.path),
        _ => format!("http://{addr}{}", check.path),
    };
    let method = reqwest::Method::from_bytes(check.method.as_bytes()).map_err(|e| e.to_string())?;
    let mut request = client.request(method, &url);
    if let Some(host) = &check.host {
        request = request.header(reqwest::header::HOST, host);
    }
    for (name, value) in &check.headers {
        request = request.header(name, value);
    }
    let response = match tokio::time::timeout(timeout, request.send()).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) if e.is_timeout() => return Err(timed_out(timeout)),
        Ok(Err(e)) => return Err(http_reason(&e)),
        Err(_) => return Err(timed_out(timeout)),
    };
    let status = response.status().as_u16();
    if !check.expect.matches(status) {
        return Err(format!("status {status}"));
    }
    let header_load = check.load_header.as_ref().map(|name| {
        let value = response.headers().get(name.as_str());
        value.and_then(|v| v.to_str().ok()?.trim().parse::<f64>().ok())
    });
    let mut passed = Passed::seen(format!("status {status}"));
    if check.body.is_some() || check.load_json.is_some() {
        let body = match tokio::time::timeout(timeout, response.text()).await {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => return Err(http_reason(&e)),
            Err(_) => return Err(timed_out(timeout)),
        };
        if let Some(needle) = &check.body
            && !body.contains(needle.as_str())
        {
            return Err(format!("status {status}, body lacks {needle:?}"));
        }
        passed.load = check.load_json.as_deref().and_then(|f| json_load(&body, f));
    }
    passed.load = passed.load.or(header_load.flatten());
    if (check.load_header.is_some() || check.load_json.is_some()) && passed.load.is_none() {
        passed.seen.push_str(", no load in the response");
    }
    Ok(passed)
}

/// The number at `field` (a name or a JSON pointer) of a JSON body; `None` unless it is a
/// finite number of at least 0.
fn json_load(body: &str, field: &str) -> Option<f64> {
    let json: serde_json::Value = serde_json::from_str(body).ok()?;
    let value = match field.starts_with('/') {
        true => json.pointer(field)?,
        false => json.get(field)?,
    };
    let load = match value {
        serde_json::Value::String(s) => s.trim().parse().ok()?,
        v => v.as_f64()?,
    };
    (load.is_finite() && load >= 0.0).then_some(load)
}

/// The kind of a failure reported by `run`, for the metrics' `reason` label.
pub fn failure_reason(failure: &str) -> &'static str {
    const KINDS: [(&str, &str); 7] = [
        ("timeout", "timeout"),
        ("connection refused", "refused"),
        ("connection reset", "reset"),
        ("body lacks", "body"),
        ("status ", "status"),
        ("certificate", "tls"),
        ("connect", "connect"),
    ];
    let lower = failure.to_ascii_lowercase();
    KINDS
        .iter()
        .find(|(needle, _)| lower.contains(needle))
        .map_or("other", |&(_, kind)| kind)
}

fn timed_out(after: Duration) -> String {
    format!("timeout after {}ms", after.as_millis())
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::ConnectionReset => "connection reset".into(),
        _ => e.to_string(),
    }
}

/// The innermost cause, which says what happened ("Connection refused", a TLS error…).
fn http_reason(e: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = e;
    while let Some(inner) = source.source() {
        source = inner;
    }
    if let Some(io) = source.downcast_ref::<std::io::Error>() {
        return io_reason(io);
    }
    let text = source.to_string();
    match e.is_connect() {
        true => format!("connect: {text}"),
        false => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_are_read_from_json_bodies() {
        let body = r#"{"connections": 17, "stats": {"active": "4.5"}, "bad": -1}"#;
        assert_eq!(json_load(body, "connections"), Some(17.0));
        assert_eq!(json_load(body, "/stats/active"), Some(4.5));
        assert_eq!(json_load(body, "bad"), None);
        assert_eq!(json_load(body, "missing"), None);
        assert_eq!(json_load("not json", "connections"), None);
    }

    #[test]
    fn failures_are_classified() {
        assert_eq!(
            failure_reason(&timed_out(Duration::from_millis(500))),
            "timeout"
        );
        assert_eq!(failure_reason("connection refused"), "refused");
        assert_eq!(failure_reason("status 503"), "status");
        assert_eq!(failure_reason("status 200, body lacks \"ok\""), "body");
        assert_eq!(
            failure_reason("invalid peer certificate: UnknownIssuer"),
            "tls"
        );
        assert_eq!(failure_reason("no route"), "other");
    }
}
