//! A small blocking etcd v3 client: the few calls a fence needs, through
//! etcd's JSON gRPC gateway (`/v3/...`, served by etcd 3.4 and later on
//! its client URLs) over plain HTTP.
//!
//! Why the gateway and not gRPC: it needs no async runtime, no generated
//! code and no `protoc`; every request is one short HTTP exchange with
//! its own time limit, which is what a renewal loop that must never
//! block past its deadline wants. Keys and values are base64 in the
//! JSON, 64-bit integers are strings.
//!
//! Only `http://` endpoints are supported (no TLS, no authentication).

use std::fmt;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::{json, Value};

/// An error talking to etcd.
#[derive(Debug)]
pub enum EtcdError {
    /// No endpoint answered (connection refused, timeout, DNS...).
    Unreachable(String),
    /// An endpoint answered with an error or something unexpected.
    Protocol(String),
}

impl fmt::Display for EtcdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EtcdError::Unreachable(m) => write!(f, "etcd unreachable: {m}"),
            EtcdError::Protocol(m) => write!(f, "etcd error: {m}"),
        }
    }
}

impl std::error::Error for EtcdError {}

/// A key that exists already: who holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The key's value, as the holder wrote it.
    pub value: String,
    /// The key's create revision (the holder's fencing token).
    pub create_revision: i64,
    /// The holder's lease (0: none).
    pub lease: i64,
    /// Seconds left on that lease, if it could be read (`None`: unknown or
    /// no lease; `Some(-1)`: already expired).
    pub ttl_remaining: Option<i64>,
}

/// The outcome of [`Client::create_with_lease`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// The key was absent and is now ours; the revision that created it
    /// is the fencing token (monotonic over acquisitions).
    Ok { revision: i64 },
    /// The key exists.
    Held(Holder),
}

/// The most keys [`Client::get_prefix`] asks etcd for (its request's
/// `limit`).
pub const PREFIX_MAX_KEYS: usize = 64;

/// The end of etcd's range for every key starting with `prefix` (etcd's
/// `GetPrefixRangeEnd`): trailing `0xff` bytes dropped, then the last byte
/// plus one; a prefix of `0xff` bytes only (or empty) gives `"\0"`, which
/// etcd reads as "to the end of the key space".
pub fn prefix_range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// A client for one or more etcd endpoints (`http://host:port`), tried
/// in order.
#[derive(Debug, Clone)]
pub struct Client {
    endpoints: Vec<String>,
    agent: ureq::Agent,
}

/// The state of a lease after a keep-alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewed {
    /// Renewed: this many seconds from now at etcd.
    Ttl(i64),
    /// The lease no longer exists (expired or revoked).
    Gone,
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// A base64 field of a key-value (`key`, `value`) as text; empty when
/// missing.
fn decode(kv: &Value, name: &str) -> String {
    kv.get(name)
        .and_then(Value::as_str)
        .and_then(|s| B64.decode(s).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The holder a key-value of a range answer names (its lease's time left
/// not read: [`Client::with_ttl`]).
fn holder_of(kv: &Value) -> Holder {
    Holder {
        value: decode(kv, "value"),
        create_revision: field_int(kv, "create_revision"),
        lease: field_int(kv, "lease"),
        ttl_remaining: None,
    }
}

fn field_int(v: &Value, name: &str) -> i64 {
    // proto3 JSON leaves out fields at their default (0).
    v.get(name).and_then(int).unwrap_or(0)
}

impl Client {
    /// A client for a comma-separated list of endpoints
    /// (`http://127.0.0.1:2379,http://10.0.0.2:2379`; a bare `host:port`
    /// means `http://host:port`).
    pub fn new(endpoints: &str) -> Result<Client, EtcdError> {
        let endpoints: Vec<String> = endpoints
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|e| {
                let e = e.trim_end_matches('/');
                if e.contains("://") {
                    e.to_string()
                } else {
                    format!("http://{e}")
                }
            })
            .collect();
        if endpoints.is_empty() {
            return Err(EtcdError::Protocol("no endpoint given".into()));
        }
        if let Some(e) = endpoints.iter().find(|e| !e.starts_with("http://")) {
            return Err(EtcdError::Protocol(format!(
                "{e}: only http:// endpoints are supported"
            )));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_idle_connections(0)
            .build()
            .into();
        Ok(Client { endpoints, agent })
    }

    /// The endpoints, normalised.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// POST `body` to `path` on the first endpoint that answers, each
    /// attempt within `limit` overall (a short call never waits longer).
    fn call(&self, path: &str, body: &Value, limit: Duration) -> Result<Value, EtcdError> {
        let start = std::time::Instant::now();
        let mut errors = Vec::new();
        for ep in &self.endpoints {
            let left = match limit.checked_sub(start.elapsed()) {
                Some(d) if !d.is_zero() => d,
                _ => break,
            };
            let url = format!("{ep}{path}");
            let sent = self
                .agent
                .post(&url)
                .config()
                .timeout_global(Some(left))
                .build()
                .send_json(body);
            let mut resp = match sent {
                Ok(r) => r,
                Err(e) => {
                    errors.push(format!("{ep}: {e}"));
                    continue;
                }
            };
            let status = resp.status().as_u16();
            let text = match resp.body_mut().read_to_string() {
                Ok(t) => t,
                Err(e) => {
                    errors.push(format!("{ep}: {e}"));
                    continue;
                }
            };
            // A streaming call (keepalive) answers with one JSON object a
            // line; the first is ours.
            let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            let v: Value = serde_json::from_str(first).map_err(|e| {
                EtcdError::Protocol(format!("{ep}{path}: HTTP {status}: {e}: {first:.200}"))
            })?;
            if let Some(err) = v.get("error") {
                return Err(EtcdError::Protocol(format!("{ep}{path}: {err}")));
            }
            if status != 200 {
                return Err(EtcdError::Protocol(format!(
                    "{ep}{path}: HTTP {status}: {first:.200}"
                )));
            }
            return Ok(v);
        }
        if errors.is_empty() {
            errors.push(format!("no answer within {} ms", limit.as_millis()));
        }
        Err(EtcdError::Unreachable(errors.join("; ")))
    }

    /// Grant a lease of `ttl` seconds; its ID.
    pub fn grant(&self, ttl: i64, limit: Duration) -> Result<i64, EtcdError> {
        let v = self.call("/v3/lease/grant", &json!({ "TTL": ttl.to_string() }), limit)?;
        let id = field_int(&v, "ID");
        if id == 0 {
            return Err(EtcdError::Protocol(format!("lease grant: no ID in {v}")));
        }
        Ok(id)
    }

    /// Create `key` = `value` bound to `lease`, only if `key` is absent
    /// (its create revision is 0); else say who holds it.
    pub fn create_with_lease(
        &self,
        key: &str,
        value: &str,
        lease: i64,
        limit: Duration,
    ) -> Result<Created, EtcdError> {
        let start = std::time::Instant::now();
        let k = B64.encode(key);
        let body = json!({
            "compare": [{
                "key": k, "result": "EQUAL", "target": "CREATE", "create_revision": "0"
            }],
            "success": [{ "request_put": {
                "key": k, "value": B64.encode(value), "lease": lease.to_string()
            }}],
            "failure": [{ "request_range": { "key": k } }],
        });
        let v = self.call("/v3/kv/txn", &body, limit)?;
        if v.get("succeeded").and_then(Value::as_bool) == Some(true) {
            let revision = v
                .get("header")
                .map(|h| field_int(h, "revision"))
                .unwrap_or(0);
            return Ok(Created::Ok { revision });
        }
        let kv = v
            .pointer("/responses/0/response_range/kvs/0")
            .ok_or_else(|| EtcdError::Protocol(format!("txn failed with no holder: {v}")))?;
        Ok(Created::Held(self.with_ttl(holder_of(kv), start, limit)))
    }

    /// Who holds `key`, if anyone (with its lease's remaining time when
    /// it can be read within `limit`).
    pub fn get(&self, key: &str, limit: Duration) -> Result<Option<Holder>, EtcdError> {
        let start = std::time::Instant::now();
        let v = self.call("/v3/kv/range", &json!({ "key": B64.encode(key) }), limit)?;
        Ok(v.pointer("/kvs/0")
            .map(|kv| self.with_ttl(holder_of(kv), start, limit)))
    }

    /// `h` with its lease's time left, when it has a lease and that can be
    /// read within what is left of `limit` since `start`.
    fn with_ttl(&self, mut h: Holder, start: std::time::Instant, limit: Duration) -> Holder {
        let left = limit.saturating_sub(start.elapsed());
        if h.lease != 0 && !left.is_zero() {
            h.ttl_remaining = self.time_to_live(h.lease, left).ok();
        }
        h
    }

    /// Every key under `prefix` with its holder, in key order, in one
    /// request: etcd's range from `prefix` to [`prefix_range_end`]`(prefix)`.
    /// The lease's time left is not read (`ttl_remaining` is `None`):
    /// ask [`Client::time_to_live`] for the holders that matter, so that a
    /// range over many keys stays one request.
    ///
    /// Bounded: the request asks for at most [`PREFIX_MAX_KEYS`] keys (a
    /// fence's prefix `/interlock/SYSID/` holds one key per name a cluster
    /// and its replicas are fenced under: a few). More keys than that is
    /// an error ([`EtcdError::Protocol`], with etcd's count), never a
    /// silently truncated answer.
    pub fn get_prefix(
        &self,
        prefix: &str,
        limit: Duration,
    ) -> Result<Vec<(String, Holder)>, EtcdError> {
        let body = json!({
            "key": B64.encode(prefix),
            "range_end": B64.encode(prefix_range_end(prefix.as_bytes())),
            "limit": PREFIX_MAX_KEYS.to_string(),
        });
        let v = self.call("/v3/kv/range", &body, limit)?;
        if v.get("more").and_then(Value::as_bool) == Some(true) {
            return Err(EtcdError::Protocol(format!(
                "more than {PREFIX_MAX_KEYS} keys under {prefix} ({} in all)",
                field_int(&v, "count")
            )));
        }
        let kvs = v.get("kvs").and_then(Value::as_array);
        Ok(kvs
            .into_iter()
            .flatten()
            .map(|kv| (decode(kv, "key"), holder_of(kv)))
            .collect())
    }

    /// Seconds left on `lease` (-1: it has expired or does not exist).
    pub fn time_to_live(&self, lease: i64, limit: Duration) -> Result<i64, EtcdError> {
        let v = self.call(
            "/v3/lease/timetolive",
            &json!({ "ID": lease.to_string() }),
            limit,
        )?;
        Ok(v.get("TTL").and_then(int).unwrap_or(0))
    }

    /// Renew `lease` once.
    pub fn keep_alive_once(&self, lease: i64, limit: Duration) -> Result<Renewed, EtcdError> {
        let v = self.call(
            "/v3/lease/keepalive",
            &json!({ "ID": lease.to_string() }),
            limit,
        )?;
        let r = v.get("result").unwrap_or(&v);
        let ttl = field_int(r, "TTL");
        Ok(if ttl > 0 {
            Renewed::Ttl(ttl)
        } else {
            Renewed::Gone
        })
    }

    /// The lease `key` is bound to (0: none), or `None` when the key does
    /// not exist. A linearizable read (etcd's default for a range): it is
    /// answered only through a leader that still has its quorum (raft's
    /// ReadIndex), unlike a lease renewal, which etcd's leader grants by
    /// itself (`lessor.Renew`, server/lease/lessor.go) and so may grant
    /// for a while after it was cut off from the other members.
    pub fn key_lease(&self, key: &str, limit: Duration) -> Result<Option<i64>, EtcdError> {
        let v = self.call(
            "/v3/kv/range",
            &json!({ "key": B64.encode(key), "limit": "1" }),
            limit,
        )?;
        Ok(v.pointer("/kvs/0").map(|kv| field_int(kv, "lease")))
    }

    /// Revoke `lease` (and so delete the keys bound to it).
    pub fn revoke(&self, lease: i64, limit: Duration) -> Result<(), EtcdError> {
        self.call(
            "/v3/lease/revoke",
            &json!({ "ID": lease.to_string() }),
            limit,
        )
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_range_end_is_etcds() {
        assert_eq!(prefix_range_end(b"/interlock/7/"), b"/interlock/70");
        assert_eq!(prefix_range_end(b"a"), b"b");
        assert_eq!(prefix_range_end(b"a\xff"), b"b");
        assert_eq!(prefix_range_end(b"a\xfe\xff\xff"), b"a\xff");
        assert_eq!(prefix_range_end(b"\xff\xff"), b"\0");
        assert_eq!(prefix_range_end(b"\xff"), b"\0");
        assert_eq!(prefix_range_end(b""), b"\0");
    }
}
