//! `introspect --wait`: follows the nodes until every one has finished,
//! with a live display on a terminal (a line per node and a summary,
//! redrawn) and plain lines otherwise (one per change). It reads the
//! daemon's event stream; against a server without one (ironic-inspector,
//! discoverd 1.0) it polls the statuses instead.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use discoverd::client::{Client, ClientError, ServerEvent};

/// Pause between status reads when the server has no event stream.
const POLL: Duration = Duration::from_secs(2);
/// Consecutive failed reconnects of the event stream before giving up.
const RECONNECTS: u32 = 5;

#[derive(Debug, Clone)]
struct Node {
    /// As the user named it.
    name: String,
    state: String,
    finished: bool,
    error: Option<String>,
}

/// The nodes followed, by UUID, and how they are shown.
struct Board {
    nodes: BTreeMap<String, Node>,
    started: Instant,
    tty: bool,
    /// Lines drawn last time (a terminal redraws over them).
    drawn: usize,
}

impl Board {
    fn update(&mut self, uuid: &str, state: &str, finished: bool, error: Option<String>) {
        let elapsed = self.started.elapsed().as_secs_f64();
        let Some(n) = self.nodes.get_mut(uuid) else { return };
        if n.state == state && n.finished == finished {
            return;
        }
        if !self.tty {
            let err = error.as_deref().map(|e| format!(": {e}")).unwrap_or_default();
            println!("[{elapsed:7.1}s] {} {} -> {state}{err}", n.name, n.state);
        }
        n.state = state.to_owned();
        n.finished = finished;
        n.error = error;
    }

    fn done(&self) -> bool {
        self.nodes.values().all(|n| n.finished)
    }

    fn summary(&self) -> String {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for n in self.nodes.values() {
            *counts.entry(n.state.as_str()).or_default() += 1;
        }
        let parts: Vec<String> = counts.iter().map(|(s, c)| format!("{c} {s}")).collect();
        format!(
            "{} node(s): {} ({:.1} s)",
            self.nodes.len(),
            parts.join(", "),
            self.started.elapsed().as_secs_f64()
        )
    }

    /// Redraws the board on a terminal; nothing otherwise.
    fn draw(&mut self) {
        if !self.tty {
            return;
        }
        let mut out = std::io::stdout().lock();
        let mut text = String::new();
        if self.drawn > 0 {
            text.push_str(&format!("\x1b[{}A", self.drawn));
        }
        let width = self.nodes.values().map(|n| n.name.len()).max().unwrap_or(0);
        for n in self.nodes.values() {
            let err = n.error.as_deref().map(|e| format!("  {e}")).unwrap_or_default();
            text.push_str(&format!("\x1b[2K{:width$}  {}{err}\n", n.name, n.state));
        }
        text.push_str(&format!("\x1b[2K{}\n", self.summary()));
        self.drawn = self.nodes.len() + 1;
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }
}

/// Follows `nodes` (as the user named them) until all have finished.
/// Returns whether every one finished without an error.
pub async fn wait(client: &Client, nodes: &[String], tty: bool) -> Result<bool, ClientError> {
    let mut board = Board {
        nodes: BTreeMap::new(),
        started: Instant::now(),
        tty,
        drawn: 0,
    };
    for name in nodes {
        let st = client.get_status(name).await?;
        let uuid = st.uuid.clone().unwrap_or_else(|| name.clone());
        board.nodes.insert(
            uuid,
            Node {
                name: name.clone(),
                state: st.state.clone().unwrap_or_else(|| "started".into()),
                finished: st.finished,
                error: st.error.clone(),
            },
        );
    }
    board.draw();
    let uuids: Vec<String> = board.nodes.keys().cloned().collect();
    let mut failures = 0;
    while !board.done() {
        let mut stream = match client.events(&uuids).await {
            Ok(s) => s,
            Err(ClientError::Unsupported(_)) => {
                poll(client, &mut board).await?;
                break;
            }
            Err(e @ (ClientError::Unreachable { .. } | ClientError::Timeout)) if failures < RECONNECTS => {
                failures += 1;
                warn_reconnect(&e);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                ev = stream.next() => match ev {
                    Ok(Some(ServerEvent::Status(s))) => {
                        failures = 0;
                        let uuid = s.uuid.clone().unwrap_or_default();
                        let state = s.state.clone().unwrap_or_else(|| finished_word(s.finished, &s.error));
                        board.update(&uuid, &state, s.finished, s.error.clone());
                    }
                    Ok(Some(ServerEvent::State { node, to, error, finished, .. })) => {
                        failures = 0;
                        board.update(&node, &to, finished, error);
                    }
                    Ok(Some(ServerEvent::Lagged)) => reread(client, &mut board).await?,
                    // The stream ended or broke (a daemon restart): open it
                    // again; it starts with every node's current status.
                    Ok(None) | Err(_) => break,
                },
                _ = tick.tick() => {}
            }
            board.draw();
            if board.done() {
                break;
            }
        }
    }
    board.draw();
    if !tty {
        println!("{}", board.summary());
    }
    let failed: Vec<&Node> = board.nodes.values().filter(|n| n.error.is_some()).collect();
    for n in &failed {
        eprintln!(
            "ironic-discoverd-client: introspection of {} failed: {}",
            n.name,
            n.error.as_deref().unwrap_or_default()
        );
    }
    Ok(failed.is_empty())
}

fn finished_word(finished: bool, error: &Option<String>) -> String {
    match (finished, error) {
        (true, Some(_)) => "error".into(),
        (true, None) => "finished".into(),
        (false, _) => "running".into(),
    }
}

fn warn_reconnect(e: &ClientError) {
    eprintln!("ironic-discoverd-client: event stream: {e}; reconnecting");
}

/// Reads every unfinished node's status once.
async fn reread(client: &Client, board: &mut Board) -> Result<(), ClientError> {
    let open: Vec<String> = board
        .nodes
        .iter()
        .filter(|(_, n)| !n.finished)
        .map(|(u, _)| u.clone())
        .collect();
    for uuid in open {
        let s = client.get_status(&uuid).await?;
        let state = s
            .state
            .clone()
            .unwrap_or_else(|| finished_word(s.finished, &s.error));
        board.update(&uuid, &state, s.finished, s.error.clone());
    }
    Ok(())
}

/// Without an event stream: re-read the statuses every [`POLL`].
async fn poll(client: &Client, board: &mut Board) -> Result<(), ClientError> {
    while !board.done() {
        tokio::time::sleep(POLL).await;
        reread(client, board).await?;
        board.draw();
    }
    Ok(())
}
