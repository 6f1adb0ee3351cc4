//! `ironic-discoverd-fw-helper ctl …`: a small client for operators and
//! tests. It speaks the same protocol as the daemon and prints each reply
//! as JSON.

use std::path::Path;

use common::protocol::{self, PROTOCOL_VERSION, Reply, ReplyBody, Request, RequestBody};
use tokio::net::UnixStream;

/// Why a ctl call failed.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("failed to connect to {path}: {source}")]
    Connect {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to talk to the helper: {0}")]
    Frame(#[from] protocol::FrameError),
    #[error("the helper closed the connection")]
    Closed,
    #[error("reply id {got} does not match request id {want}")]
    IdMismatch { got: u64, want: u64 },
}

/// A connected, greeted client.
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
    next_id: u64,
}

impl Client {
    /// Connects and says hello; an error reply to hello is returned as-is.
    pub async fn connect(path: &Path) -> Result<(Self, Reply), CtlError> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| CtlError::Connect {
                path: path.display().to_string(),
                source,
            })?;
        let mut c = Client { stream, next_id: 1 };
        let hello = c
            .call(RequestBody::Hello {
                version: PROTOCOL_VERSION,
            })
            .await?;
        Ok((c, hello))
    }

    /// Sends one request and waits for its reply.
    pub async fn call(&mut self, body: RequestBody) -> Result<Reply, CtlError> {
        let id = self.next_id;
        self.next_id += 1;
        protocol::io::write_frame(&mut self.stream, &Request { id, body }).await?;
        let reply: Reply = protocol::io::read_frame(&mut self.stream)
            .await?
            .ok_or(CtlError::Closed)?;
        if reply.id != id {
            return Err(CtlError::IdMismatch {
                got: reply.id,
                want: id,
            });
        }
        Ok(reply)
    }
}

/// Runs one request and prints the reply; the exit code is 0 for a
/// successful reply and 1 for an error reply or a failed connection.
pub async fn run(socket: &Path, body: RequestBody) -> u8 {
    let result = async {
        let (mut c, hello) = Client::connect(socket).await?;
        if matches!(hello.body, ReplyBody::Error(_)) {
            return Ok(hello);
        }
        c.call(body).await
    }
    .await;
    match result {
        Ok(reply) => {
            match serde_json::to_string_pretty(&reply) {
                Ok(text) => println!("{text}"),
                Err(e) => eprintln!("failed to print the reply: {e}"),
            }
            u8::from(matches!(reply.body, ReplyBody::Error(_)))
        }
        Err(e) => {
            eprintln!("ironic-discoverd-fw-helper ctl: {e}");
            1
        }
    }
}
