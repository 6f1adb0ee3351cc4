//! LISTEN/NOTIFY: every write that changes the active MACs or the number
//! of running introspections (a node's MACs added, even none; an ending)
//! sends `NOTIFY discoverd_macs` in its
//! transaction (delivered at commit); each store keeps one connection
//! listening and bumps a counter, so that every daemon's firewall sync
//! runs soon after a start on another daemon, not at its next period.

use std::time::Duration;

use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, NoTls};

/// The channel the store notifies on.
pub const CHANNEL: &str = "discoverd_macs";

/// Starts the listener; the counter moves at each notification, and once
/// after each reconnection (changes may have been missed meanwhile). It
/// ends when every receiver is gone.
pub fn spawn(url: String, location: String) -> watch::Receiver<u64> {
    let (tx, rx) = watch::channel(0u64);
    tokio::spawn(async move {
        let mut pause = Duration::from_millis(100);
        loop {
            tokio::select! {
                r = listen(&url, &tx) => {
                    if let Err(e) = r {
                        tracing::warn!(database = %location, "listening for changes failed (the periodic sync still runs): {e}");
                    }
                }
                _ = tx.closed() => return,
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = tx.closed() => return,
            }
            pause = (pause * 2).min(Duration::from_secs(10));
        }
    });
    rx
}

/// One connection's life: LISTEN, then forward notifications until it ends.
async fn listen(url: &str, tx: &watch::Sender<u64>) -> Result<(), tokio_postgres::Error> {
    let (client, mut conn) = tokio_postgres::connect(url, NoTls).await?;
    let (msgs_tx, mut msgs) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| conn.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(_))) => {
                    if msgs_tx.send(()).is_err() {
                        return Ok(());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            }
        }
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    // Connected again: whatever changed meanwhile is unknown.
    tx.send_modify(|n| *n += 1);
    while msgs.recv().await.is_some() {
        tx.send_modify(|n| *n += 1);
    }
    drop(client);
    match driver.await {
        Ok(r) => r,
        Err(_) => Ok(()),
    }
}
