//! TLS and mutual TLS on the listener: certificates made here with rcgen (a server CA, a client CA, a
//! rogue CA), the real server over `serve_tls`, reqwest (rustls) as the client.

use gaia_core::cache::MemoryCache;
use gaia_core::config::TlsConfig;
use gaia_core::storage::Storage;
use gaia_core::testing::{sqlite_db, TestDb};
use gaia_core::Config;
use gaia_providers::ProviderRegistry;
use gaia_server::tls::{server_config, TlsError};
use gaia_server::AppState;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

/// The name the server certificate is for; the client resolves it to the loopback address.
const HOST: &str = "gaia.test";

struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca { pem: cert.pem(), issuer: Issuer::new(params, key) }
}

/// A certificate signed by `ca`: (certificate PEM, private key PEM).
fn leaf(ca: &Ca, name: &str, purpose: ExtendedKeyUsagePurpose) -> (String, String) {
    let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![purpose];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// Every file a test needs, in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
    server_ca: String,
    /// A client certificate and key (PEM) from the client CA.
    client: String,
    /// A client certificate and key from a CA the server does not trust.
    rogue_client: String,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let server_ca = ca("Gaia test server CA");
        let (cert, key) = leaf(&server_ca, HOST, ExtendedKeyUsagePurpose::ServerAuth);
        std::fs::write(dir.path().join("server.pem"), cert).unwrap();
        std::fs::write(dir.path().join("server.key"), key).unwrap();
        let client_ca = ca("Gaia test client CA");
        std::fs::write(dir.path().join("clients-ca.pem"), &client_ca.pem).unwrap();
        let (cert, key) = leaf(&client_ca, "game-server", ExtendedKeyUsagePurpose::ClientAuth);
        let rogue = ca("Rogue CA");
        let (rcert, rkey) = leaf(&rogue, "game-server", ExtendedKeyUsagePurpose::ClientAuth);
        Pki { dir, server_ca: server_ca.pem, client: format!("{cert}{key}"), rogue_client: format!("{rcert}{rkey}") }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn tls(&self, client_ca: bool, require_client_cert: bool) -> TlsConfig {
        TlsConfig {
            cert_path: self.path("server.pem"),
            key_path: self.path("server.key"),
            client_ca_path: client_ca.then(|| self.path("clients-ca.pem")),
            require_client_cert,
        }
    }

    /// A client trusting the server CA, with an optional identity (certificate and key PEM).
    fn client(&self, addr: SocketAddr, identity: Option<&str>) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(reqwest::Certificate::from_pem(self.server_ca.as_bytes()).unwrap())
            .resolve(HOST, addr);
        if let Some(id) = identity {
            b = b.identity(reqwest::Identity::from_pem(id.as_bytes()).unwrap());
        }
        b.build().unwrap()
    }
}

struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _db: TestDb,
}

impl Server {
    async fn start(tls: TlsConfig) -> Server {
        let db = sqlite_db();
        let storage = Storage::connect(&db.url).await.unwrap();
        storage.migrate().await.unwrap();
        let mut config = Config { jwt_secret: Some("integration-test-secret-0123456789".into()), ..Config::default() };
        config.server.tls = Some(tls.clone());
        let state = AppState::new(config, storage, Arc::new(MemoryCache::new(100)), ProviderRegistry::new());
        let tls = server_config(&tls).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(gaia_server::serve_tls(listener, tls, state, async move {
            let _ = rx.await;
        }));
        Server { addr, stop: Some(tx), task, _db: db }
    }

    fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}://{HOST}:{}{path}", self.addr.port())
    }

    /// Signals shutdown and waits for `serve_tls` to return.
    async fn stop(mut self) -> std::io::Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        (&mut self.task).await.unwrap()
    }
}

async fn health(client: &reqwest::Client, url: &str) -> Result<u16, reqwest::Error> {
    Ok(client.get(url).send().await?.status().as_u16())
}

#[tokio::test]
async fn tls_serves_the_api_and_refuses_plain_http() {
    let pki = Pki::new();
    let server = Server::start(pki.tls(false, false)).await;
    let https = server.url("https", "/health");
    let client = pki.client(server.addr, None);

    // A client that never completes a handshake (silent), and one that sends garbage, hold up nobody.
    let silent = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut garbage = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    garbage.write_all(b"\x16\x03\x01\xff\xffnot a client hello").await.unwrap();
    assert_eq!(health(&client, &https).await.unwrap(), 200);
    let r = client.get(&https).send().await.unwrap();
    // ALPN picks HTTP/2 when the client offers it.
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body.is_object(), "{body}");
    let h1 = reqwest::Client::builder()
        .use_rustls_tls()
        .http1_only()
        .add_root_certificate(reqwest::Certificate::from_pem(pki.server_ca.as_bytes()).unwrap())
        .resolve(HOST, server.addr)
        .build()
        .unwrap();
    let r = h1.get(&https).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.version()), (200, reqwest::Version::HTTP_11));
    // Authentication and JSON errors work as over plain HTTP.
    let r = client.get(server.url("https", "/api/v1/conversations")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    drop((silent, garbage));

    // Plain HTTP on the TLS port gets no answer.
    let plain = reqwest::Client::builder().resolve(HOST, server.addr).build().unwrap();
    let r = health(&plain, &server.url("http", "/health")).await;
    assert!(r.is_err() || r.as_ref().is_ok_and(|s| *s != 200), "plain HTTP must fail: {r:?}");
    // A client that does not trust the server's CA refuses it.
    let untrusting = reqwest::Client::builder().use_rustls_tls().resolve(HOST, server.addr).build().unwrap();
    assert!(health(&untrusting, &https).await.is_err());
    // TLS still works after all that.
    assert_eq!(health(&client, &https).await.unwrap(), 200);

    // Graceful shutdown, as with `serve`.
    server.stop().await.unwrap();
}

#[tokio::test]
async fn mutual_tls_required_refuses_clients_without_a_trusted_certificate() {
    let pki = Pki::new();
    let server = Server::start(pki.tls(true, true)).await;
    let https = server.url("https", "/health");
    assert!(health(&pki.client(server.addr, None), &https).await.is_err(), "no client certificate");
    assert!(health(&pki.client(server.addr, Some(&pki.rogue_client)), &https).await.is_err(), "untrusted CA");
    assert_eq!(health(&pki.client(server.addr, Some(&pki.client)), &https).await.unwrap(), 200);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn optional_client_certificates_are_checked_when_sent() {
    let pki = Pki::new();
    let server = Server::start(pki.tls(true, false)).await;
    let https = server.url("https", "/health");
    assert_eq!(health(&pki.client(server.addr, None), &https).await.unwrap(), 200);
    assert_eq!(health(&pki.client(server.addr, Some(&pki.client)), &https).await.unwrap(), 200);
    assert!(health(&pki.client(server.addr, Some(&pki.rogue_client)), &https).await.is_err(), "untrusted CA");
    server.stop().await.unwrap();
}

fn config_error(tls: &TlsConfig) -> String {
    let e = server_config(tls).unwrap_err();
    e.to_string()
}

#[test]
fn unusable_files_are_clear_configuration_errors() {
    let pki = Pki::new();
    let missing = pki.path("nope/server.pem");
    let e = server_config(&TlsConfig { cert_path: missing.clone(), ..pki.tls(false, false) }).unwrap_err();
    assert!(matches!(e, TlsError::Read { key: "cert_path", .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("server.tls.cert_path") && msg.contains(&missing.display().to_string()), "{msg}");

    let write = |name: &str, text: &str| -> PathBuf {
        let p = pki.path(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let not_pem = write("notes.txt", "hello");
    let msg = config_error(&TlsConfig { cert_path: not_pem.clone(), ..pki.tls(false, false) });
    assert!(msg.contains("server.tls.cert_path") && msg.contains("no certificate"), "{msg}");
    // A key file holding only a certificate; a broken key whose text must not be echoed.
    let msg = config_error(&TlsConfig { key_path: pki.path("server.pem"), ..pki.tls(false, false) });
    assert!(msg.contains("server.tls.key_path") && msg.contains("no private key"), "{msg}");
    let broken = write("broken.key", "-----BEGIN PRIVATE KEY-----\nSECRET$$MATERIAL\n-----END PRIVATE KEY-----\n");
    let msg = config_error(&TlsConfig { key_path: broken, ..pki.tls(false, false) });
    assert!(msg.contains("server.tls.key_path") && !msg.contains("SECRET"), "{msg}");
    // A key that does not belong to the certificate.
    let other = ca("Other");
    let (_, other_key) = leaf(&other, HOST, ExtendedKeyUsagePurpose::ServerAuth);
    let other_key = write("other.key", &other_key);
    let msg = config_error(&TlsConfig { key_path: other_key, ..pki.tls(false, false) });
    assert!(msg.contains("cannot be used together"), "{msg}");
    // A missing client CA file.
    let msg = config_error(&TlsConfig { client_ca_path: Some(pki.path("missing-ca.pem")), ..pki.tls(true, true) });
    assert!(msg.contains("server.tls.client_ca_path"), "{msg}");
    assert!(config_error(&TlsConfig { client_ca_path: None, ..pki.tls(false, true) }).contains("client_ca_path"));
}

#[test]
fn tls_is_read_from_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let file = |text: &str| -> PathBuf {
        let p = dir.path().join("gaia.toml");
        std::fs::write(&p, text).unwrap();
        p
    };
    let p = file(
        "[server.tls]\ncert_path = \"/etc/gaia/server.pem\"\nkey_path = \"/etc/gaia/server.key\"\n\
         client_ca_path = \"/etc/gaia/ca.pem\"\nrequire_client_cert = true\n",
    );
    let c = Config::load_from(Some(&p), Vec::new()).unwrap();
    let tls = c.server.tls.unwrap();
    assert_eq!(tls.cert_path, Path::new("/etc/gaia/server.pem"));
    assert_eq!(tls.client_ca_path.as_deref(), Some(Path::new("/etc/gaia/ca.pem")));
    assert!(tls.require_client_cert);
    let p = file("[server.tls]\ncert_path = \"a.pem\"\nkey_path = \"a.key\"\nrequire_client_cert = true\n");
    let e = Config::load_from(Some(&p), Vec::new()).unwrap_err();
    assert!(e.to_string().contains("server.tls.require_client_cert"), "{e}");
    let p = file("[server.tls]\ncert_path = \"a.pem\"\n");
    let e = Config::load_from(Some(&p), Vec::new()).unwrap_err();
    assert!(e.to_string().contains("key_path"), "{e}");
    assert!(Config::load_from(None, Vec::new()).unwrap().server.tls.is_none(), "plain HTTP by default");
}
