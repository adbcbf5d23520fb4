//! The exporter's interface around the counting core: filters, content negotiation, gzip, the
//! binary's command line, and graceful shutdown.

mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{
    EventSpec, FakeApi, Scrape, http_request, parse_response, scrape_until, start_exporter,
    start_synced,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn seed(api: &FakeApi) {
    api.create(&EventSpec::new("shop", "a.1", "BackOff", 2));
    api.create(&EventSpec::new("shop", "b.1", "FailedMount", 3));
    api.create(&EventSpec::new("shop", "c.1", "Pulled", 4).normal());
    api.create(&EventSpec::new("kube-system", "d.1", "BackOff", 5));
}

/// Starts the exporter counting history, waits for its first list, returns the scrape.
async fn counted_with(extra: &[&str]) -> (FakeApi, Scrape) {
    let api = FakeApi::start().await;
    seed(&api);
    let mut args = vec!["--count-existing"];
    args.extend_from_slice(extra);
    let exporter = start_exporter(&api, &args).await;
    let s = scrape_until(exporter.local_addr, "synced", |s| s.own("synced") == 1.0).await;
    exporter.stop().await;
    (api, s)
}

#[tokio::test]
async fn include_reason_counts_only_matching_reasons() {
    let (_, s) = counted_with(&["--include-reason", "Back.*", "--include-reason", "Pull.*"]).await;
    assert_eq!(s.warnings("shop", "BackOff"), Some(2.0));
    assert_eq!(s.warnings("kube-system", "BackOff"), Some(5.0));
    assert_eq!(s.events("shop", "Pulled", "Normal"), Some(4.0));
    assert_eq!(s.warnings("shop", "FailedMount"), None);
}

#[tokio::test]
async fn exclude_reason_and_namespace_skip_matches() {
    let (_, s) = counted_with(&[
        "--exclude-reason",
        "Failed.*",
        "--exclude-namespace",
        "kube-.*",
    ])
    .await;
    assert_eq!(s.warnings("shop", "BackOff"), Some(2.0));
    assert_eq!(s.events("shop", "Pulled", "Normal"), Some(4.0));
    assert_eq!(s.warnings("shop", "FailedMount"), None);
    assert_eq!(s.warnings("kube-system", "BackOff"), None);
}

#[tokio::test]
async fn field_selector_reaches_the_api_server() {
    let (api, s) = counted_with(&["--field-selector", "reason!=BackOff"]).await;
    assert_eq!(s.warnings("shop", "BackOff"), None);
    assert_eq!(s.warnings("kube-system", "BackOff"), None);
    assert_eq!(s.warnings("shop", "FailedMount"), Some(3.0));
    assert!(
        api.requests()
            .iter()
            .all(|r| r.contains("fieldSelector=reason%21%3DBackOff")),
        "{:?}",
        api.requests()
    );
}

#[tokio::test]
async fn server_and_client_side_filters_combine() {
    let (api, s) = counted_with(&[
        "--types",
        "Warning",
        "--field-selector",
        "reason!=FailedMount",
        "--exclude-namespace",
        "kube-system",
    ])
    .await;
    assert_eq!(s.event_series().len(), 1, "{}", s.text);
    assert_eq!(s.warnings("shop", "BackOff"), Some(2.0));
    assert!(
        api.requests()
            .iter()
            .all(|r| r.contains("fieldSelector=type%3DWarning%2Creason%21%3DFailedMount")),
        "{:?}",
        api.requests()
    );
}

#[tokio::test]
async fn openmetrics_when_preferred_text_otherwise_gzip_when_asked() {
    let api = FakeApi::start().await;
    seed(&api);
    let exporter = start_synced(&api, &["--count-existing"]).await;
    let addr = exporter.local_addr;

    let prometheus_accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let openmetrics = http_request(addr, "/metrics", &[("Accept", prometheus_accept)]).await;
    assert!(
        openmetrics
            .header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text; version=1.0.0")
    );
    let om_text = String::from_utf8(openmetrics.body).unwrap();
    assert!(om_text.ends_with("# EOF\n"), "{om_text}");
    let om = Scrape::parse(om_text.clone());
    assert_eq!(om.warnings("shop", "BackOff"), Some(2.0));
    assert_eq!(
        om.value(
            "kube_event_metrics_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );

    for accept in [None, Some("*/*"), Some("text/plain;version=0.0.4")] {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("Accept", a)).into_iter().collect();
        let text = http_request(addr, "/metrics", &headers).await;
        assert_eq!(
            text.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8"),
            "{accept:?}"
        );
        let body = String::from_utf8(text.body).unwrap();
        assert!(!body.contains("# EOF"));
        assert_eq!(Scrape::parse(body).warnings("shop", "BackOff"), Some(2.0));
    }

    let gzipped = http_request(
        addr,
        "/metrics",
        &[("Accept", prometheus_accept), ("Accept-Encoding", "gzip")],
    )
    .await;
    assert_eq!(gzipped.header("content-encoding"), Some("gzip"));
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(gzipped.body.as_slice())
        .read_to_string(&mut unzipped)
        .expect("valid gzip");
    assert!(unzipped.ends_with("# EOF\n"));
    assert_eq!(
        Scrape::parse(unzipped).warnings("shop", "BackOff"),
        Some(2.0)
    );
    let plain = http_request(addr, "/metrics", &[("Accept-Encoding", "identity")]).await;
    assert_eq!(plain.header("content-encoding"), None);
    exporter.stop().await;
}

#[tokio::test]
async fn telemetry_path_moves_metrics_and_landing_links_it() {
    let api = FakeApi::start().await;
    let exporter = start_exporter(&api, &["--web.telemetry-path", "/custom"]).await;
    let addr = exporter.local_addr;
    assert_eq!(http_request(addr, "/metrics", &[]).await.status, 404);
    let moved = http_request(addr, "/custom", &[]).await;
    assert_eq!(moved.status, 200);
    assert!(
        String::from_utf8(moved.body)
            .unwrap()
            .contains("kube_event_metrics_synced")
    );
    let landing = String::from_utf8(http_request(addr, "/", &[]).await.body).unwrap();
    assert!(landing.contains("href=\"/custom\""));
    assert!(landing.contains(env!("CARGO_PKG_VERSION")));
    exporter.stop().await;
}

#[tokio::test]
async fn every_self_metric_has_a_sample_from_start() {
    let api = FakeApi::start().await;
    let exporter = start_exporter(&api, &[]).await;
    let s = support::scrape(exporter.local_addr).await;
    let value = |name: &str| {
        s.value(name, &[])
            .unwrap_or_else(|| panic!("{name}:\n{}", s.text))
    };
    // Read from /proc of this very process: plausible values, not just present ones.
    assert!(value("process_cpu_seconds_total") > 0.0);
    let resident = value("process_resident_memory_bytes");
    assert!(resident > 1e6);
    assert!(value("process_virtual_memory_bytes") > resident);
    let open = value("process_open_fds");
    assert!(open >= 3.0, "stdin, stdout, stderr at least: {open}");
    assert!(value("process_max_fds") > open);
    let started = value("process_start_time_seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        started <= now && started > now - 3600.0,
        "{started} vs {now}"
    );
    exporter.stop().await;
}

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kube-event-metrics"))
}

#[test]
fn bad_flags_fail_with_one_line_naming_them() {
    for (args, needle) in [
        (&["--max-series", "lots"][..], "--max-series"),
        (&["--no-such-flag"][..], "--no-such-flag"),
        (&["--namespace", "UPPER"][..], "--namespace"),
        (&["--include-reason", "("][..], "--include-reason"),
        (&["--log.format", "xml"][..], "--log.format"),
        // The cause, through the error's source(), on the same line.
        (
            &["--config.file", "/nonexistent/kem.yml"][..],
            "cannot read --config.file /nonexistent/kem.yml: No such file",
        ),
    ] {
        let output = binary().args(args).output().expect("runs");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[test]
fn help_documents_every_flag_with_defaults_and_version_prints() {
    let help = String::from_utf8(binary().arg("--help").output().unwrap().stdout).unwrap();
    for flag in [
        "--config.file",
        "--kubeconfig",
        "--web.listen-address",
        "--web.telemetry-path",
        "--namespace",
        "--types",
        "--field-selector",
        "--include-reason",
        "--exclude-reason",
        "--exclude-namespace",
        "--count-existing",
        "--max-series",
        "--log.level",
        "--log.format",
        "[default: :8080]",
        "[default: /metrics]",
        "[default: 10000]",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
    }
    let version = binary().arg("--version").output().unwrap();
    assert!(version.status.success());
    assert!(
        String::from_utf8(version.stdout)
            .unwrap()
            .contains(env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_scrape_finish_and_exits_zero() {
    let api = FakeApi::start().await;
    seed(&api);
    let addr = support::free_local_addr();
    let mut child = support::exporter_process(&api, addr)
        .args(["--log.format", "json"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut connection = loop {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(connection) => break connection,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(error) => panic!("exporter did not listen: {error}"),
        }
    };
    // The scrape has begun (its head is half sent) when the signal arrives.
    connection
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let signalled = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    connection
        .write_all(b"Connection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    connection.read_to_end(&mut response).await.unwrap();
    let response = parse_response(&response);
    assert_eq!(response.status, 200);
    assert!(
        String::from_utf8(response.body)
            .unwrap()
            .contains("kube_event_metrics_synced")
    );

    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(10),
            "still running 10 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(exit.code(), Some(0));
    let logs = support::stderr_of(&mut child);
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("JSON log line: {line}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "shutting down"),
        "{logs}"
    );
}

#[test]
fn the_start_up_line_logs_each_setting_as_a_field() {
    let addr = support::free_local_addr();
    let mut child = binary()
        .args(["--demo", "--web.listen-address", &addr.to_string()])
        .args([
            "--exclude-reason",
            "Pull.*",
            "--types",
            "Warning",
            "--types",
            "Normal",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let started = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|line| line.contains("kube-event-metrics started"))
        .expect("a start-up line");
    let _ = child.kill();
    let _ = child.wait();
    for field in [
        "exclude_reason=Pull.*",
        "include_reason=\"\"",
        "types=Warning,Normal",
        "class_rules=0",
        "web_config=none",
    ] {
        assert!(started.contains(field), "{field} in {started}");
    }
    assert!(
        !started.contains("LabelFilters") && !started.contains("Some("),
        "{started}"
    );
}
