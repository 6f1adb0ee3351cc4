//! A database of its own for each PostgreSQL test, on the throwaway
//! server `scripts/postgres.sh` starts (`DISCOVERD_TEST_POSTGRES_URL`,
//! a superuser URL). Without that variable a test skips, except under
//! `DISCOVERD_REQUIRE_PRIVILEGED=1` (CI), where it fails.

use anyhow::{Context, bail};

/// The variable naming the test server.
pub const URL_VAR: &str = "DISCOVERD_TEST_POSTGRES_URL";

/// A database created for one test, dropped (with its connections) when
/// this goes out of scope.
#[derive(Debug)]
pub struct TestDatabase {
    /// The URL of the new database, for the store or `database = …`.
    pub url: String,
    admin: String,
    name: String,
}

/// The test server's URL, `None` (the test skips, saying so) when there is
/// none, an error when one is required.
pub fn server() -> anyhow::Result<Option<String>> {
    match std::env::var(URL_VAR) {
        Ok(u) if !u.is_empty() => Ok(Some(u)),
        _ if std::env::var("DISCOVERD_REQUIRE_PRIVILEGED").as_deref() == Ok("1") => {
            bail!(
                "{URL_VAR} is not set and DISCOVERD_REQUIRE_PRIVILEGED=1: start one with scripts/postgres.sh"
            )
        }
        _ => {
            eprintln!("skipped: no PostgreSQL ({URL_VAR} unset; scripts/test.sh starts one)");
            Ok(None)
        }
    }
}

/// `url` with its database name replaced.
fn with_database(url: &str, name: &str) -> anyhow::Result<String> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let rest = base.split_once("://").map(|(_, r)| r).context("not a URL")?;
    let base = if rest.contains('/') {
        base.rsplit_once('/').map(|(b, _)| b).context("not a URL")?
    } else {
        base
    };
    Ok(match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    })
}

async fn admin(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to the test PostgreSQL {url}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

impl TestDatabase {
    /// A new, empty database; `None` when the test should skip.
    pub async fn create() -> anyhow::Result<Option<Self>> {
        let Some(server) = server()? else { return Ok(None) };
        Self::create_on(&server).await.map(Some)
    }

    /// A new, empty database on the server at `server` (a superuser URL).
    pub async fn create_on(server: &str) -> anyhow::Result<Self> {
        let server = server.to_owned();
        let name = format!("discoverd_test_{}", uuid::Uuid::new_v4().simple());
        admin(&server)
            .await?
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .with_context(|| format!("creating database {name}"))?;
        Ok(TestDatabase {
            url: with_database(&server, &name)?,
            admin: server,
            name,
        })
    }
}

impl TestDatabase {
    /// Takes the database away from its clients (connections refused, the
    /// open ones cut), as a server that went down; `true` brings it back.
    pub async fn set_reachable(&self, up: bool) -> anyhow::Result<()> {
        let c = admin(&self.admin).await?;
        c.batch_execute(&format!(
            "ALTER DATABASE {} WITH ALLOW_CONNECTIONS {up}",
            self.name
        ))
        .await?;
        if !up {
            c.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                &[&self.name],
            )
            .await?;
        }
        Ok(())
    }

    /// Runs SQL on the database as the server's superuser.
    pub async fn execute(&self, sql: &str) -> anyhow::Result<()> {
        admin(&self.url).await?.batch_execute(sql).await?;
        Ok(())
    }

    /// The first column (as text: cast it in `sql`) of every row `sql`
    /// returns, read as the server's superuser.
    pub async fn column(&self, sql: &str) -> anyhow::Result<Vec<String>> {
        let rows = admin(&self.url).await?.query(sql, &[]).await?;
        rows.iter()
            .map(|r| r.try_get::<_, String>(0).map_err(Into::into))
            .collect()
    }
}

/// A PostgreSQL server of one test's own (`scripts/postgres.sh start` in a
/// temporary directory), which the test may stop and start again as an
/// operator restarting the database would; stopped and removed on drop.
/// The suite's shared server is never stopped: other tests use it.
#[derive(Debug)]
pub struct OwnServer {
    /// Its superuser URL (database `postgres`).
    pub url: String,
    /// Where it lives (data, server.log).
    pub dir: tempfile::TempDir,
}

impl OwnServer {
    /// Starts one on a free port; `None` (the test skips, saying so) when
    /// PostgreSQL is not installed, an error when the test is required
    /// (`DISCOVERD_REQUIRE_PRIVILEGED=1`).
    pub fn start() -> anyhow::Result<Option<Self>> {
        let dir = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let out = std::process::Command::new(script())
            .arg("start")
            .arg(dir.path())
            .args(["--port", &port.to_string()])
            .output()
            .context("running scripts/postgres.sh")?;
        if !out.status.success() {
            let why = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            if std::env::var("DISCOVERD_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
                bail!("scripts/postgres.sh start failed and DISCOVERD_REQUIRE_PRIVILEGED=1: {why}");
            }
            eprintln!("skipped: cannot start a PostgreSQL of the test's own: {why}");
            return Ok(None);
        }
        let url = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        Ok(Some(OwnServer { url, dir }))
    }

    /// `false` stops the server (fast shutdown: open sessions are cut) and
    /// keeps its data; `true` starts it again on the same port.
    pub fn set_running(&self, up: bool) -> anyhow::Result<()> {
        let what = if up { "resume" } else { "pause" };
        let out = std::process::Command::new(script())
            .arg(what)
            .arg(self.dir.path())
            .output()
            .context("running scripts/postgres.sh")?;
        if !out.status.success() {
            bail!(
                "scripts/postgres.sh {what} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// Runs SQL on its `postgres` database as the superuser.
    pub async fn execute(&self, sql: &str) -> anyhow::Result<()> {
        admin(&self.url).await?.batch_execute(sql).await?;
        Ok(())
    }
}

fn script() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/postgres.sh")
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = std::process::Command::new(script())
            .arg("stop")
            .arg(self.dir.path())
            .output();
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin.clone(), self.name.clone());
        // Drop may run inside a runtime: a thread of its own, with its own.
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                admin(&admin_url)
                    .await?
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await?;
                anyhow::Ok(())
            })
        })
        .join();
        if let Ok(Err(e)) = done {
            eprintln!("could not drop test database {}: {e:#}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_database_name_is_replaced() -> anyhow::Result<()> {
        assert_eq!(
            super::with_database("postgresql://u@127.0.0.1:1/postgres", "x")?,
            "postgresql://u@127.0.0.1:1/x"
        );
        assert_eq!(
            super::with_database("postgresql://u@h?host=/tmp/s", "x")?,
            "postgresql://u@h/x?host=/tmp/s"
        );
        Ok(())
    }
}
