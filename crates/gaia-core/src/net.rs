//! Listening sockets for Gaia's servers (the API server, the mock upstream).
//!
//! Tokio's `TcpListener::bind` asks the kernel to queue 128 connections not yet accepted. A storm of
//! new connections (thousands of game clients reconnecting after a restart, a burst of streams)
//! overflows that queue: the kernel drops the SYNs, and the clients only retry after 1, 3, 7 s.
//! [`listen`] asks for [`LISTEN_BACKLOG`] instead (the kernel caps it at `net.core.somaxconn`).
//!
//! And what counts as this machine for the URLs Gaia calls ([`is_loopback_host`]): the one rule
//! behind "plain http only to loopback" for providers' keys and identity providers' key sets.

use std::io;

/// Whether `host` (a URL's host, as a URL parser gives it: a domain, an IPv4 address, or an IPv6
/// address with or without brackets) is this machine's loopback: `localhost`, `127.0.0.0/8`,
/// `::1`. Requests there do not cross a network.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
use tokio::net::{TcpListener, TcpSocket};

/// Connections the kernel may queue for a listener before it accepts them.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Listens on `addr` (`host:port`; the first of its addresses that binds) with [`LISTEN_BACKLOG`]
/// and, on Unix, `SO_REUSEADDR` as tokio's own `bind` sets it (a restarted server binds while the
/// old one's connections linger).
pub async fn listen(addr: &str) -> io::Result<TcpListener> {
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        let socket = if a.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        #[cfg(unix)]
        socket.set_reuseaddr(true)?;
        match socket.bind(a) {
            Ok(()) => return socket.listen(LISTEN_BACKLOG),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("{addr} names no address"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// More connections than tokio's default backlog (128) arrive before any is accepted: the
    /// kernel completes every handshake instead of dropping SYNs (which would leave clients waiting
    /// for their retry, a second or more later).
    #[tokio::test]
    async fn a_burst_of_connections_is_queued_not_dropped() {
        let listener = listen("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connects = (0..600).map(|_| tokio::spawn(tokio::net::TcpStream::connect(addr)));
        // Nothing is accepted until every connection is made: each waits only on the kernel.
        let all = tokio::time::timeout(std::time::Duration::from_secs(30), futures::future::join_all(connects))
            .await
            .expect("every connection is queued by the kernel (a dropped SYN waits for a retry)");
        assert!(all.into_iter().all(|c| c.unwrap().is_ok()));
        drop(listener);
        assert!(listen("127.0.0.1").await.is_err(), "no port");
    }
}
