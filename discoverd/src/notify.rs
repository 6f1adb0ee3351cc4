//! The systemd notification protocol (`sd_notify`), without libsystemd:
//! one datagram per message to `$NOTIFY_SOCKET` (a path, or `@name` in the
//! abstract namespace). Without `NOTIFY_SOCKET` every call does nothing.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Where notifications go, read once from the environment.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    target: Option<String>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// From `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`.
    pub fn from_env() -> Self {
        let target = std::env::var("NOTIFY_SOCKET").ok().filter(|s| !s.is_empty());
        let pid_ok = std::env::var("WATCHDOG_PID")
            .ok()
            .is_none_or(|p| p.parse::<u32>().ok() == Some(std::process::id()));
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|u| *u > 0 && pid_ok)
            .map(Duration::from_micros);
        Notifier { target, watchdog }
    }

    /// A notifier for an explicit socket (tests).
    pub fn to_socket(target: &str, watchdog: Option<Duration>) -> Self {
        Notifier {
            target: Some(target.to_owned()),
            watchdog,
        }
    }

    /// Sends `msg` (e.g. `READY=1`); failures are logged, never fatal.
    pub fn send(&self, msg: &str) {
        let Some(target) = &self.target else {
            return;
        };
        let result = (|| {
            let sock = UnixDatagram::unbound()?;
            let addr = match target.strip_prefix('@') {
                Some(name) => SocketAddr::from_abstract_name(name.as_bytes())?,
                None => SocketAddr::from_pathname(target)?,
            };
            sock.send_to_addr(msg.as_bytes(), &addr).map(drop)
        })();
        if let Err(e) = result {
            tracing::warn!("failed to notify systemd ({msg}): {e}");
        }
    }

    pub fn ready(&self) {
        self.send("READY=1\nSTATUS=serving");
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }

    pub fn status(&self, text: &str) {
        self.send(&format!("STATUS={text}"));
    }

    /// Pings the watchdog at half its interval until `stop` resolves.
    pub fn spawn_watchdog(&self, stop: impl std::future::Future<Output = ()> + Send + 'static) {
        let Some(interval) = self.watchdog else {
            return;
        };
        let n = self.clone();
        tokio::spawn(async move {
            tokio::pin!(stop);
            let mut tick = tokio::time::interval(interval / 2);
            loop {
                tokio::select! {
                    _ = &mut stop => return,
                    _ = tick.tick() => n.send("WATCHDOG=1"),
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_reach_a_path_socket() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path)?;
        rx.set_read_timeout(Some(Duration::from_secs(2)))?;
        let n = Notifier::to_socket(&path.display().to_string(), None);
        n.ready();
        n.stopping();
        let mut buf = [0u8; 256];
        let len = rx.recv(&mut buf)?;
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=serving");
        let len = rx.recv(&mut buf)?;
        assert_eq!(&buf[..len], b"STOPPING=1");
        Ok(())
    }

    #[test]
    fn abstract_sockets_work_and_no_socket_is_a_no_op() -> std::io::Result<()> {
        let name = format!("discoverd-notify-test-{}", std::process::id());
        let rx = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes())?)?;
        rx.set_read_timeout(Some(Duration::from_secs(2)))?;
        Notifier::to_socket(&format!("@{name}"), None).status("hello");
        let mut buf = [0u8; 64];
        let len = rx.recv(&mut buf)?;
        assert_eq!(&buf[..len], b"STATUS=hello");
        Notifier::default().ready();
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn watchdog_pings_at_half_the_interval() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("wd");
        let rx = UnixDatagram::bind(&path)?;
        rx.set_nonblocking(true)?;
        let n = Notifier::to_socket(&path.display().to_string(), Some(Duration::from_secs(10)));
        let (tx, stop) = tokio::sync::oneshot::channel::<()>();
        n.spawn_watchdog(async move {
            let _ = stop.await;
        });
        tokio::time::sleep(Duration::from_secs(11)).await;
        let _ = tx.send(());
        tokio::task::yield_now().await;
        let mut count = 0;
        let mut buf = [0u8; 32];
        while let Ok(len) = rx.recv(&mut buf) {
            assert_eq!(&buf[..len], b"WATCHDOG=1");
            count += 1;
        }
        // t = 0, 5 and 10 s.
        assert_eq!(count, 3);
        Ok(())
    }
}
