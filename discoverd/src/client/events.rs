//! Following `GET /v1/events`, the daemon's Server-Sent Events stream of
//! state changes (docs/api.md). The format is read here in a few lines
//! (`event:` and `data:` fields, comments, a blank line ending an event)
//! rather than through a crate: the server is ours and sends nothing else.

use serde_json::Value;

use super::{Client, ClientError, Status, answer_error, url_encode};

/// Largest event the client buffers; ours are a few hundred bytes.
const MAX_EVENT: usize = 64 * 1024;

/// One event of the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    /// A node's current status, sent first for each node asked about.
    Status(Status),
    /// One state change of a node.
    State {
        node: String,
        from: Option<String>,
        to: String,
        error: Option<String>,
        finished: bool,
    },
    /// The client fell behind and missed changes: statuses must be re-read.
    Lagged,
}

/// An open event stream; [`EventStream::next`] reads it.
#[derive(Debug)]
pub struct EventStream {
    resp: reqwest::Response,
    buf: Vec<u8>,
    event: String,
    data: String,
}

impl Client {
    /// Opens the event stream for `nodes` (UUIDs or names; all nodes when
    /// empty). A server without the stream (ironic-discoverd 1.0,
    /// ironic-inspector) is [`ClientError::Unsupported`].
    pub async fn events(&self, nodes: &[String]) -> Result<EventStream, ClientError> {
        let mut url = format!("{}/events", self.base);
        if !nodes.is_empty() {
            let list: Vec<String> = nodes.iter().map(|n| url_encode(n)).collect();
            url = format!("{url}?node={}", list.join(","));
        }
        let req = self.authorize(self.stream_http.get(&url)).await?;
        let resp = req.send().await.map_err(|e| self.unreachable(&e))?;
        let status = resp.status().as_u16();
        if status == 404 {
            return Err(ClientError::Unsupported("the event stream (GET /v1/events)"));
        }
        if !(200..300).contains(&status) {
            let bytes = crate::http_body::read_limited(resp, MAX_EVENT)
                .await
                .map_err(|e| ClientError::Protocol(e.to_string()))?;
            let text = String::from_utf8_lossy(&bytes);
            let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            return Err(answer_error(status, &value, &text));
        }
        Ok(EventStream {
            resp,
            buf: Vec::new(),
            event: String::new(),
            data: String::new(),
        })
    }
}

impl EventStream {
    /// The next event; `None` when the server ended the stream.
    pub async fn next(&mut self) -> Result<Option<ServerEvent>, ClientError> {
        loop {
            while let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let raw: Vec<u8> = self.buf.drain(..=pos).collect();
                let line = String::from_utf8_lossy(&raw);
                if let Some(ev) = self.line(line.trim_end_matches(['\r', '\n']))? {
                    return Ok(Some(ev));
                }
            }
            if self.buf.len() > MAX_EVENT {
                return Err(ClientError::Protocol(format!(
                    "an event stream line is over {MAX_EVENT} bytes"
                )));
            }
            match self.resp.chunk().await {
                Ok(Some(chunk)) => self.buf.extend_from_slice(&chunk),
                Ok(None) => return Ok(None),
                Err(e) => {
                    return Err(ClientError::Unreachable {
                        url: self.resp.url().to_string(),
                        message: e.to_string(),
                    });
                }
            }
        }
    }

    /// One line of the stream; an event when the line ends one.
    fn line(&mut self, line: &str) -> Result<Option<ServerEvent>, ClientError> {
        if line.is_empty() {
            let event = std::mem::take(&mut self.event);
            let data = std::mem::take(&mut self.data);
            return parse_event(&event, &data);
        }
        if line.starts_with(':') {
            return Ok(None); // a keep-alive comment
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = value.to_owned(),
            "data" => {
                if !self.data.is_empty() {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                if self.data.len() > MAX_EVENT {
                    return Err(ClientError::Protocol(format!(
                        "an event is over {MAX_EVENT} bytes"
                    )));
                }
            }
            _ => {}
        }
        Ok(None)
    }
}

/// An event from its name and data; unknown events are skipped.
fn parse_event(event: &str, data: &str) -> Result<Option<ServerEvent>, ClientError> {
    let bad = |e: serde_json::Error| ClientError::Protocol(format!("a {event} event: {e}"));
    match event {
        "status" => Ok(Some(ServerEvent::Status(
            serde_json::from_str(data).map_err(bad)?,
        ))),
        "state" => {
            let v: Value = serde_json::from_str(data).map_err(bad)?;
            let text = |k: &str| v[k].as_str().map(str::to_owned);
            let (Some(node), Some(to)) = (text("node"), text("to")) else {
                return Err(ClientError::Protocol(format!(
                    "a state event without node or to: {data}"
                )));
            };
            Ok(Some(ServerEvent::State {
                node,
                from: text("from"),
                to,
                error: text("error"),
                finished: v["finished"].as_bool().unwrap_or(false),
            }))
        }
        "lagged" => Ok(Some(ServerEvent::Lagged)),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_parse_and_unknown_ones_are_skipped() -> Result<(), ClientError> {
        let ev = parse_event(
            "state",
            r#"{"node":"n1","from":"waiting","to":"processing","at":1,"error":null,"finished":false}"#,
        )?;
        assert_eq!(
            ev,
            Some(ServerEvent::State {
                node: "n1".into(),
                from: Some("waiting".into()),
                to: "processing".into(),
                error: None,
                finished: false
            })
        );
        let st = parse_event(
            "status",
            r#"{"uuid":"n1","finished":true,"error":"boom","state":"error"}"#,
        )?;
        assert!(matches!(st, Some(ServerEvent::Status(s)) if s.error.as_deref() == Some("boom")));
        assert_eq!(
            parse_event("lagged", r#"{"missed":3}"#)?,
            Some(ServerEvent::Lagged)
        );
        assert_eq!(parse_event("future", "{}")?, None);
        assert!(parse_event("state", r#"{"to":"x"}"#).is_err());
        assert!(parse_event("status", "not json").is_err());
        Ok(())
    }
}
