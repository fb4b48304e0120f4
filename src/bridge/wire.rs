//! One connection to a Kafka broker: size-prefixed frames, correlation ids, and the API
//! versions both sides speak. Messages are encoded and decoded by the `kafka-protocol`
//! crate; which request goes where, and what an answer means, is the caller's.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{ApiVersionsRequest, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

/// The largest response frame accepted (Kafka's `socket.request.max.bytes` is 100 MiB;
/// a fetch answer is bounded by the request's `max_bytes`).
const MAX_FRAME: usize = 256 << 20;

/// Why a call failed.
#[derive(Debug)]
pub(crate) enum Fault {
    /// The connection failed or timed out: the request may or may not have been handled,
    /// and the connection is unusable.
    Io(io::Error),
    /// The broker cannot take the request, or answered bytes that do not decode: retrying
    /// the same request on the same broker will not help.
    Protocol(String),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Io(e) => write!(f, "connection: {e}"),
            Fault::Protocol(s) => f.write_str(s),
        }
    }
}

impl From<io::Error> for Fault {
    fn from(e: io::Error) -> Fault {
        Fault::Io(e)
    }
}

/// A blocking connection to one broker. Requests are sent one at a time: each call waits
/// for its answer, so answers cannot be mixed up.
#[derive(Debug)]
pub(crate) struct Conn {
    stream: TcpStream,
    client_id: StrBytes,
    next_correlation: i32,
    /// Per API key, the versions the broker speaks (`ApiVersions`).
    versions: HashMap<i16, (i16, i16)>,
    /// Set by an I/O failure: the stream may hold half a frame.
    broken: bool,
}

impl Conn {
    /// Connects to `addr` (`host:port`) and asks which API versions the broker speaks.
    /// `timeout` bounds the connect and every read and write.
    pub(crate) fn connect(addr: &str, client_id: &str, timeout: Duration) -> Result<Conn, Fault> {
        let mut last = None;
        let mut stream = None;
        for sock in addr.to_socket_addrs()? {
            match TcpStream::connect_timeout(&sock, timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let stream = stream.ok_or_else(|| {
            last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))
        })?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        let mut conn = Conn {
            stream,
            client_id: StrBytes::from_string(client_id.to_string()),
            next_correlation: 0,
            versions: HashMap::new(),
            broken: false,
        };
        // Version 0 is understood by every broker (newer ones answer a too-new request
        // with version 0 anyway) and lists the same versions.
        let resp = conn.send(&ApiVersionsRequest::default(), 0)?;
        if resp.error_code != 0 {
            return Err(Fault::Protocol(format!(
                "ApiVersions failed: {}",
                error_name(resp.error_code)
            )));
        }
        conn.versions = resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(conn)
    }

    /// True once an I/O failure left the connection unusable.
    pub(crate) fn is_broken(&self) -> bool {
        self.broken
    }

    /// The highest version of `R` both sides speak, at most `cap` (the newest version the
    /// caller fills in).
    pub(crate) fn version<R: Request>(&self, cap: i16) -> Result<i16, Fault> {
        let name = std::any::type_name::<R>()
            .rsplit("::")
            .next()
            .unwrap_or("?");
        let &(min, max) = self.versions.get(&R::KEY).ok_or_else(|| {
            Fault::Protocol(format!(
                "the broker does not support {name} (API key {})",
                R::KEY
            ))
        })?;
        let hi = cap.min(R::VERSIONS.max).min(max);
        let lo = R::VERSIONS.min.max(min);
        if hi < lo {
            return Err(Fault::Protocol(format!(
                "no common version of {name}: the broker speaks {min}..={max}, seglog {}..={}",
                R::VERSIONS.min,
                cap.min(R::VERSIONS.max)
            )));
        }
        Ok(hi)
    }

    /// Sends `req` at the highest common version up to `cap` and waits for its answer.
    pub(crate) fn call<R: Request>(&mut self, req: &R, cap: i16) -> Result<R::Response, Fault> {
        let version = self.version::<R>(cap)?;
        self.send(req, version)
    }

    fn send<R: Request>(&mut self, req: &R, version: i16) -> Result<R::Response, Fault> {
        if self.broken {
            return Err(Fault::Io(io::Error::new(
                io::ErrorKind::NotConnected,
                "connection broken by an earlier failure",
            )));
        }
        let result = self.exchange(req, version);
        if matches!(result, Err(Fault::Io(_))) {
            self.broken = true;
        }
        result
    }

    fn exchange<R: Request>(&mut self, req: &R, version: i16) -> Result<R::Response, Fault> {
        let correlation = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(self.client_id.clone()));
        let mut frame = vec![0u8; 4];
        header
            .encode(&mut frame, R::header_version(version))
            .map_err(protocol("encoding a request header"))?;
        req.encode(&mut frame, version)
            .map_err(protocol("encoding a request"))?;
        let len = i32::try_from(frame.len() - 4)
            .map_err(|_| Fault::Protocol(format!("request of {} bytes", frame.len())))?;
        frame[..4].copy_from_slice(&len.to_be_bytes());
        self.stream.write_all(&frame)?;

        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len)?;
        let len = i32::from_be_bytes(len);
        let len = usize::try_from(len)
            .ok()
            .filter(|&n| n <= MAX_FRAME)
            .ok_or_else(|| {
                self.broken = true;
                Fault::Protocol(format!("answer frame of length {len}"))
            })?;
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body)?;
        let mut body = Bytes::from(body);
        let head = ResponseHeader::decode(&mut body, R::Response::header_version(version))
            .map_err(protocol("decoding an answer header"))?;
        if head.correlation_id != correlation {
            self.broken = true;
            return Err(Fault::Protocol(format!(
                "answer to request {} arrived for request {correlation}",
                head.correlation_id
            )));
        }
        R::Response::decode(&mut body, version).map_err(protocol("decoding an answer"))
    }
}

/// A mapper of the codec's errors to [`Fault::Protocol`], saying what was being done.
fn protocol<E: fmt::Display>(what: &'static str) -> impl Fn(E) -> Fault {
    move |e| Fault::Protocol(format!("{what}: {e}"))
}

/// A Kafka error code's name (`NOT_LEADER_OR_FOLLOWER (6)`).
pub(crate) fn error_name(code: i16) -> String {
    match kafka_protocol::ResponseError::try_from_code(code) {
        None => "NONE (0)".to_string(),
        Some(e) => format!("{e:?} ({code})"),
    }
}

/// Whether Kafka defines `code` as retriable (the same request may succeed later, perhaps
/// on another broker after a metadata refresh).
pub(crate) fn is_retriable(code: i16) -> bool {
    kafka_protocol::ResponseError::try_from_code(code).is_some_and(|e| e.is_retriable())
}
