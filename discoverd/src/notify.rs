//! The systemd notification protocol (`sd_notify`), without libsystemd:
//! one datagram per message to `$NOTIFY_SOCKET` (a path, or `@name` in the
//! abstract namespace). Without `NOTIFY_SOCKET` every call does nothing.
//!
//! The daemon's unit is `Type=notify` with `WatchdogSec=`: `run()` sends
//! `READY=1` once it may serve (after the first firewall sync),
//! `STOPPING=1` when shutdown starts, and keeps [`Notifier::spawn_watchdog`]
//! running. The free functions are the same calls on
//! [`Notifier::from_env`], for callers that hold no `Notifier`.

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
        Self::from_vars(|name| std::env::var(name).ok(), std::process::id())
    }

    /// The environment rules, with the lookup and our pid passed in so they
    /// are testable without touching the process environment: the
    /// watchdog is ours only when `WATCHDOG_PID` is unset or names us (a
    /// child that inherited the variables must not ping for its parent).
    fn from_vars(var: impl Fn(&str) -> Option<String>, pid: u32) -> Self {
        let target = var("NOTIFY_SOCKET").filter(|s| !s.is_empty());
        let pid_ok = var("WATCHDOG_PID").is_none_or(|p| p.trim().parse::<u32>().ok() == Some(pid));
        let watchdog = var("WATCHDOG_USEC")
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|u| *u > 0 && pid_ok)
            .map(Duration::from_micros);
        Notifier { target, watchdog }
    }

    /// The interval systemd expects pings within (`WatchdogSec=`), if any.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
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
            // Never block the async runtime on a full queue: drop the
            // message and log instead.
            sock.set_nonblocking(true)?;
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

    /// `READY=1`: start-up is complete.
    pub fn ready(&self) {
        self.send("READY=1\nSTATUS=serving");
    }

    /// `STOPPING=1`: shutdown has begun.
    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }

    /// `STATUS=<text>`, shown by `systemctl status`.
    pub fn status(&self, text: &str) {
        self.send(&format!("STATUS={text}"));
    }

    /// Pings the watchdog (`WATCHDOG=1`) at half its interval until `stop`
    /// resolves; does nothing without a watchdog. Must be called inside a
    /// tokio runtime.
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

/// `READY=1` to `$NOTIFY_SOCKET`, if set.
pub fn ready() {
    Notifier::from_env().ready();
}

/// `STOPPING=1` to `$NOTIFY_SOCKET`, if set.
pub fn stopping() {
    Notifier::from_env().stopping();
}

/// `STATUS=<text>` to `$NOTIFY_SOCKET`, if set.
pub fn status(text: &str) {
    Notifier::from_env().status(text);
}

/// The watchdog interval systemd set for this process, if any.
pub fn watchdog_interval() -> Option<Duration> {
    Notifier::from_env().watchdog_interval()
}

/// Pings systemd's watchdog at half its interval until `shutdown` resolves.
pub fn spawn_watchdog(shutdown: impl std::future::Future<Output = ()> + Send + 'static) {
    Notifier::from_env().spawn_watchdog(shutdown);
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

    fn vars(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn environment_rules() {
        let n = Notifier::from_vars(vars(&[]), 42);
        assert!(n.target.is_none() && n.watchdog_interval().is_none());
        let n = Notifier::from_vars(vars(&[("NOTIFY_SOCKET", "")]), 42);
        assert!(n.target.is_none(), "an empty NOTIFY_SOCKET is unset");
        let n = Notifier::from_vars(
            vars(&[("NOTIFY_SOCKET", "@sd"), ("WATCHDOG_USEC", "30000000")]),
            42,
        );
        assert_eq!(n.target.as_deref(), Some("@sd"));
        assert_eq!(n.watchdog_interval(), Some(Duration::from_secs(30)));
        let ours = Notifier::from_vars(vars(&[("WATCHDOG_USEC", "1000"), ("WATCHDOG_PID", "42")]), 42);
        assert_eq!(ours.watchdog_interval(), Some(Duration::from_millis(1)));
        // Inherited from a parent: not ours to ping.
        let theirs = Notifier::from_vars(vars(&[("WATCHDOG_USEC", "1000"), ("WATCHDOG_PID", "41")]), 42);
        assert_eq!(theirs.watchdog_interval(), None);
        const BAD: [&[(&str, &str)]; 3] = [
            &[("WATCHDOG_USEC", "0")],
            &[("WATCHDOG_USEC", "-5")],
            &[("WATCHDOG_USEC", "soon")],
        ];
        for pairs in BAD {
            assert_eq!(
                Notifier::from_vars(vars(pairs), 42).watchdog_interval(),
                None,
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn an_unreachable_socket_is_not_fatal() {
        // Logged and dropped; the daemon keeps running without systemd.
        Notifier::to_socket("/nonexistent/notify.sock", None).ready();
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
