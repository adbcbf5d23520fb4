//! The exposition checked by Prometheus' own linter.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use support::{EventSpec, FakeApi, scrape_until, start_exporter};

#[tokio::test]
#[ignore = "needs promtool (Debian package prometheus); .ci/run installs it"]
async fn promtool_check_metrics_finds_nothing() {
    let api = FakeApi::start().await;
    api.create(&EventSpec::new("shop", "a.1", "BackOff", 3));
    // Label values a cluster may hold that the text format must escape.
    let mut odd = EventSpec::new("shop", "b.2", "Quote\"Back\\slash", 2);
    odd.component = "line\nbreak-ünïcode".into();
    api.create(&odd);
    let mut node = EventSpec::new("", "node-1.x", "NodeNotReady", 1);
    node.kind = "Node".into();
    api.change(|state| state.put_raw("default", "node-1.x", node.to_json()));
    let exporter = start_exporter(&api, &["--count-existing"]).await;
    let s = scrape_until(exporter.local_addr, "synced", |s| s.own("synced") == 1.0).await;
    assert_eq!(
        s.warnings("shop", "Quote\"Back\\slash"),
        None,
        "source differs"
    );
    assert_eq!(s.event_series().len(), 3, "{}", s.text);

    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed");
    promtool
        .stdin
        .take()
        .expect("stdin")
        .write_all(s.text.as_bytes())
        .expect("write to promtool");
    let output = promtool.wait_with_output().expect("promtool runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "promtool failed: {said}\n{}",
        s.text
    );
    assert_eq!(said.trim(), "", "promtool found problems in:\n{}", s.text);
    exporter.stop().await;
}
