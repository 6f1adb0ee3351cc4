//! The daemon and a real ironic-inspector 12.5 on the same real Ironic
//! (`DISCOVERD_TEST_IRONIC_URL`, `DISCOVERD_TEST_INSPECTOR_URL`, both
//! started by `scripts/test.sh`) get the same sequence of requests, each
//! on nodes enrolled for it, malformed ones included. Status codes, the
//! headers clients read (minimum/maximum version, Content-Type, Location)
//! and the JSON key sets must agree, except the deliberate differences in
//! [`DELIBERATE`] (also listed in README, with the same reasons). The
//! malformed requests never get a 5xx from the daemon and change nothing in
//! its store (its SQLite file is compared before and after).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use ironic_discoverd_e2e::ironic_rest::IronicRest;
use ironic_discoverd_e2e::services::{PlainDaemon, inspector_url, ironic_url};
use ironic_discoverd_e2e::stack::eventually;
use reqwest::Method;
use serde_json::{Value, json};

const TEST: &str = "api_differential";
const VERSION: &str = "X-OpenStack-Ironic-Inspector-API-Version";
const MIN: &str = "X-OpenStack-Ironic-Inspector-API-Minimum-Version";
const MAX: &str = "X-OpenStack-Ironic-Inspector-API-Maximum-Version";
/// A UUID no node and no rule has.
const UNKNOWN: &str = "0b7e4f9a-43c1-4f7e-9d55-2f0c1d2e3a4b";

/// Deliberate differences: (case, what differs, why). README's section
/// "Where we differ from ironic-inspector on purpose" and docs/api.md list
/// them with the same reasons.
const DELIBERATE: &[(&str, &[&str], &str)] = &[
    ("version letters", &["status", "content-type"], NEVER_5XX),
    ("version x.y letters", &["status", "content-type"], NEVER_5XX),
    ("version three parts", &["status", "content-type"], NEVER_5XX),
    ("rule bad JSON", &["status"], NEVER_5XX),
    ("rule not an object", &["status"], NEVER_5XX),
    ("continue bad JSON", &["status"], NEVER_5XX),
    (
        "wrong method",
        &["content-type", "keys"],
        "every error has the JSON error body; the inspector's 405 is an HTML page",
    ),
    (
        "reapply with an oversize body",
        &["status"],
        "every body has a size limit (max_body_size): 413 before it is read; the inspector reads any size",
    ),
    (
        "reapply while waiting",
        &["status"],
        "a reapply that cannot run is a 409 with the reason; the inspector answers 202 and fails in the background",
    ),
];
const NEVER_5XX: &str = "malformed input is a 400 with the JSON error body; the inspector answers 500";

/// One request; `{node}`, `{idle}`, `{name}` and `{twin}` are replaced by
/// each service's own nodes.
struct Case {
    name: &'static str,
    method: Method,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
    /// Malformed: must not change the store.
    malformed: bool,
}

fn case(name: &'static str, method: Method, path: &str) -> Case {
    Case {
        name,
        method,
        path: path.to_owned(),
        headers: Vec::new(),
        body: None,
        malformed: true,
    }
}

impl Case {
    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }
    fn body(mut self, b: impl Into<Vec<u8>>) -> Self {
        self.body = Some(b.into());
        self
    }
    fn valid(mut self) -> Self {
        self.malformed = false;
        self
    }
}

/// The nodes of one service.
struct Nodes {
    /// Under introspection (started by the sequence).
    node: String,
    /// Enrolled, never introspected.
    idle: String,
    /// The Ironic name of `node`.
    name: String,
    /// A name two other nodes share but for case (`x-twin`, `X-TWIN`),
    /// in a third case.
    twin: String,
}

/// What is compared of one answer.
#[derive(Debug, PartialEq)]
struct Seen {
    status: u16,
    min: Option<String>,
    max: Option<String>,
    content_type: Option<String>,
    location: Option<String>,
    keys: Value,
}

/// The shape of a JSON value: objects keep their keys (with the shapes of
/// their values), arrays the merged shape of their items, scalars nothing.
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(a) if a.is_empty() => json!([]),
        Value::Array(a) => {
            let mut merged = serde_json::Map::new();
            for item in a {
                if let Value::Object(o) = shape(item) {
                    merged.extend(o);
                }
            }
            json!([merged])
        }
        _ => Value::Null,
    }
}

/// Above this a body goes to the daemon as a declared length only: it
/// answers 413 from the headers and closes, and a client still writing
/// the body would see the connection reset instead of the answer.
const DECLARED_ONLY: usize = 8 << 20;

/// Sends the request line and headers of a `len`-byte POST, no body, and
/// reads the answer.
async fn send_declared(base: &str, path: &str, len: usize) -> anyhow::Result<Seen> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut sock = tokio::net::TcpStream::connect(addr).await?;
    sock.write_all(
        format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), sock.read_to_end(&mut raw)).await??;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let h = |name: &str| headers.get(&name.to_ascii_lowercase()).cloned();
    Ok(Seen {
        status,
        min: h(MIN),
        max: h(MAX),
        content_type: h("Content-Type").map(|t| {
            t.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        }),
        location: h("Location"),
        keys: serde_json::from_str::<Value>(body).map_or(Value::Null, |v| shape(&v)),
    })
}

/// Shapes agree; an empty list agrees with any list (the inspector is
/// shared with other tests: it may hold rules and statuses we do not).
fn same_keys(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_keys(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.is_empty() || y.is_empty() || x.iter().zip(y).all(|(v, w)| same_keys(v, w))
        }
        _ => a == b,
    }
}

async fn send(http: &reqwest::Client, base: &str, c: &Case, n: &Nodes, ours: bool) -> anyhow::Result<Seen> {
    let fill = |s: &str| {
        s.replace("{node}", &n.node)
            .replace("{idle}", &n.idle)
            .replace("{name}", &n.name)
            .replace("{twin}", &n.twin)
    };
    if let Some(b) = &c.body
        && ours
        && b.len() > DECLARED_ONLY
    {
        return send_declared(base, &fill(&c.path), b.len()).await;
    }
    let mut req = http.request(c.method.clone(), format!("{base}{}", fill(&c.path)));
    for (k, v) in &c.headers {
        req = req.header(*k, v);
    }
    if let Some(b) = &c.body {
        req = req.header("Content-Type", "application/json").body(b.clone());
    }
    let r = req.send().await?;
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (min, max) = (header(MIN), header(MAX));
    let content_type = header("Content-Type").map(|t| {
        t.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    });
    // Only the path: each service names its own host and node.
    let location = header("Location").map(|l| {
        let path = l.split_once("//").map_or(l.as_str(), |(_, rest)| rest);
        path.find('/')
            .map_or("", |i| &path[i..])
            .replace(&n.node, "{node}")
    });
    let status = r.status().as_u16();
    let text = r.text().await?;
    let keys = serde_json::from_str::<Value>(&text).map_or(Value::Null, |v| shape(&v));
    Ok(Seen {
        status,
        min,
        max,
        content_type,
        location,
        keys,
    })
}

/// Every row of every table of the daemon's SQLite file, as text.
fn dump(db: &Path) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut tables = conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")?;
    let names: Vec<String> = tables.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    let mut out = BTreeMap::new();
    for t in names {
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{t}\""))?;
        let cols = stmt.column_count();
        let rows: Vec<String> = stmt
            .query_map([], |r| {
                let mut row = Vec::new();
                for i in 0..cols {
                    row.push(match r.get_ref(i)? {
                        rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                            String::from_utf8_lossy(t).into_owned()
                        }
                        other => format!("{other:?}"),
                    });
                }
                Ok(row.join("|"))
            })?
            .collect::<Result<_, _>>()?;
        out.insert(t, rows);
    }
    Ok(out)
}

/// The sequence: valid requests that set the scene, then malformed ones.
fn cases() -> Vec<Case> {
    let bad_version = |name, v: &str| case(name, Method::GET, "/v1/introspection/{node}").header(VERSION, v);
    vec![
        case("version root", Method::GET, "/").valid(),
        case("version v1", Method::GET, "/v1").valid(),
        case("start", Method::POST, "/v1/introspection/{node}").valid(),
        case("status", Method::GET, "/v1/introspection/{node}").valid(),
        case("status by name", Method::GET, "/v1/introspection/{name}").header(VERSION, "1.5").valid(),
        case("status by name at 1.4", Method::GET, "/v1/introspection/{name}").header(VERSION, "1.4").valid(),
        case("status at 1.0", Method::GET, "/v1/introspection/{node}").header(VERSION, "1.0").valid(),
        case("status latest", Method::GET, "/v1/introspection/{node}").header(VERSION, "latest").valid(),
        case("list limit 1", Method::GET, "/v1/introspection?limit=1").valid(),
        case("list by state", Method::GET, "/v1/introspection?state=waiting&limit=1").valid(),
        case("rules list", Method::GET, "/v1/rules").valid(),
        // Malformed or impossible: same answers, nothing changes.
        case("unknown version", Method::GET, "/v2"),
        case("list bad marker", Method::GET, "/v1/introspection?marker=bad"),
        case("list unknown marker", Method::GET, &format!("/v1/introspection?marker={UNKNOWN}")),
        case("list negative limit", Method::GET, "/v1/introspection?limit=-1"),
        case("list huge limit", Method::GET, "/v1/introspection?limit=100000"),
        case("list 2^64 limit", Method::GET, "/v1/introspection?limit=18446744073709551617"),
        case("list text limit", Method::GET, "/v1/introspection?limit=abc"),
        case("list unknown state", Method::GET, "/v1/introspection?state=bogus"),
        case("list one unknown state", Method::GET, "/v1/introspection?state=finished,bogus"),
        bad_version("version letters", "abc"),
        bad_version("version x.y letters", "1.x"),
        bad_version("version three parts", "1.2.3"),
        bad_version("version above range", "1.99"),
        bad_version("version major 2", "2.0"),
        bad_version("version below range", "0.9"),
        bad_version("version out of any range", "99999999999.1"),
        case("unknown node status", Method::GET, &format!("/v1/introspection/{UNKNOWN}")),
        case("unknown node start", Method::POST, &format!("/v1/introspection/{UNKNOWN}")),
        case("unknown node abort", Method::POST, &format!("/v1/introspection/{UNKNOWN}/abort")),
        case("unknown name status", Method::GET, "/v1/introspection/no-such-node-name-x7"),
        case("name of two nodes, other case", Method::GET, "/v1/introspection/{twin}"),
        case("idle node status", Method::GET, "/v1/introspection/{idle}"),
        case("idle node abort", Method::POST, "/v1/introspection/{idle}/abort"),
        case("idle node data", Method::GET, "/v1/introspection/{idle}/data"),
        case("waiting node data", Method::GET, "/v1/introspection/{node}/data"),
        case("reapply with an oversize body", Method::POST, "/v1/introspection/{node}/data/unprocessed")
            .body(oversize()),
        case("reapply bad JSON", Method::POST, "/v1/introspection/{node}/data/unprocessed").body("{"),
        case("rule bad JSON", Method::POST, "/v1/rules").body("{"),
        case("rule not an object", Method::POST, "/v1/rules").body("[]"),
        case("rule without actions", Method::POST, "/v1/rules").body(r#"{"conditions": []}"#),
        case("rule unknown action", Method::POST, "/v1/rules")
            .body(r#"{"actions": [{"action": "no-such-action"}]}"#),
        case("unknown rule", Method::GET, &format!("/v1/rules/{UNKNOWN}")),
        case("delete unknown rule", Method::DELETE, &format!("/v1/rules/{UNKNOWN}")),
        case("continue bad JSON", Method::POST, "/v1/continue").body("{"),
        case("continue unknown node", Method::POST, "/v1/continue")
            .body(r#"{"inventory": {"interfaces": [{"name": "x", "mac_address": "52:00:00:00:00:01"}], "bmc_address": "203.0.113.9"}}"#),
        case("unknown path", Method::GET, "/v1/nope"),
        case("wrong method", Method::PUT, "/v1/introspection"),
        // Last: the inspector accepts it and fails the node in the background.
        case("reapply while waiting", Method::POST, "/v1/introspection/{node}/data/unprocessed"),
    ]
}

/// A body above the daemon's default `max_body_size` (8 MiB).
fn oversize() -> Vec<u8> {
    let mut b = br#"{"pad": ""#.to_vec();
    b.resize(9 << 20, b'x');
    b.extend_from_slice(br#""}"#);
    b
}

/// Enrolls a service's nodes: one named, one idle.
async fn enroll(ironic: &IronicRest, tag: u8, twin: &str) -> anyhow::Result<Nodes> {
    let p = std::process::id();
    let mac = |i: u8| format!("52:d{tag}:{:02x}:{:02x}:00:{i:02x}", (p >> 8) & 0xff, p & 0xff);
    let bmc = |i: u32| format!("198.51.{}.{}", 200 + u32::from(tag), (p % 100) * 2 + i);
    let node = ironic.enroll(&bmc(0), &mac(0)).await?;
    let name = format!("diff-{tag}-{p}");
    ironic
        .send(
            Method::PATCH,
            &format!("/v1/nodes/{node}"),
            Some(json!([{"op": "add", "path": "/name", "value": name}])),
        )
        .await?;
    let idle = ironic.enroll(&bmc(1), &mac(1)).await?;
    Ok(Nodes {
        node,
        idle,
        name,
        twin: twin.to_owned(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_answers_as_ironic_inspector_does() -> anyhow::Result<()> {
    let Some(ironic_url) = ironic_url(TEST)? else {
        return Ok(());
    };
    let Some(inspector) = inspector_url(TEST)? else {
        return Ok(());
    };
    let ironic = IronicRest::new(&ironic_url)?;
    let p = std::process::id();
    for name in [format!("twin-{p}"), format!("TWIN-{p}")] {
        ironic
            .send(
                Method::POST,
                "/v1/nodes",
                Some(json!({"driver": "fake-hardware", "name": name})),
            )
            .await?;
    }
    let twin = format!("Twin-{p}");
    let ours = enroll(&ironic, 1, &twin).await?;
    let theirs = enroll(&ironic, 2, &twin).await?;
    let daemon = PlainDaemon::start(&ironic_url, "store_data = database").await?;
    let db = daemon.dir.path().join("discoverd.sqlite");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let inspector = inspector.trim_end_matches('/').to_owned();

    let mut differences = Vec::new();
    let mut before = None;
    for c in cases() {
        if c.malformed && before.is_none() {
            before = Some(dump(&db)?);
        }
        let a = send(&http, &daemon.url, &c, &ours, true).await?;
        let b = send(&http, &inspector, &c, &theirs, false).await?;
        if c.malformed {
            assert!(a.status < 500, "{}: the daemon answered {}", c.name, a.status);
        }
        let mut what = Vec::new();
        if a.status != b.status {
            what.push("status");
        }
        if (&a.min, &a.max) != (&b.min, &b.max) {
            what.push("version headers");
        }
        if a.content_type != b.content_type {
            what.push("content-type");
        }
        if a.location != b.location {
            what.push("location");
        }
        if a.status == b.status && !same_keys(&a.keys, &b.keys) {
            what.push("keys");
        }
        for w in what {
            let allowed = DELIBERATE.iter().find(|(n, d, _)| *n == c.name && d.contains(&w));
            if let Some((_, _, why)) = allowed {
                eprintln!("{}: {w} differs on purpose: {why}", c.name);
            } else {
                differences.push(format!(
                    "{}: {w}: daemon {a:?}\n    ironic-inspector {b:?}",
                    c.name
                ));
            }
        }
        if c.name == "start" {
            // Both nodes waiting before anything else is asked.
            for (base, n) in [(&daemon.url, &ours), (&inspector, &theirs)] {
                let last = std::sync::Mutex::new(Value::Null);
                eventually("the node to wait", Duration::from_secs(60), async || {
                    let v: Value = http
                        .get(format!("{base}/v1/introspection/{}", n.node))
                        .send()
                        .await?
                        .json()
                        .await?;
                    let waiting = v["state"] == "waiting";
                    if let Ok(mut l) = last.lock() {
                        *l = v;
                    }
                    Ok(waiting.then_some(()))
                })
                .await
                .map_err(|e| {
                    let l = last.lock().map(|l| l.clone()).unwrap_or_default();
                    anyhow::anyhow!("{e}: {base} answers {l}")
                })?;
            }
        }
    }
    assert!(
        differences.is_empty(),
        "{} difference(s) from ironic-inspector 12.5:\n  {}",
        differences.len(),
        differences.join("\n  ")
    );
    let after = dump(&db)?;
    assert_eq!(before, Some(after), "a malformed request changed the store");
    Ok(())
}
