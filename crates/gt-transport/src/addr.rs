//! Addresses (`host:port` or `unix:/path`), listeners and connected streams.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::Duration;

/// Where a GT process listens or connects.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Addr {
    /// `host:port`
    Tcp(String),
    /// `unix:/path/to/socket`
    Unix(PathBuf),
}

impl std::str::FromStr for Addr {
    type Err = gt_core::Error;
    fn from_str(s: &str) -> Result<Addr, Self::Err> {
        let s = s.trim();
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(gt_core::Error::Config(
                    "empty Unix socket path in 'unix:'".into(),
                ));
            }
            return Ok(Addr::Unix(PathBuf::from(path)));
        }
        match s.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                Ok(Addr::Tcp(s.to_string()))
            }
            _ => Err(gt_core::Error::Config(format!(
                "'{s}' is not an address: expected host:port or unix:/path"
            ))),
        }
    }
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Addr::Tcp(a) => f.write_str(a),
            Addr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// A connected byte stream.
#[derive(Debug)]
pub enum Stream {
    /// TCP (with `TCP_NODELAY`).
    Tcp(TcpStream),
    /// Unix domain socket.
    Unix(UnixStream),
}

impl Stream {
    /// Connects to `addr`, retrying refused connections until `timeout` (a server that is still
    /// starting up is not an error).
    pub fn connect(addr: &Addr, timeout: Duration) -> io::Result<Stream> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let attempt = match addr {
                Addr::Tcp(a) => Self::connect_tcp(a),
                Addr::Unix(p) => UnixStream::connect(p).map(Stream::Unix),
            };
            match attempt {
                Ok(s) => return Ok(s),
                Err(e) if std::time::Instant::now() < deadline && retryable(&e) => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("cannot connect to {addr}: {e}"),
                    ))
                }
            }
        }
    }

    fn connect_tcp(a: &str) -> io::Result<Stream> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        for sa in a.to_socket_addrs()? {
            match TcpStream::connect_timeout(&sa, Duration::from_secs(5)) {
                Ok(s) => {
                    s.set_nodelay(true)?;
                    return Ok(Stream::Tcp(s));
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// A second handle to the same connection (one for reading, one for writing).
    pub fn try_clone(&self) -> io::Result<Stream> {
        match self {
            Stream::Tcp(s) => s.try_clone().map(Stream::Tcp),
            Stream::Unix(s) => s.try_clone().map(Stream::Unix),
        }
    }

    /// Closes both directions; blocked readers on any clone return.
    pub fn shutdown(&self) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Both),
            Stream::Unix(s) => s.shutdown(Shutdown::Both),
        };
    }

    /// Read timeout (`None` blocks forever).
    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(t),
            Stream::Unix(s) => s.set_read_timeout(t),
        }
    }

    /// The remote end, for logs.
    pub fn peer_name(&self) -> String {
        match self {
            Stream::Tcp(s) => s
                .peer_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| "tcp:?".into()),
            Stream::Unix(_) => "unix-peer".into(),
        }
    }
}

fn retryable(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound
    )
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
        }
    }
}

/// A listening socket.
#[derive(Debug)]
pub enum Listener {
    /// TCP listener.
    Tcp(TcpListener),
    /// Unix listener; the socket file is removed on drop.
    Unix(UnixListener, PathBuf),
}

impl Listener {
    /// Binds `addr`. A stale Unix socket file (nobody listening) is replaced; a live one is an
    /// error.
    pub fn bind(addr: &Addr) -> io::Result<Listener> {
        match addr {
            Addr::Tcp(a) => TcpListener::bind(a)
                .map(Listener::Tcp)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {a}: {e}"))),
            Addr::Unix(p) => {
                if p.exists() {
                    if UnixStream::connect(p).is_ok() {
                        return Err(io::Error::new(
                            io::ErrorKind::AddrInUse,
                            format!("{} is in use by a running server", p.display()),
                        ));
                    }
                    std::fs::remove_file(p)?;
                }
                UnixListener::bind(p)
                    .map(|l| Listener::Unix(l, p.clone()))
                    .map_err(|e| {
                        io::Error::new(e.kind(), format!("cannot listen on {}: {e}", p.display()))
                    })
            }
        }
    }

    /// The bound address (with the real port when bound to port 0).
    pub fn local_addr(&self) -> Addr {
        match self {
            Listener::Tcp(l) => {
                Addr::Tcp(l.local_addr().map(|a| a.to_string()).unwrap_or_default())
            }
            Listener::Unix(_, p) => Addr::Unix(p.clone()),
        }
    }

    /// Waits for the next connection.
    pub fn accept(&self) -> io::Result<Stream> {
        match self {
            Listener::Tcp(l) => {
                let (s, _) = l.accept()?;
                s.set_nodelay(true)?;
                Ok(Stream::Tcp(s))
            }
            Listener::Unix(l, _) => l.accept().map(|(s, _)| Stream::Unix(s)),
        }
    }

    /// Makes a blocked `accept` return soon (used for shutdown): connects to itself.
    pub fn wake(&self) {
        let _ = match self {
            Listener::Tcp(l) => l.local_addr().and_then(TcpStream::connect).map(drop),
            Listener::Unix(_, p) => UnixStream::connect(p).map(drop),
        };
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, p) = self {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses() {
        assert_eq!(
            "127.0.0.1:9000".parse::<Addr>().unwrap(),
            Addr::Tcp("127.0.0.1:9000".into())
        );
        assert_eq!(
            "unix:/tmp/x.sock".parse::<Addr>().unwrap(),
            Addr::Unix("/tmp/x.sock".into())
        );
        assert!("localhost".parse::<Addr>().is_err());
        assert!("unix:".parse::<Addr>().is_err());
        assert!("host:notaport".parse::<Addr>().is_err());
    }
}
