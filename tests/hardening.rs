//! The HTTP server under hostile or heavy clients.

mod support;

use std::time::{Duration, Instant};

use support::{EventSpec, FakeApi, barrier, parse_response, start_exporter, start_synced};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn a_slow_client_is_cut_off_after_the_header_read_timeout() {
    let api = FakeApi::start().await;
    let exporter = start_exporter(&api, &[]).await;
    let mut slow = tokio::net::TcpStream::connect(exporter.local_addr)
        .await
        .unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\n").await.unwrap();
    let started = Instant::now();
    // One header byte a second: never a complete head.
    let mut buffer = [0u8; 1024];
    let closed = loop {
        let _ = slow.write_all(b"X").await;
        match tokio::time::timeout(Duration::from_secs(1), slow.read(&mut buffer)).await {
            Ok(Ok(_)) | Ok(Err(_)) => break started.elapsed(),
            Err(_) => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the slow client was never cut off"
        );
    };
    assert!(closed >= Duration::from_secs(9), "cut off after {closed:?}");
    // Everyone else is served all along.
    assert_eq!(
        support::http_get(exporter.local_addr, "/healthz").await.0,
        200
    );
    exporter.stop().await;
}

#[tokio::test]
async fn an_oversized_request_head_is_refused() {
    let api = FakeApi::start().await;
    let exporter = start_exporter(&api, &[]).await;
    let mut stream = tokio::net::TcpStream::connect(exporter.local_addr)
        .await
        .unwrap();
    let request = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let _ = stream.write_all(request.as_bytes()).await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    if !response.is_empty() {
        assert_eq!(parse_response(&response).status, 431);
    }
    assert_eq!(
        support::http_get(exporter.local_addr, "/healthz").await.0,
        200
    );
    exporter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_scrapes_during_ingestion() {
    let api = FakeApi::start().await;
    api.create(&EventSpec::new("shop", "a.1", "BackOff", 1));
    let exporter = start_synced(&api, &[]).await;
    let addr = exporter.local_addr;
    let scrapers: Vec<_> = (0..1000)
        .map(|_| tokio::spawn(async move { support::http_get(addr, "/metrics").await.0 }))
        .collect();
    for n in 0..200u64 {
        api.set_count("shop", "a.1", 2 + n);
    }
    for scraper in scrapers {
        assert_eq!(scraper.await.unwrap(), 200);
    }
    let s = barrier(&api, addr, "shop", 1).await;
    assert_eq!(
        s.warnings("shop", "BackOff"),
        Some(200.0),
        "ingestion went on, exactly"
    );
    exporter.stop().await;
}
