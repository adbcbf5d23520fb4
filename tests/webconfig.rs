//! `--web.config.file` with real TLS clients: curl and a rustls client.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use support::{FakeApi, start_exporter};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Pki {
    dir: tempfile::TempDir,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "test CA");
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.path().join("ca.pem"), cert.pem()).unwrap();
        Pki {
            dir,
            issuer: Issuer::new(params, key),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `NAME.pem` and `NAME.key`, signed by the CA; returns the certificate's DER.
    fn issue(&self, name: &str, common_name: &str) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        std::fs::write(self.path(&format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(self.path(&format!("{name}.key")), key.serialize_pem()).unwrap();
        cert.der().to_vec()
    }

    fn web_config(&self, text: &str) -> PathBuf {
        let path = self.path("web.yml");
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// curl's HTTP status, or its exit code as a negative number when it could not get one.
fn curl(url: &str, args: &[&str]) -> i32 {
    let output = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
        ])
        .args(args)
        .arg(url)
        .output()
        .expect("curl is installed");
    if !output.status.success() {
        return -output.status.code().unwrap_or(1);
    }
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("https://localhost:{}{path}", addr.port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs curl (preinstalled on the machine; .ci/run installs it if missing)"]
async fn tls_and_basic_auth_with_curl() {
    let pki = Pki::new();
    pki.issue("server", "kube-event-metrics");
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let config = pki.web_config(&format!(
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\nbasic_auth_users:\n  prometheus: '{hash}'\nhttp_server_config:\n  http2: false\n"
    ));
    let api = FakeApi::start().await;
    let exporter = start_exporter(&api, &["--web.config.file", config.to_str().unwrap()]).await;
    let addr = exporter.local_addr;
    let ca = pki.path("ca.pem");
    let ca = ca.to_str().unwrap();

    assert_eq!(
        curl(
            &url(addr, "/metrics"),
            &["--cacert", ca, "-u", "prometheus:s3cret"]
        ),
        200
    );
    assert_eq!(
        curl(
            &url(addr, "/metrics"),
            &["--cacert", ca, "-u", "prometheus:wrong"]
        ),
        401
    );
    assert_eq!(
        curl(
            &url(addr, "/metrics"),
            &["--cacert", ca, "-u", "nobody:s3cret"]
        ),
        401
    );
    assert_eq!(curl(&url(addr, "/metrics"), &["--cacert", ca]), 401);
    assert_eq!(
        curl(&url(addr, "/"), &["--cacert", ca]),
        401,
        "every path but the probes"
    );
    // Probes need no secret.
    assert_eq!(curl(&url(addr, "/healthz"), &["--cacert", ca]), 200);
    assert!(matches!(
        curl(&url(addr, "/readyz"), &["--cacert", ca]),
        200 | 503
    ));
    // An untrusted certificate is refused by the client; plain HTTP gets no answer.
    assert!(curl(&url(addr, "/healthz"), &[]) < 0);
    let plain = curl(&format!("http://127.0.0.1:{}/healthz", addr.port()), &[]);
    assert!(
        plain <= 0 || plain >= 400,
        "plain HTTP to the TLS port: {plain}"
    );
    exporter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs curl (preinstalled on the machine; .ci/run installs it if missing)"]
async fn client_certificates_when_required() {
    let pki = Pki::new();
    pki.issue("server", "kube-event-metrics");
    pki.issue("client", "prometheus");
    let config = pki.web_config(
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_ca_file: ca.pem\n  client_auth_type: RequireAndVerifyClientCert\n",
    );
    let api = FakeApi::start().await;
    let exporter = start_exporter(&api, &["--web.config.file", config.to_str().unwrap()]).await;
    let addr = exporter.local_addr;
    let (ca, cert, key) = (
        pki.path("ca.pem"),
        pki.path("client.pem"),
        pki.path("client.key"),
    );
    let (ca, cert, key) = (
        ca.to_str().unwrap(),
        cert.to_str().unwrap(),
        key.to_str().unwrap(),
    );
    assert_eq!(
        curl(
            &url(addr, "/metrics"),
            &["--cacert", ca, "--cert", cert, "--key", key]
        ),
        200
    );
    assert!(
        curl(&url(addr, "/metrics"), &["--cacert", ca]) < 0,
        "handshake refused without a certificate"
    );
    exporter.stop().await;

    // VerifyClientCertIfGiven: no certificate is fine, a certificate must verify.
    pki.web_config(
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_ca_file: ca.pem\n  client_auth_type: VerifyClientCertIfGiven\n",
    );
    let exporter = start_exporter(&api, &["--web.config.file", config.to_str().unwrap()]).await;
    let addr = exporter.local_addr;
    assert_eq!(curl(&url(addr, "/metrics"), &["--cacert", ca]), 200);
    assert_eq!(
        curl(
            &url(addr, "/metrics"),
            &["--cacert", ca, "--cert", cert, "--key", key]
        ),
        200
    );
    exporter.stop().await;
}

/// The server certificate a rustls client is shown.
async fn served_certificate(addr: SocketAddr, ca: &Path) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.expect("handshake");
    let der = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response).await;
    assert!(
        response.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&response)
    );
    der
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_is_served_without_restart() {
    let pki = Pki::new();
    let first = pki.issue("server", "first");
    let config =
        pki.web_config("tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n");
    let api = FakeApi::start().await;
    let exporter = start_exporter(&api, &["--web.config.file", config.to_str().unwrap()]).await;
    let addr = exporter.local_addr;
    assert_eq!(served_certificate(addr, &pki.path("ca.pem")).await, first);
    // Modification times have a coarse resolution on some file systems.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = pki.issue("server", "second");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if served_certificate(addr, &pki.path("ca.pem")).await == second {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rotated certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    exporter.stop().await;
}

#[test]
fn a_bad_web_config_stops_start_up_naming_the_key() {
    let pki = Pki::new();
    let config = pki.web_config(
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_auth_type: RequireAnyClientCert\n",
    );
    let output = Command::new(env!("CARGO_BIN_EXE_kube-event-metrics"))
        .args(["--web.config.file", config.to_str().unwrap()])
        .args(["--web.listen-address", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    let errors = support::error_lines(&stderr);
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("client_auth_type"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_storm_leaves_ingestion_and_known_scrapers_alone() {
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("s3cret", 8).unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(&web, format!("basic_auth_users:\n  prom: '{hash}'\n")).unwrap();
    let api = FakeApi::start().await;
    let exporter = start_exporter(&api, &["--web.config.file", web.to_str().unwrap()]).await;
    let addr = exporter.local_addr;
    let basic = |password: &str| {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("prom:{password}"))
        )
    };
    let right = basic("s3cret");
    let scrape_as = |authorization: String| async move {
        support::http_request(addr, "/metrics", &[("Authorization", &authorization)]).await
    };
    // Prometheus' credential, verified once before the storm.
    assert_eq!(scrape_as(right.clone()).await.status, 200);

    let storm: Vec<_> = (0..200)
        .map(|n| tokio::spawn(scrape_as(basic(&format!("guess-{n}")))))
        .collect();
    // While it rages: Events keep being counted, and the known credential keeps scraping.
    for n in 0..20u64 {
        api.create(&support::EventSpec::new(
            "shop",
            &format!("web-{n}.x"),
            "BackOff",
            1,
        ));
    }
    loop {
        let response = scrape_as(right.clone()).await;
        assert_eq!(response.status, 200);
        let text = String::from_utf8(response.body).unwrap();
        let scrape = support::Scrape::parse(text);
        if scrape.warnings("shop", "BackOff") == Some(20.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        storm.iter().any(|request| !request.is_finished()),
        "the storm was still being checked while Events were counted"
    );
    for request in storm {
        assert_eq!(request.await.unwrap().status, 401);
    }
    exporter.stop().await;
}
