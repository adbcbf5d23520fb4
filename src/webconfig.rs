//! `--web.config.file`: TLS and basic auth in the Prometheus exporter-toolkit format.
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt
//!   key_file: server.key
//!   client_ca_file: ca.crt                       # optional
//!   client_auth_type: RequireAndVerifyClientCert # NoClientCert, VerifyClientCertIfGiven
//! basic_auth_users:
//!   prometheus: $2y$10$...                        # bcrypt
//! http_server_config: {}                         # accepted
//! ```
//!
//! The file and the files it names are re-read when they change, so certificates rotate without a
//! restart; a change that does not load keeps the previous settings and logs why.

use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    #[error("cannot read --web.config.file {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid --web.config.file {path}: {reason}")]
    Invalid { path: String, reason: String },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    tls_server_config: Option<TlsFile>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
    /// Accepted for compatibility with the exporter toolkit (http2, headers); HTTP/1.1 is served.
    #[serde(default)]
    #[allow(dead_code)]
    http_server_config: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert_file: PathBuf,
    key_file: PathBuf,
    client_ca_file: Option<PathBuf>,
    client_auth_type: Option<String>,
    min_version: Option<String>,
    max_version: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientAuth {
    None,
    IfGiven,
    Required,
}

/// The settings in force.
pub struct WebSettings {
    /// `None`: plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    users: BTreeMap<String, String>,
    /// Credentials already verified against a bcrypt hash, as keyed hashes: bcrypt is slow on
    /// purpose, and Prometheus sends the same credentials every scrape.
    verified: Mutex<HashSet<u64>>,
    hasher: RandomState,
    checks: tokio::sync::Semaphore,
    /// The most checks that held a permit at once, for the tests of the bound.
    peak_checks: AtomicUsize,
    /// The config file and the files it names: a change to any of them triggers a reload.
    files: Vec<PathBuf>,
}

impl WebSettings {
    /// No TLS, no auth.
    pub fn open() -> Self {
        Self::new(None, BTreeMap::new(), Vec::new())
    }

    fn new(
        tls: Option<Arc<rustls::ServerConfig>>,
        users: BTreeMap<String, String>,
        files: Vec<PathBuf>,
    ) -> Self {
        Self {
            tls,
            users,
            verified: Mutex::new(HashSet::new()),
            hasher: RandomState::new(),
            checks: tokio::sync::Semaphore::new(CONCURRENT_PASSWORD_CHECKS),
            peak_checks: AtomicUsize::new(0),
            files,
        }
    }

    pub fn requires_auth(&self) -> bool {
        !self.users.is_empty()
    }

    /// Whether an `Authorization` header value carries valid Basic credentials. A credential
    /// verified before answers at once; a new one waits for one of
    /// [`CONCURRENT_PASSWORD_CHECKS`] bcrypt checks, which run on the blocking pool: a storm of
    /// wrong passwords queues there and never occupies the runtime's workers (ingestion and
    /// scrapes with known credentials go on).
    pub async fn authorized(&self, header: Option<&str>) -> bool {
        if !self.requires_auth() {
            return true;
        }
        let Some((user, password)) = header.and_then(basic_credentials) else {
            return false;
        };
        let Some(hash) = self.users.get(&user).cloned() else {
            return false;
        };
        let key = self.hasher.hash_one((&user, &password, &hash));
        if self.is_verified(key) {
            return true;
        }
        let Ok(_permit) = self.checks.acquire().await else {
            return false;
        };
        // Another request may have verified the same credential while this one waited.
        if self.is_verified(key) {
            return true;
        }
        let running = CONCURRENT_PASSWORD_CHECKS - self.checks.available_permits();
        self.peak_checks.fetch_max(running, Ordering::AcqRel);
        let valid = tokio::task::spawn_blocking(move || bcrypt::verify(&password, &hash))
            .await
            .is_ok_and(|verified| verified.unwrap_or(false));
        if valid {
            self.verified
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key);
        }
        valid
    }

    fn is_verified(&self, key: u64) -> bool {
        self.verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&key)
    }

    /// The most bcrypt checks that ran at once.
    pub fn peak_password_checks(&self) -> usize {
        self.peak_checks.load(Ordering::Acquire)
    }
}

/// bcrypt checks running at once; further new credentials wait their turn.
pub const CONCURRENT_PASSWORD_CHECKS: usize = 2;

fn basic_credentials(header: &str) -> Option<(String, String)> {
    let encoded = header
        .strip_prefix("Basic ")
        .or_else(|| header.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Loads the web config file and the files it names.
pub fn load(path: &Path) -> Result<WebSettings, WebConfigError> {
    let invalid = |reason: String| WebConfigError::Invalid {
        path: path.display().to_string(),
        reason,
    };
    let file = read_file(path)?;
    for (user, hash) in &file.basic_auth_users {
        if !hash.starts_with("$2") {
            return Err(invalid(format!(
                "basic_auth_users.{user}: not a bcrypt hash (it starts with $2a$, $2b$ or $2y$)"
            )));
        }
    }
    let files = named_files(path, &file);
    let base = path.parent().unwrap_or(Path::new("."));
    let tls = match &file.tls_server_config {
        None => None,
        Some(tls) => Some(Arc::new(tls_config(tls, base).map_err(invalid)?)),
    };
    Ok(WebSettings::new(tls, file.basic_auth_users, files))
}

/// The config file and the files it names, whether or not they load: what a reload watches.
fn watched_files(path: &Path) -> Vec<PathBuf> {
    read_file(path).map_or_else(|_| vec![path.to_owned()], |file| named_files(path, &file))
}

fn named_files(path: &Path, file: &File) -> Vec<PathBuf> {
    let base = path.parent().unwrap_or(Path::new("."));
    let mut files = vec![path.to_owned()];
    if let Some(tls) = &file.tls_server_config {
        files.push(resolve(base, &tls.cert_file));
        files.push(resolve(base, &tls.key_file));
        files.extend(tls.client_ca_file.as_deref().map(|ca| resolve(base, ca)));
    }
    files
}

/// The config file read and parsed, its named files not yet opened.
fn read_file(path: &Path) -> Result<File, WebConfigError> {
    let invalid = |reason: String| WebConfigError::Invalid {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|source| WebConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let file: File = if text.trim().is_empty() {
        File::default()
    } else {
        serde_saphyr::from_str(&text).map_err(|error| {
            let message = error.to_string();
            invalid(
                message
                    .lines()
                    .next()
                    .unwrap_or(&message)
                    .trim_start_matches("error: ")
                    .to_owned(),
            )
        })?
    };
    Ok(file)
}

/// Relative file names are relative to the web config file, as in the exporter toolkit.
fn resolve(base: &Path, file: &Path) -> PathBuf {
    if file.is_absolute() {
        file.to_owned()
    } else {
        base.join(file)
    }
}

fn tls_config(tls: &TlsFile, base: &Path) -> Result<rustls::ServerConfig, String> {
    let client_auth = match tls.client_auth_type.as_deref() {
        None | Some("NoClientCert") => ClientAuth::None,
        Some("VerifyClientCertIfGiven") => ClientAuth::IfGiven,
        Some("RequireAndVerifyClientCert") => ClientAuth::Required,
        Some(other) => {
            return Err(format!(
                "tls_server_config.client_auth_type {other:?} is not supported: use NoClientCert, \
                 VerifyClientCertIfGiven or RequireAndVerifyClientCert"
            ));
        }
    };
    let versions = tls_versions(tls.min_version.as_deref(), tls.max_version.as_deref())?;
    let cert_path = resolve(base, &tls.cert_file);
    let key_path = resolve(base, &tls.key_file);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|error| {
            format!(
                "tls_server_config.cert_file {}: {error}",
                cert_path.display()
            )
        })?;
    if certs.is_empty() {
        return Err(format!(
            "tls_server_config.cert_file {}: no certificate",
            cert_path.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|error| format!("tls_server_config.key_file {}: {error}", key_path.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|error| format!("tls_server_config: {error}"))?;
    let builder = match (client_auth, &tls.client_ca_file) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (_, None) => {
            return Err(
                "tls_server_config.client_ca_file is required to verify client certificates".into(),
            );
        }
        (auth, Some(ca_file)) => {
            let ca_path = resolve(base, ca_file);
            let mut roots = rustls::RootCertStore::empty();
            let cas = CertificateDer::pem_file_iter(&ca_path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|error| {
                    format!(
                        "tls_server_config.client_ca_file {}: {error}",
                        ca_path.display()
                    )
                })?;
            for ca in cas {
                roots.add(ca).map_err(|error| {
                    format!(
                        "tls_server_config.client_ca_file {}: {error}",
                        ca_path.display()
                    )
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth == ClientAuth::IfGiven {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|error| format!("tls_server_config.client_ca_file: {error}"))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|error| {
        format!("tls_server_config: the key does not fit the certificate: {error}")
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn tls_versions(
    min: Option<&str>,
    max: Option<&str>,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
    let rank = |name: &str, key: &str| match name {
        "TLS12" => Ok(12),
        "TLS13" => Ok(13),
        // rustls speaks neither.
        "TLS10" | "TLS11" => Err(format!(
            "tls_server_config.{key} {name} is not supported: use TLS12 or TLS13"
        )),
        other => Err(format!(
            "tls_server_config.{key} {other:?} is not a TLS version"
        )),
    };
    let low = min.map_or(Ok(12), |m| rank(m, "min_version"))?;
    let high = max.map_or(Ok(13), |m| rank(m, "max_version"))?;
    let versions: Vec<_> = [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
        .into_iter()
        .filter(|(rank, _)| (low..=high).contains(rank))
        .map(|(_, version)| version)
        .collect();
    if versions.is_empty() {
        return Err("tls_server_config: min_version is above max_version".into());
    }
    Ok(versions)
}

/// The web settings in force, reloaded when their files change.
pub struct WebConfig {
    path: Option<PathBuf>,
    current: RwLock<Arc<WebSettings>>,
    /// The files a reload watches and their modification times when last looked at.
    watched: Mutex<(Vec<PathBuf>, Vec<Option<SystemTime>>)>,
}

impl WebConfig {
    /// Loads `path` (if any); an error here stops start-up.
    pub fn start(path: Option<&Path>) -> Result<Self, WebConfigError> {
        let settings = match path {
            Some(path) => load(path)?,
            None => WebSettings::open(),
        };
        let stamps = file_stamps(&settings.files);
        let watched = Mutex::new((settings.files.clone(), stamps));
        Ok(Self {
            path: path.map(Path::to_owned),
            current: RwLock::new(Arc::new(settings)),
            watched,
        })
    }

    pub fn current(&self) -> Arc<WebSettings> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reloads when a file changed; returns whether new settings took effect. A file that does not
    /// load leaves the previous settings in force. What is watched is what the config file names
    /// now, even when it fails to load (a certificate created after a failed reload is noticed),
    /// and the times are taken before loading (a write during the load shows at the next poll).
    pub fn reload_if_changed(&self) -> Result<bool, WebConfigError> {
        let Some(path) = &self.path else {
            return Ok(false);
        };
        {
            let mut watched = self.watched.lock().unwrap_or_else(|e| e.into_inner());
            if file_stamps(&watched.0) == watched.1 {
                return Ok(false);
            }
            let files = watched_files(path);
            let stamps = file_stamps(&files);
            *watched = (files, stamps);
        }
        let settings = load(path)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(settings);
        Ok(true)
    }
}

/// Modification times of `files`; a missing file has none.
fn file_stamps(files: &[PathBuf]) -> Vec<Option<SystemTime>> {
    files
        .iter()
        .map(|file| std::fs::metadata(file).and_then(|m| m.modified()).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// A self-signed certificate and its key, as PEM files in `dir`.
    fn certificate(dir: &Path, name: &str) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        write(dir, &format!("{name}.pem"), &cert.pem());
        write(dir, &format!("{name}.key"), &key.serialize_pem());
    }

    #[test]
    fn a_certificate_created_after_a_failed_reload_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "web.yml", "");
        let web = WebConfig::start(Some(&path)).unwrap();
        assert!(web.current().tls.is_none());
        // The file now names a certificate that does not exist yet: the reload fails and plain
        // HTTP stays in force.
        std::thread::sleep(std::time::Duration::from_millis(20));
        write(
            dir.path(),
            "web.yml",
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n",
        );
        assert!(web.reload_if_changed().is_err());
        assert!(web.current().tls.is_none());
        assert!(!web.reload_if_changed().unwrap(), "nothing changed since");
        // The certificate arrives (cert-manager writes it a little later): TLS takes effect
        // without another change to the config file.
        certificate(dir.path(), "server");
        assert!(web.reload_if_changed().unwrap());
        assert!(web.current().tls.is_some());
    }

    #[tokio::test]
    async fn basic_auth_checks_bcrypt_and_caches() {
        let dir = tempfile::tempdir().unwrap();
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let path = write(
            dir.path(),
            "web.yml",
            &format!("basic_auth_users:\n  prom: '{hash}'\n"),
        );
        let settings = load(&path).unwrap();
        assert!(settings.tls.is_none());
        let header = |user: &str, password: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )
        };
        assert!(settings.authorized(Some(&header("prom", "s3cret"))).await);
        assert!(
            settings.authorized(Some(&header("prom", "s3cret"))).await,
            "cached"
        );
        assert!(!settings.authorized(Some(&header("prom", "wrong"))).await);
        assert!(!settings.authorized(Some(&header("other", "s3cret"))).await);
        assert!(!settings.authorized(None).await);
        assert!(!settings.authorized(Some("Bearer token")).await);
        assert!(WebSettings::open().authorized(None).await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_password_storm_queues_for_bounded_checks_and_known_credentials_skip_it() {
        let dir = tempfile::tempdir().unwrap();
        let hash = bcrypt::hash("s3cret", 6).unwrap();
        let path = write(
            dir.path(),
            "web.yml",
            &format!("basic_auth_users:\n  prom: '{hash}'\n"),
        );
        let settings = Arc::new(load(&path).unwrap());
        let header = |password: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("prom:{password}"))
            )
        };
        assert!(settings.authorized(Some(&header("s3cret"))).await);
        let storm: Vec<_> = (0..200)
            .map(|n| {
                let settings = settings.clone();
                let header = header(&format!("guess-{n}"));
                tokio::spawn(async move { settings.authorized(Some(&header)).await })
            })
            .collect();
        // Once the storm is checking, the known credential is answered from the cache while the
        // rest of the storm waits its turn, and the runtime's workers stay free for it.
        while settings.peak_password_checks() == 0 {
            tokio::task::yield_now().await;
        }
        assert!(settings.authorized(Some(&header("s3cret"))).await);
        assert!(
            storm.iter().any(|check| !check.is_finished()),
            "the storm was still queued when the known credential was answered"
        );
        for check in storm {
            assert!(!check.await.unwrap());
        }
        assert_eq!(settings.peak_password_checks(), CONCURRENT_PASSWORD_CHECKS);
    }

    #[test]
    fn bad_files_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        for (text, needle) in [
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAnyClientCert\n",
                "client_auth_type",
            ),
            (
                "tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n",
                "cert_file",
            ),
            (
                "basic_auth_users:\n  prom: plaintext\n",
                "basic_auth_users.prom",
            ),
            ("unknown_key: 1\n", "unknown_key"),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS10\n",
                "min_version",
            ),
        ] {
            let path = write(dir.path(), "web.yml", text);
            let error = load(&path).err().expect(text).to_string();
            assert!(error.contains(needle), "{text}: {error}");
            assert!(!error.contains('\n'), "{error}");
        }
    }
}
