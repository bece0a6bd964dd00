//! Blocking frame reader and writer over a [`Stream`], and the handshake on top of them.

use crate::Stream;
use gt_core::Error;
use gt_proto::frame::{decode_batch, encode_batch, frame_len};
use gt_proto::{Hello, Welcome};
use serde::{de::DeserializeOwned, Serialize};
use std::io::{BufReader, ErrorKind, Read, Write};
use std::time::Duration;

/// Reads frames, enforcing the size limit before allocating.
pub struct FrameReader {
    inner: BufReader<Stream>,
    max: usize,
    buf: Vec<u8>,
}

impl FrameReader {
    /// A reader over `stream` accepting frames up to `max` bytes.
    pub fn new(stream: Stream, max: usize) -> FrameReader {
        FrameReader {
            inner: BufReader::with_capacity(1 << 16, stream),
            max,
            buf: Vec::new(),
        }
    }

    /// The next batch; `Ok(None)` when the peer closed cleanly between frames.
    pub fn recv<M: DeserializeOwned>(&mut self) -> Result<Option<Vec<M>>, Error> {
        let mut prefix = [0u8; 4];
        match self.inner.read_exact(&mut prefix) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let len = frame_len(prefix, self.max).map_err(|e| Error::Protocol(e.to_string()))?;
        self.buf.clear();
        self.buf.resize(len, 0);
        self.inner
            .read_exact(&mut self.buf)
            .map_err(|e| match e.kind() {
                ErrorKind::UnexpectedEof => {
                    Error::Protocol(format!("connection closed inside a frame of {len} bytes"))
                }
                _ => e.into(),
            })?;
        let msgs = decode_batch(&self.buf).map_err(|e| Error::Protocol(e.to_string()))?;
        if self.buf.capacity() > 1 << 20 {
            self.buf = Vec::new(); // don't pin a big upload's buffer forever
        }
        Ok(Some(msgs))
    }

    /// The underlying stream.
    pub fn stream(&self) -> &Stream {
        self.inner.get_ref()
    }
}

/// Writes frames.
pub struct FrameWriter {
    stream: Stream,
    buf: Vec<u8>,
}

impl FrameWriter {
    /// A writer over `stream`.
    pub fn new(stream: Stream) -> FrameWriter {
        FrameWriter {
            stream,
            buf: Vec::new(),
        }
    }

    /// Queues one frame (not yet written).
    pub fn push<M: Serialize>(&mut self, msgs: &[M]) {
        encode_batch(msgs, &mut self.buf);
    }

    /// Writes everything queued.
    pub fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            self.stream.write_all(&self.buf)?;
            self.buf.clear();
            if self.buf.capacity() > 1 << 22 {
                self.buf = Vec::new();
            }
        }
        Ok(())
    }

    /// Closes the connection in both directions.
    pub fn shutdown(&self) {
        self.stream.shutdown();
    }

    /// Queues and writes one frame.
    pub fn send<M: Serialize>(&mut self, msgs: &[M]) -> std::io::Result<()> {
        self.push(msgs);
        self.flush()
    }
}

/// Reads exactly one frame, unbuffered, so nothing after it is consumed (the handshake is
/// followed by the connection's regular traffic, read by another reader).
fn read_exact_frame<M: DeserializeOwned>(
    stream: &Stream,
    max: usize,
) -> Result<Option<Vec<M>>, Error> {
    let mut s = stream.try_clone()?;
    let mut prefix = [0u8; 4];
    match s.read_exact(&mut prefix) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = frame_len(prefix, max).map_err(|e| Error::Protocol(e.to_string()))?;
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf)?;
    decode_batch(&buf)
        .map(Some)
        .map_err(|e| Error::Protocol(e.to_string()))
}

/// The connecting side: sends `hello`, waits for the answer. Returns the accepted id and the
/// worker count, or the server's reason for refusing.
pub fn connect_handshake(stream: &Stream, hello: &Hello, max: usize) -> Result<(u32, u32), Error> {
    let mut w = FrameWriter::new(stream.try_clone()?);
    w.send(std::slice::from_ref(hello))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let answer = read_exact_frame::<Welcome>(stream, max);
    stream.set_read_timeout(None)?;
    match answer? {
        Some(v) if v.len() == 1 => match v.into_iter().next().unwrap() {
            Welcome::Accepted { id, workers } => Ok((id, workers)),
            Welcome::Rejected { reason } => {
                Err(Error::Connection(format!("refused by server: {reason}")))
            }
        },
        Some(_) => Err(Error::Protocol(
            "handshake answer is not one Welcome".into(),
        )),
        None => Err(Error::Connection(
            "server closed the connection during the handshake".into(),
        )),
    }
}

/// The accepting side: reads the `Hello` (within `timeout`), validates it, and on failure answers
/// `Rejected` and returns the reason. On success the caller sends `Welcome::Accepted`.
pub fn accept_handshake(
    stream: &Stream,
    token: Option<&str>,
    timeout: Duration,
) -> Result<Hello, Error> {
    stream.set_read_timeout(Some(timeout))?;
    // Handshakes are tiny; a small limit stops garbage from asking for a huge buffer.
    let got = read_exact_frame::<Hello>(stream, 64 * 1024);
    stream.set_read_timeout(None)?;
    let reject = |reason: String| {
        if let Ok(s) = stream.try_clone() {
            let _ = FrameWriter::new(s).send(&[Welcome::Rejected {
                reason: reason.clone(),
            }]);
        }
        Error::Protocol(reason)
    };
    let hello = match got {
        Ok(Some(v)) if v.len() == 1 => v.into_iter().next().unwrap(),
        Ok(Some(_)) => return Err(reject("handshake must be exactly one Hello".into())),
        Ok(None) => return Err(Error::Connection("closed before the handshake".into())),
        Err(e) => return Err(reject(format!("bad handshake: {e}"))),
    };
    hello.validate(token).map_err(reject)?;
    Ok(hello)
}

/// Sends the acceptance answer.
pub fn send_welcome(stream: &Stream, id: u32, workers: u32) -> Result<(), Error> {
    FrameWriter::new(stream.try_clone()?).send(&[Welcome::Accepted { id, workers }])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Addr, Listener};
    use gt_proto::Role;

    #[test]
    fn handshake_accepts_and_rejects() {
        let l = Listener::bind(&Addr::Tcp("127.0.0.1:0".into())).unwrap();
        let addr = l.local_addr();
        let server = std::thread::spawn(move || {
            let mut results = Vec::new();
            for _ in 0..3 {
                let s = l.accept().unwrap();
                let r = accept_handshake(&s, Some("secret"), Duration::from_secs(2));
                if r.is_ok() {
                    send_welcome(&s, 7, 2).unwrap();
                }
                results.push(r.map(|h| h.role));
            }
            results
        });
        let s = Stream::connect(&addr, Duration::from_secs(2)).unwrap();
        let ok = connect_handshake(
            &s,
            &Hello::new(Role::Client, Some("secret".into()), "t"),
            1 << 20,
        );
        assert_eq!(ok.unwrap(), (7, 2));
        let s = Stream::connect(&addr, Duration::from_secs(2)).unwrap();
        let bad = connect_handshake(
            &s,
            &Hello::new(Role::Client, Some("nope".into()), "t"),
            1 << 20,
        );
        assert!(bad.unwrap_err().to_string().contains("wrong token"));
        let mut s = Stream::connect(&addr, Duration::from_secs(2)).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let results = server.join().unwrap();
        assert!(results[0].is_ok());
        assert!(results[1].is_err());
        assert!(
            results[2]
                .as_ref()
                .unwrap_err()
                .to_string()
                .contains("frame"),
            "{:?}",
            results[2]
        );
    }
}
