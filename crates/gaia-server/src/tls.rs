//! TLS, and optionally mutual TLS, on the listener (`[server.tls]`), with rustls and its `ring`
//! provider.
//!
//! - [`server_config`] reads the PEM files of a [`TlsConfig`] into a `rustls::ServerConfig`: the
//!   certificate chain and private key, and, when `client_ca_path` is set, the CA that client
//!   certificates must chain to ([`WebPkiClientVerifier`]: required with `require_client_cert`,
//!   optional but checked otherwise). A missing or unusable file is a [`TlsError`] naming the key and
//!   the path.
//! - [`TlsListener`] accepts TCP connections and runs each TLS handshake in a task of its own, bounded by
//!   [`HANDSHAKE_TIMEOUT`] (at most [`MAX_PENDING_HANDSHAKES`] at once), so a slow or broken client never
//!   holds up the others; finished handshakes are handed to `axum::serve`.
//! - [`serve_tls`] is [`serve`](crate::serve) over a [`TlsListener`]: the same router, the same graceful
//!   shutdown.
//!
//! ALPN offers HTTP/2 and HTTP/1.1. WebSockets (`/ws/chat`) use HTTP/1.1 connections (browsers open
//! one for them, since the HTTP/2 connection does not announce extended CONNECT).
//!
//! Private keys never reach logs or error messages.

use crate::state::AppState;

use gaia_core::config::TlsConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// Longest a client gets to complete the TLS handshake before its connection is closed.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Most TLS handshakes in progress at once; further connections wait in the kernel's accept queue.
pub const MAX_PENDING_HANDSHAKES: usize = 1024;

/// A TLS configuration that cannot be used. The messages name the configuration key and the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("key `server.tls.{key}`: cannot read `{}`: {source}", path.display())]
    Read {
        /// Configuration key (`cert_path`, `key_path`, `client_ca_path`).
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file holds no PEM item of the expected kind, or a malformed one.
    #[error("key `server.tls.{key}`: `{}` {problem}", path.display())]
    Pem {
        /// Configuration key.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong (never any key material).
        problem: String,
    },
    /// rustls refused the material (a key that does not match the certificate, an unusable CA…).
    #[error("server.tls: {0}")]
    Rustls(String),
}

/// The `ring` crypto provider. Chosen explicitly: the dependency graph also builds rustls with
/// `aws-lc-rs`, so there is no single process-wide default to rely on.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { key, path: path.to_path_buf(), source })
}

/// Every certificate in a PEM file (at least one).
fn load_certs(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(key, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>().map_err(|e| TlsError::Pem {
        key,
        path: path.to_path_buf(),
        problem: format!("is not a valid PEM certificate file: {e}"),
    })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            key,
            path: path.to_path_buf(),
            problem: "holds no certificate (expected `-----BEGIN CERTIFICATE-----`)".into(),
        });
    }
    Ok(certs)
}

/// The first private key of a PEM file (PKCS#8, PKCS#1 or SEC1). Parse errors are not detailed: they
/// could quote the file.
fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read("key_path", path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::Pem {
        key: "key_path",
        path: path.to_path_buf(),
        problem: match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "holds no private key (expected `-----BEGIN PRIVATE KEY-----` or an RSA / EC key)".into()
            }
            _ => "is not a valid PEM private key file".into(),
        },
    })
}

/// Reads the files of `cfg` into a rustls server configuration (ring provider, TLS 1.2 and 1.3, ALPN
/// `h2` and `http/1.1`, client certificates per `client_ca_path` / `require_client_cert`).
pub fn server_config(cfg: &TlsConfig) -> Result<Arc<ServerConfig>, TlsError> {
    if cfg.require_client_cert && cfg.client_ca_path.is_none() {
        return Err(TlsError::Rustls("`require_client_cert` needs `client_ca_path`".into()));
    }
    let provider = provider();
    let certs = load_certs("cert_path", &cfg.cert_path)?;
    let key = load_key(&cfg.key_path)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let builder = match &cfg.client_ca_path {
        Some(ca_path) => {
            let mut roots = RootCertStore::empty();
            for ca in load_certs("client_ca_path", ca_path)? {
                roots.add(ca).map_err(|e| TlsError::Pem {
                    key: "client_ca_path",
                    path: ca_path.clone(),
                    problem: format!("holds a certificate that cannot be a trust anchor: {e}"),
                })?;
            }
            let mut verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            if !cfg.require_client_cert {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier =
                verifier.build().map_err(|e| TlsError::Rustls(format!("client certificate verifier: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        TlsError::Rustls(format!(
            "the certificate (`cert_path`) and private key (`key_path`) cannot be used together: {e}"
        ))
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A listener that hands out connections whose TLS handshake has completed (an `axum::serve`
/// [`Listener`](axum::serve::Listener)). Handshakes run in tasks of their own, each bounded by
/// [`HANDSHAKE_TIMEOUT`]; failed ones are logged at debug level and dropped. Dropping the listener stops
/// accepting.
#[derive(Debug)]
pub struct TlsListener {
    ready: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
    acceptor: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Starts accepting on `listener` with `config`. Call it inside a tokio runtime.
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>) -> std::io::Result<TlsListener> {
        let local_addr = listener.local_addr()?;
        let (tx, ready) = tokio::sync::mpsc::channel(128);
        let acceptor = tokio::spawn(accept_loop(listener, TlsAcceptor::from(config), tx));
        Ok(TlsListener { ready, local_addr, acceptor })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept loop ended (only on abort): nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local_addr)
    }
}

/// Whether an accept error concerns only the connection being accepted (try the next one at once).
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset)
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    ready: tokio::sync::mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_PENDING_HANDSHAKES));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let (tcp, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::error!(error = %e, "cannot accept connections");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        // Streamed answers are many small writes (see `serve`).
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let (acceptor, ready) = (acceptor.clone(), ready.clone());
        tokio::spawn(async move {
            let _slot = slot;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => {
                    // Fails only when the server stopped accepting: the connection is then dropped.
                    let _ = ready.send((tls, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

/// [`serve`](crate::serve) with TLS: serves [`router`](crate::router) on `listener` through a [`TlsListener`] until
/// `shutdown` resolves, then drains and stops as [`serve`](crate::serve) does (`server.drain_secs`, `server.shutdown_grace_secs`).
///
/// ```no_run
/// # async fn run(state: gaia_server::AppState) -> Result<(), Box<dyn std::error::Error>> {
/// let tls = state.config().server.tls.clone().ok_or("no [server.tls]")?;
/// let config = gaia_server::tls::server_config(&tls)?; // before binding: bad files fail early
/// let listener = tokio::net::TcpListener::bind(&state.config().server.bind).await?;
/// gaia_server::serve_tls(listener, config, state, gaia_server::shutdown_signal()).await?;
/// # Ok(()) }
/// ```
pub async fn serve_tls(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let client_auth = match &state.config().server.tls {
        Some(t) if t.require_client_cert => "required",
        Some(t) if t.client_ca_path.is_some() => "optional",
        _ => "off",
    };
    tracing::info!(%addr, client_certificates = client_auth, "gaia listening (TLS)");
    // Tapped (a no-op) so the peer address reaches handlers as `ConnectInfo<SocketAddr>`, as with `serve`.
    let listener = axum::serve::ListenerExt::tap_io(TlsListener::new(listener, config)?, |_| {});
    crate::serve_with_grace(listener, state, shutdown).await
}
