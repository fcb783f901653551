//! `[server.tls]`: TLS, and optionally mutual TLS, on the listener.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// TLS on the listener (`[server.tls]`), optionally with client certificates (mutual TLS). The files
/// are read when the server starts (`gaia_server::tls`); a missing or unreadable one is a configuration
/// error naming the key and the path.
///
/// ```toml
/// [server.tls]
/// cert_path = "/etc/gaia/server.pem"
/// key_path = "/etc/gaia/server.key"
/// client_ca_path = "/etc/gaia/clients-ca.pem"   # optional: enables client certificates
/// require_client_cert = true                     # refuse clients without one
/// ```
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The server's certificate chain (PEM, leaf first).
    pub cert_path: PathBuf,
    /// The server's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_path: PathBuf,
    /// CA certificates (PEM) that client certificates must chain to; setting it enables client
    /// authentication.
    #[serde(default)]
    pub client_ca_path: Option<PathBuf>,
    /// Refuse clients without a valid certificate (needs `client_ca_path`). When false, a client
    /// certificate is optional, but checked when one is sent.
    #[serde(default)]
    pub require_client_cert: bool,
}

impl TlsConfig {
    /// Checks what can be checked without reading the files.
    pub(crate) fn validate(&self) -> crate::Result<()> {
        if self.cert_path.as_os_str().is_empty() || self.key_path.as_os_str().is_empty() {
            return Err(crate::CoreError::Config(
                "key `server.tls`: `cert_path` and `key_path` must both name PEM files".into(),
            ));
        }
        if self.require_client_cert && self.client_ca_path.is_none() {
            return Err(crate::CoreError::Config(
                "key `server.tls.require_client_cert`: needs `client_ca_path` (the CA that client certificates \
                 must chain to)"
                    .into(),
            ));
        }
        Ok(())
    }
}
