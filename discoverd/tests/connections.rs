//! The API's connection bounds, against the real server loop
//! (`discoverd::server::serve`): half-open connections are closed after the
//! header timeout, idle keep-alive ones after the idle timeout, a request
//! slower than both is not cut, and a flood of half-open connections past
//! `max_connections` does not keep a real client out.
//!
//! Deadlines here are liveness bounds (generous), not speed checks.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use discoverd::connections::ConnectionLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const LIVENESS: Duration = Duration::from_secs(30);

async fn server(limits: ConnectionLimits) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = Router::new().route("/", get(|| async { "ok" })).route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            "slow"
        }),
    );
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(discoverd::server::serve(listener, router, limits, async {
        let _ = rx.await;
    }));
    (addr, tx)
}

fn limits(max: usize) -> ConnectionLimits {
    ConnectionLimits {
        header_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(300),
        max_connections: max,
    }
}

/// Reads until the server closes; the bytes it sent.
async fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    tokio::time::timeout(LIVENESS, s.read_to_end(&mut all))
        .await
        .expect("the server closed the connection")
        .ok();
    all
}

async fn get_ok(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .expect("write");
    String::from_utf8_lossy(&read_to_close(&mut s).await).into_owned()
}

#[tokio::test]
async fn a_half_open_request_is_closed_after_the_header_timeout() {
    let (addr, _stop) = server(limits(100)).await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nX-Slow: 1\r\n")
        .await
        .expect("write");
    let answer = read_to_close(&mut s).await;
    assert!(
        !String::from_utf8_lossy(&answer).contains("200 OK"),
        "never answered"
    );
    // And a connection that sends nothing at all.
    let mut silent = TcpStream::connect(addr).await.expect("connect");
    read_to_close(&mut silent).await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_and_a_slow_request_is_not() {
    let (addr, _stop) = server(limits(100)).await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    // The handler takes 5× the timeouts: busy connections have no timer.
    s.write_all(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .expect("write");
    let answer = read_to_close(&mut s).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.starts_with("HTTP/1.1 200") && text.ends_with("slow"),
        "{text}"
    );
}

#[tokio::test]
async fn a_flood_of_half_open_connections_past_the_cap_does_not_keep_a_client_out() {
    let (addr, _stop) = server(ConnectionLimits {
        header_timeout: Duration::from_secs(3600),
        idle_timeout: Duration::from_secs(3600),
        max_connections: 16,
    })
    .await;
    let mut flood = Vec::new();
    for _ in 0..200 {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"GET / HTTP/1.1\r\nX-Slow: 1\r\n")
            .await
            .expect("write");
        flood.push(s);
    }
    // The header timeout is an hour: only the cap can make room.
    for _ in 0..5 {
        let text = get_ok(addr, "/").await;
        assert!(text.starts_with("HTTP/1.1 200") && text.ends_with("ok"), "{text}");
    }
    // The oldest half-open connections were the ones closed.
    let first = read_to_close(&mut flood[0]).await;
    assert!(first.is_empty());
}
