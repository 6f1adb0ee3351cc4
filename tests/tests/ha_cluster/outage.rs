//! PostgreSQL restarted under load (issue 16): the test's own server is
//! stopped (fast shutdown: sessions cut, connections refused) and started
//! again on the same port and data while clients keep reading statuses,
//! posting reports and starting introspections on the live daemons. Every
//! answer is a success or a 503 with a JSON error, never a 500 and never
//! a hang; a 503 is sent again, as a ramdisk or a client does, until it is
//! accepted once the database is back, without restarting any daemon.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use test_support::postgres::OwnServer;

use super::{Cluster, DOWN, LIVENESS};

/// Between two reports, two starts: they span the outage.
const PACE: Duration = Duration::from_millis(500);

/// What the clients send while PostgreSQL restarts.
pub struct Load<'a> {
    /// The live daemons, used in turn.
    pub live: &'a [usize],
    /// Nodes whose status is read, over and over.
    pub read: &'a [String],
    /// Reports, each posted until accepted.
    pub reports: Vec<Value>,
    /// Nodes, each started until accepted.
    pub starts: &'a [String],
}

/// One answer a client got during the restart.
#[derive(Debug)]
struct Answer {
    what: &'static str,
    code: u16,
    body: Value,
    retry_after: bool,
}

struct Client<'a> {
    cluster: &'a Cluster,
    seen: Mutex<Vec<Answer>>,
}

impl Client<'_> {
    /// Sends `req`; its status code. No answer at all (a refused
    /// connection to a live daemon, or none within the client's timeout)
    /// is an error: a daemon must answer, 503 at worst.
    async fn send(&self, what: &'static str, req: reqwest::RequestBuilder) -> anyhow::Result<(u16, Value)> {
        let r = req
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{what}: no answer while PostgreSQL restarted ({e})"))?;
        let code = r.status().as_u16();
        let retry_after = r.headers().contains_key(reqwest::header::RETRY_AFTER);
        let body = r.json().await.unwrap_or(Value::Null);
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Answer {
                what,
                code,
                body: body.clone(),
                retry_after,
            });
        Ok((code, body))
    }

    /// Sends what `req` makes until it is answered `ok`; a 503 waits and
    /// sends again, anything else is an error.
    async fn until(
        &self,
        what: &'static str,
        ok: u16,
        req: impl Fn() -> reqwest::RequestBuilder,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + LIVENESS;
        loop {
            match self.send(what, req()).await? {
                (c, _) if c == ok => return Ok(()),
                (503, _) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
                (503, _) => anyhow::bail!("{what}: still 503 {LIVENESS:?} after PostgreSQL came back"),
                (c, body) => anyhow::bail!("{what} answered {c} while PostgreSQL restarted: {body}"),
            }
        }
    }

    fn status(&self, d: usize, uuid: &str) -> reqwest::RequestBuilder {
        let c = self.cluster;
        c.http
            .get(c.url(d, &format!("/v1/introspection/{uuid}")))
            .header("X-OpenStack-Ironic-Inspector-API-Version", "1.12")
    }

    fn report(&self, d: usize, body: &Value) -> reqwest::RequestBuilder {
        self.cluster
            .http
            .post(self.cluster.url(d, "/v1/continue"))
            .json(body)
    }

    fn start(&self, d: usize, uuid: &str) -> reqwest::RequestBuilder {
        self.cluster
            .http
            .post(self.cluster.url(d, &format!("/v1/introspection/{uuid}")))
    }
}

/// Restarts `pg` while `load` runs; every report and start of `load` has
/// been accepted when it returns. A summary of the answers, for the log.
pub async fn restart_under_load(cluster: &Cluster, pg: &OwnServer, load: Load<'_>) -> anyhow::Result<String> {
    let client = Client {
        cluster,
        seen: Mutex::new(Vec::new()),
    };
    let client = &client;
    let live = load.live;
    let stop = AtomicBool::new(false);
    let reads = async {
        let mut k = 0;
        while !stop.load(Ordering::Relaxed) {
            let uuid = &load.read[k % load.read.len()];
            client
                .send("a status read", client.status(live[k % live.len()], uuid))
                .await?;
            k += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::Ok(())
    };
    let reports = async {
        for (k, body) in load.reports.iter().enumerate() {
            client
                .until("a report", 200, || client.report(live[k % live.len()], body))
                .await?;
            tokio::time::sleep(PACE).await;
        }
        anyhow::Ok(())
    };
    let starts = async {
        for (k, uuid) in load.starts.iter().enumerate() {
            client
                .until("a start", 202, || client.start(live[k % live.len()], uuid))
                .await?;
            tokio::time::sleep(PACE).await;
        }
        anyhow::Ok(())
    };
    let restart = async {
        tokio::time::sleep(PACE + PACE / 5).await;
        tokio::task::block_in_place(|| pg.set_running(false))?;
        // One of each while it is surely down (the load may fall between).
        let probes = [
            ("a status read", client.status(live[0], &load.read[0])),
            (
                "a start",
                client.start(live[0], &load.starts[load.starts.len() - 1]),
            ),
            (
                "a report",
                client.report(live[live.len() - 1], &load.reports[load.reports.len() - 1]),
            ),
        ];
        for (what, req) in probes {
            let (code, _) = client.send(what, req).await?;
            anyhow::ensure!(code == 503, "{what} answered {code} with PostgreSQL down");
        }
        tokio::time::sleep(DOWN).await;
        tokio::task::block_in_place(|| pg.set_running(true))?;
        anyhow::Ok(())
    };
    let rest = async {
        let (a, b, c) = tokio::join!(reports, starts, restart);
        stop.store(true, Ordering::Relaxed);
        a.and(b).and(c)
    };
    let (a, b) = tokio::join!(reads, rest);
    a.and(b)?;

    let seen = client
        .seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut summary = String::new();
    for what in ["a status read", "a report", "a start"] {
        let of: Vec<&Answer> = seen.iter().filter(|a| a.what == what).collect();
        let down = of.iter().filter(|a| a.code == 503).count();
        summary.push_str(&format!("{what}: {} answers, {down} × 503; ", of.len()));
        anyhow::ensure!(down > 0, "no 503 for {what}");
    }
    for a in seen.iter() {
        anyhow::ensure!(
            matches!(a.code, 200 | 202 | 503),
            "{} answered {} while PostgreSQL restarted: {}",
            a.what,
            a.code,
            a.body
        );
        anyhow::ensure!(
            a.code != 503 || (a.body["error"]["message"].is_string() && a.retry_after),
            "{}: a 503 without a JSON error or Retry-After: {}",
            a.what,
            a.body
        );
    }
    Ok(summary)
}
