//! SPDY/3.1 frames: the binary layout of control and data frames (draft 3.1 §2.2, §2.6) and the
//! name/value header blocks, compressed with one zlib stream per direction that starts from the
//! protocol's dictionary (§2.6.10).
//!
//! [`Encoder`] and [`Decoder`] each own the compression context of one direction of a session:
//! every header block of that direction goes through the same context, in order, so a session
//! has exactly one of each. Neither does I/O; the session feeds them bytes.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

/// The protocol version in every control frame.
pub const VERSION: u16 = 3;
/// The largest payload a frame can announce (24-bit length).
pub const MAX_PAYLOAD: usize = 0x00FF_FFFF;
/// The largest decompressed header block accepted; a bigger one ends the session.
pub const MAX_HEADER_BLOCK: usize = 256 * 1024;

/// `FLAG_FIN` of data frames and of SYN_STREAM, SYN_REPLY and HEADERS.
const FLAG_FIN: u8 = 0x01;
/// `FLAG_UNIDIRECTIONAL` of SYN_STREAM.
const FLAG_UNIDIRECTIONAL: u8 = 0x02;
/// `FLAG_SETTINGS_CLEAR_SETTINGS` of SETTINGS.
const FLAG_CLEAR_SETTINGS: u8 = 0x01;

const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_SETTINGS: u16 = 4;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;
const TYPE_WINDOW_UPDATE: u16 = 9;

/// Status codes of RST_STREAM (§2.6.3).
pub mod rst {
    /// A generic error that does not fit another code.
    pub const PROTOCOL_ERROR: u32 = 1;
    /// A frame for a stream that is not active.
    pub const INVALID_STREAM: u32 = 2;
    /// The stream was refused before any processing (for example after GOAWAY).
    pub const REFUSED_STREAM: u32 = 3;
    /// The stream is no longer needed.
    pub const CANCEL: u32 = 5;
    /// An error in the endpoint itself.
    pub const INTERNAL_ERROR: u32 = 6;
    /// The peer broke the flow-control protocol.
    pub const FLOW_CONTROL_ERROR: u32 = 7;
    /// A SYN_STREAM for a stream that is already open.
    pub const STREAM_IN_USE: u32 = 8;
    /// Data or a reply for a stream that is already half-closed.
    pub const STREAM_ALREADY_CLOSED: u32 = 9;
}

/// Status codes of GOAWAY (§2.6.6).
pub mod goaway {
    /// Normal session teardown.
    pub const OK: u32 = 0;
    /// The peer broke the protocol.
    pub const PROTOCOL_ERROR: u32 = 1;
    /// An error in the endpoint itself.
    pub const INTERNAL_ERROR: u32 = 2;
}

/// SETTINGS identifier of the initial stream window (§2.6.4).
pub const SETTINGS_INITIAL_WINDOW_SIZE: u32 = 7;

/// A frame's name/value header block: lowercase names, each with one value (several values of a
/// name travel joined by NUL, as the spec says).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    /// An empty block.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `name` (lowercased) with `value`.
    pub fn insert(&mut self, name: &str, value: &str) -> &mut Self {
        self.0.push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    /// The first value of `name` (case-insensitive), as Go's `http.Header.Get` reads it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.split('\0').next())
    }

    /// The pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

impl<'a> FromIterator<(&'a str, &'a str)> for Headers {
    fn from_iter<I: IntoIterator<Item = (&'a str, &'a str)>>(iter: I) -> Self {
        let mut h = Headers::new();
        for (n, v) in iter {
            h.insert(n, v);
        }
        h
    }
}

/// One SETTINGS entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// `FLAG_SETTINGS_PERSIST_VALUE` / `FLAG_SETTINGS_PERSISTED`.
    pub flags: u8,
    /// The 24-bit identifier (`SETTINGS_INITIAL_WINDOW_SIZE`, …).
    pub id: u32,
    /// The value.
    pub value: u32,
}

/// A SPDY/3.1 frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Opens a stream (§2.6.1).
    SynStream {
        /// The new stream (odd when the client opens it).
        stream_id: u32,
        /// The stream it is associated with (server push), 0 for none.
        associated_to: u32,
        /// 0 (highest) to 7.
        priority: u8,
        /// The sender sends nothing more on it.
        fin: bool,
        /// The receiver may not send on it.
        unidirectional: bool,
        /// The stream's headers (Kubernetes: `streamtype`, `port`, `requestid`).
        headers: Headers,
    },
    /// Accepts a stream opened by the peer (§2.6.2).
    SynReply {
        /// The stream.
        stream_id: u32,
        /// The sender sends nothing more on it.
        fin: bool,
        /// Reply headers.
        headers: Headers,
    },
    /// Ends a stream abnormally (§2.6.3).
    RstStream {
        /// The stream.
        stream_id: u32,
        /// One of [`rst`].
        status: u32,
    },
    /// Session parameters (§2.6.4).
    Settings {
        /// `FLAG_SETTINGS_CLEAR_SETTINGS`.
        clear: bool,
        /// The entries.
        entries: Vec<Setting>,
    },
    /// Liveness check, echoed by the receiver (§2.6.5).
    Ping {
        /// Odd when the client sends it, even from the server.
        id: u32,
    },
    /// The sender opens no more streams and accepts none above `last_good_stream_id` (§2.6.6).
    GoAway {
        /// The last stream the sender processed.
        last_good_stream_id: u32,
        /// One of [`goaway`].
        status: u32,
    },
    /// More headers for a stream (§2.6.7).
    Headers {
        /// The stream.
        stream_id: u32,
        /// The sender sends nothing more on it.
        fin: bool,
        /// The headers.
        headers: Headers,
    },
    /// Grants the peer `delta` more bytes on a stream, or on the session when `stream_id` is 0
    /// (§2.6.8, SPDY/3.1).
    WindowUpdate {
        /// The stream, 0 for the session.
        stream_id: u32,
        /// Bytes added to the window (1..2^31-1).
        delta: u32,
    },
    /// Stream payload (§2.2.2).
    Data {
        /// The stream.
        stream_id: u32,
        /// The sender's half of the stream is closed after this frame.
        fin: bool,
        /// The payload.
        data: Bytes,
    },
    /// A control frame of a type this implementation does not know; the spec says to ignore it.
    Unknown {
        /// The frame type.
        kind: u16,
    },
}

/// Why bytes could not be read as, or a frame could not be written as, SPDY/3.1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A control frame of another SPDY version.
    #[error("unsupported SPDY version {0}")]
    UnsupportedVersion(u16),
    /// A frame whose length or content does not fit its type.
    #[error("malformed {0} frame")]
    Malformed(&'static str),
    /// A header block zlib could not (de)compress.
    #[error("header block compression: {0}")]
    Compression(String),
    /// A header block that decompresses to more than [`MAX_HEADER_BLOCK`] bytes.
    #[error("header block larger than {MAX_HEADER_BLOCK} bytes")]
    HeaderBlockTooLarge,
    /// A payload longer than [`MAX_PAYLOAD`].
    #[error("frame payload of {0} bytes is larger than {MAX_PAYLOAD}")]
    TooLarge(usize),
}

/// The SPDY/3 header compression dictionary (§2.6.10.1): length-prefixed header names and
/// methods, then a run of common values.
fn dictionary() -> &'static [u8] {
    static DICT: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    DICT.get_or_init(|| {
        const WORDS: &str = "options head post put delete trace accept accept-charset \
            accept-encoding accept-language accept-ranges age allow authorization cache-control \
            connection content-base content-encoding content-language content-length \
            content-location content-md5 content-range content-type date etag expect expires from \
            host if-match if-modified-since if-none-match if-range if-unmodified-since \
            last-modified location max-forwards pragma proxy-authenticate proxy-authorization \
            range referer retry-after server te trailer transfer-encoding upgrade user-agent vary \
            via warning www-authenticate method get status 200_OK version HTTP/1.1 url public \
            set-cookie keep-alive origin";
        const TAIL: &str = "100101201202205206300302303304305306307402405406407408409410411412\
            413414415416417502504505203 Non-Authoritative Information204 No Content301 Moved \
            Permanently400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal \
            Server Error501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul \
            Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,\
            text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,\
            text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8\
            charset=iso-8859-1,utf-,*,enq=0.";
        let mut d = Vec::with_capacity(1423);
        for word in WORDS.split_ascii_whitespace() {
            let word = word.replace('_', " ");
            d.put_u32(word.len() as u32);
            d.extend_from_slice(word.as_bytes());
        }
        d.extend_from_slice(TAIL.as_bytes());
        d
    })
}

/// Serializes frames of one direction of a session (it owns that direction's compressor).
pub struct Encoder {
    zlib: Compress,
    dictionary_set: bool,
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder {
    /// A fresh compression context.
    pub fn new() -> Self {
        Encoder {
            zlib: Compress::new(Compression::default(), true),
            dictionary_set: false,
        }
    }

    /// Appends `frame` to `out`.
    pub fn encode(&mut self, frame: &Frame, out: &mut BytesMut) -> Result<(), FrameError> {
        let id = |id: u32| id & 0x7FFF_FFFF;
        match frame {
            Frame::Data {
                stream_id,
                fin,
                data,
            } => {
                if data.len() > MAX_PAYLOAD {
                    return Err(FrameError::TooLarge(data.len()));
                }
                out.put_u32(id(*stream_id));
                out.put_u32(flags_len(u8::from(*fin) * FLAG_FIN, data.len()));
                out.extend_from_slice(data);
                Ok(())
            }
            Frame::SynStream {
                stream_id,
                associated_to,
                priority,
                fin,
                unidirectional,
                headers,
            } => {
                let block = self.compress(headers)?;
                let mut p = BytesMut::with_capacity(10 + block.len());
                p.put_u32(id(*stream_id));
                p.put_u32(id(*associated_to));
                p.put_u8((priority & 0x07) << 5);
                p.put_u8(0);
                p.extend_from_slice(&block);
                let flags =
                    (u8::from(*fin) * FLAG_FIN) | (u8::from(*unidirectional) * FLAG_UNIDIRECTIONAL);
                control(out, TYPE_SYN_STREAM, flags, &p)
            }
            Frame::SynReply {
                stream_id,
                fin,
                headers,
            }
            | Frame::Headers {
                stream_id,
                fin,
                headers,
            } => {
                let kind = if matches!(frame, Frame::SynReply { .. }) {
                    TYPE_SYN_REPLY
                } else {
                    TYPE_HEADERS
                };
                let block = self.compress(headers)?;
                let mut p = BytesMut::with_capacity(4 + block.len());
                p.put_u32(id(*stream_id));
                p.extend_from_slice(&block);
                control(out, kind, u8::from(*fin) * FLAG_FIN, &p)
            }
            Frame::RstStream { stream_id, status } => {
                control(out, TYPE_RST_STREAM, 0, &pair(id(*stream_id), *status))
            }
            Frame::Settings { clear, entries } => {
                let mut p = BytesMut::with_capacity(4 + 8 * entries.len());
                p.put_u32(entries.len() as u32);
                for e in entries {
                    p.put_u32(u32::from(e.flags) << 24 | (e.id & 0x00FF_FFFF));
                    p.put_u32(e.value);
                }
                control(
                    out,
                    TYPE_SETTINGS,
                    u8::from(*clear) * FLAG_CLEAR_SETTINGS,
                    &p,
                )
            }
            Frame::Ping { id } => control(out, TYPE_PING, 0, &id.to_be_bytes()),
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => control(
                out,
                TYPE_GOAWAY,
                0,
                &pair(id(*last_good_stream_id), *status),
            ),
            Frame::WindowUpdate { stream_id, delta } => control(
                out,
                TYPE_WINDOW_UPDATE,
                0,
                &pair(id(*stream_id), id(*delta)),
            ),
            Frame::Unknown { kind } => control(out, *kind, 0, &[]),
        }
    }

    /// Serializes and compresses a header block, ending with a zlib sync flush so the block
    /// stands alone on a byte boundary while the context carries on to the next one.
    fn compress(&mut self, headers: &Headers) -> Result<Vec<u8>, FrameError> {
        if !self.dictionary_set {
            self.zlib
                .set_dictionary(dictionary())
                .map_err(|e| FrameError::Compression(e.to_string()))?;
            self.dictionary_set = true;
        }
        let mut raw = BytesMut::new();
        raw.put_u32(headers.0.len() as u32);
        for (n, v) in &headers.0 {
            raw.put_u32(n.len() as u32);
            raw.extend_from_slice(n.as_bytes());
            raw.put_u32(v.len() as u32);
            raw.extend_from_slice(v.as_bytes());
        }
        let mut out = Vec::with_capacity(raw.len() + 64);
        let start = self.zlib.total_in();
        loop {
            let before = (self.zlib.total_in() - start) as usize;
            self.zlib
                .compress_vec(&raw[before..], &mut out, FlushCompress::Sync)
                .map_err(|e| FrameError::Compression(e.to_string()))?;
            let consumed = (self.zlib.total_in() - start) as usize;
            if consumed == raw.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            out.reserve(out.capacity().max(64));
        }
    }
}

fn flags_len(flags: u8, len: usize) -> u32 {
    u32::from(flags) << 24 | (len as u32 & 0x00FF_FFFF)
}

fn pair(a: u32, b: u32) -> [u8; 8] {
    let mut p = [0u8; 8];
    p[..4].copy_from_slice(&a.to_be_bytes());
    p[4..].copy_from_slice(&b.to_be_bytes());
    p
}

fn control(out: &mut BytesMut, kind: u16, flags: u8, payload: &[u8]) -> Result<(), FrameError> {
    if payload.len() > MAX_PAYLOAD {
        return Err(FrameError::TooLarge(payload.len()));
    }
    out.put_u16(0x8000 | VERSION);
    out.put_u16(kind);
    out.put_u32(flags_len(flags, payload.len()));
    out.extend_from_slice(payload);
    Ok(())
}

/// Parses frames of one direction of a session (it owns that direction's decompressor).
pub struct Decoder {
    zlib: Decompress,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A fresh decompression context.
    pub fn new() -> Self {
        Decoder {
            zlib: Decompress::new(true),
        }
    }

    /// Takes one whole frame off the front of `buf`, or returns `None` (consuming nothing)
    /// when `buf` does not hold one yet.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if buf.len() < 8 {
            return Ok(None);
        }
        let len = (u32::from_be_bytes([0, buf[5], buf[6], buf[7]])) as usize;
        if buf.len() < 8 + len {
            buf.reserve(8 + len - buf.len());
            return Ok(None);
        }
        let mut f = buf.split_to(8 + len).freeze();
        let first = f.get_u32();
        let flags = f.get_u8();
        f.advance(3);
        if first & 0x8000_0000 == 0 {
            return Ok(Some(Frame::Data {
                stream_id: first,
                fin: flags & FLAG_FIN != 0,
                data: f,
            }));
        }
        let version = ((first >> 16) & 0x7FFF) as u16;
        if version != VERSION {
            return Err(FrameError::UnsupportedVersion(version));
        }
        let fin = flags & FLAG_FIN != 0;
        let sid = |f: &mut Bytes| f.get_u32() & 0x7FFF_FFFF;
        Ok(Some(match (first & 0xFFFF) as u16 {
            TYPE_SYN_STREAM => {
                if len < 10 {
                    return Err(FrameError::Malformed("SYN_STREAM"));
                }
                let stream_id = sid(&mut f);
                let associated_to = sid(&mut f);
                let priority = f.get_u8() >> 5;
                f.advance(1);
                let headers = self.decompress(&f)?;
                Frame::SynStream {
                    stream_id,
                    associated_to,
                    priority,
                    fin,
                    unidirectional: flags & FLAG_UNIDIRECTIONAL != 0,
                    headers,
                }
            }
            kind @ (TYPE_SYN_REPLY | TYPE_HEADERS) => {
                if len < 4 {
                    return Err(FrameError::Malformed("SYN_REPLY/HEADERS"));
                }
                let stream_id = sid(&mut f);
                let headers = self.decompress(&f)?;
                if kind == TYPE_SYN_REPLY {
                    Frame::SynReply {
                        stream_id,
                        fin,
                        headers,
                    }
                } else {
                    Frame::Headers {
                        stream_id,
                        fin,
                        headers,
                    }
                }
            }
            TYPE_RST_STREAM if len == 8 => Frame::RstStream {
                stream_id: sid(&mut f),
                status: f.get_u32(),
            },
            TYPE_SETTINGS => {
                if len < 4 {
                    return Err(FrameError::Malformed("SETTINGS"));
                }
                let n = f.get_u32() as usize;
                if f.len() != n.checked_mul(8).ok_or(FrameError::Malformed("SETTINGS"))? {
                    return Err(FrameError::Malformed("SETTINGS"));
                }
                let entries = (0..n)
                    .map(|_| {
                        let w = f.get_u32();
                        Setting {
                            flags: (w >> 24) as u8,
                            id: w & 0x00FF_FFFF,
                            value: f.get_u32(),
                        }
                    })
                    .collect();
                Frame::Settings {
                    clear: flags & FLAG_CLEAR_SETTINGS != 0,
                    entries,
                }
            }
            TYPE_PING if len == 4 => Frame::Ping { id: f.get_u32() },
            TYPE_GOAWAY if len == 8 => Frame::GoAway {
                last_good_stream_id: sid(&mut f),
                status: f.get_u32(),
            },
            TYPE_WINDOW_UPDATE if len == 8 => Frame::WindowUpdate {
                stream_id: sid(&mut f),
                delta: f.get_u32() & 0x7FFF_FFFF,
            },
            TYPE_RST_STREAM => return Err(FrameError::Malformed("RST_STREAM")),
            TYPE_PING => return Err(FrameError::Malformed("PING")),
            TYPE_GOAWAY => return Err(FrameError::Malformed("GOAWAY")),
            TYPE_WINDOW_UPDATE => return Err(FrameError::Malformed("WINDOW_UPDATE")),
            kind => Frame::Unknown { kind },
        }))
    }

    /// Decompresses one header block (the dictionary is supplied when zlib asks for it, at the
    /// first block) and parses its pairs.
    fn decompress(&mut self, input: &[u8]) -> Result<Headers, FrameError> {
        let zerr = |e: flate2::DecompressError| FrameError::Compression(e.to_string());
        let mut out = Vec::with_capacity(input.len() * 4 + 64);
        let start = self.zlib.total_in();
        loop {
            let (in_before, out_before) = (self.zlib.total_in(), out.len());
            let at = (in_before - start) as usize;
            match self
                .zlib
                .decompress_vec(&input[at..], &mut out, FlushDecompress::Sync)
            {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.zlib.set_dictionary(dictionary()).map_err(zerr)?;
                    continue;
                }
                Err(e) => return Err(zerr(e)),
            }
            let consumed = (self.zlib.total_in() - start) as usize;
            if consumed == input.len() && out.len() < out.capacity() {
                break;
            }
            if out.len() >= MAX_HEADER_BLOCK {
                return Err(FrameError::HeaderBlockTooLarge);
            }
            if out.len() == out.capacity() {
                out.reserve(out.capacity());
            } else if self.zlib.total_in() == in_before && out.len() == out_before {
                return Err(FrameError::Compression(
                    "no progress (stream ended?)".into(),
                ));
            }
        }
        if out.len() > MAX_HEADER_BLOCK {
            return Err(FrameError::HeaderBlockTooLarge);
        }
        parse_block(&out)
    }
}

fn parse_block(mut b: &[u8]) -> Result<Headers, FrameError> {
    let bad = FrameError::Malformed("header block");
    let take = |b: &mut &[u8]| -> Result<String, FrameError> {
        if b.remaining() < 4 {
            return Err(bad.clone());
        }
        let n = b.get_u32() as usize;
        if b.remaining() < n {
            return Err(bad.clone());
        }
        let s = String::from_utf8_lossy(&b[..n]).into_owned();
        b.advance(n);
        Ok(s)
    };
    if b.remaining() < 4 {
        return Err(FrameError::Malformed("header block"));
    }
    let count = b.get_u32() as usize;
    let mut h = Headers(Vec::with_capacity(count.min(b.len() / 8)));
    for _ in 0..count {
        let name = take(&mut b)?;
        let value = take(&mut b)?;
        if name.is_empty() {
            return Err(FrameError::Malformed("header block"));
        }
        h.0.push((name.to_ascii_lowercase(), value));
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(enc: &mut Encoder, dec: &mut Decoder, frame: Frame) {
        let mut buf = BytesMut::new();
        enc.encode(&frame, &mut buf).unwrap();
        assert_eq!(dec.decode(&mut buf).unwrap(), Some(frame));
        assert!(buf.is_empty());
    }

    fn kube_headers(kind: &str) -> Headers {
        [("streamType", kind), ("port", "8080"), ("requestID", "0")]
            .into_iter()
            .collect()
    }

    #[test]
    fn dictionary_is_the_spec_length() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        assert_eq!(&d[..11], b"\0\0\0\x07options");
        assert!(d.ends_with(b"enq=0."));
    }

    #[test]
    fn every_frame_type_round_trips() {
        let (mut enc, mut dec) = (Encoder::new(), Decoder::new());
        let frames = vec![
            Frame::SynStream {
                stream_id: 1,
                associated_to: 0,
                priority: 7,
                fin: false,
                unidirectional: true,
                headers: kube_headers("error"),
            },
            Frame::SynReply {
                stream_id: 1,
                fin: true,
                headers: Headers::new(),
            },
            Frame::Headers {
                stream_id: 3,
                fin: false,
                headers: kube_headers("data"),
            },
            Frame::RstStream {
                stream_id: 5,
                status: rst::CANCEL,
            },
            Frame::Settings {
                clear: true,
                entries: vec![Setting {
                    flags: 1,
                    id: SETTINGS_INITIAL_WINDOW_SIZE,
                    value: 1 << 20,
                }],
            },
            Frame::Ping { id: 7 },
            Frame::GoAway {
                last_good_stream_id: 9,
                status: goaway::PROTOCOL_ERROR,
            },
            Frame::WindowUpdate {
                stream_id: 0,
                delta: 0x7FFF_FFFF,
            },
            Frame::Data {
                stream_id: 11,
                fin: true,
                data: Bytes::from_static(b"hello"),
            },
            Frame::Data {
                stream_id: 11,
                fin: false,
                data: Bytes::new(),
            },
            Frame::Unknown { kind: 10 },
        ];
        for f in frames {
            round_trip(&mut enc, &mut dec, f);
        }
    }

    #[test]
    fn header_compression_carries_across_frames() {
        let (mut enc, mut dec) = (Encoder::new(), Decoder::new());
        let mut sizes = vec![];
        for id in [1u32, 3, 5] {
            let mut buf = BytesMut::new();
            let frame = Frame::SynStream {
                stream_id: id,
                associated_to: 0,
                priority: 0,
                fin: false,
                unidirectional: false,
                headers: kube_headers("stdout"),
            };
            enc.encode(&frame, &mut buf).unwrap();
            sizes.push(buf.len());
            assert_eq!(dec.decode(&mut buf).unwrap(), Some(frame));
        }
        // The second block repeats the first one's names and values, which the shared context
        // already holds: it compresses to fewer bytes than the first.
        assert!(sizes[1] < sizes[0], "{sizes:?}");
        // A decoder that missed the first block cannot read the second: one context per direction.
        let mut buf = BytesMut::new();
        let h = Frame::Headers {
            stream_id: 7,
            fin: false,
            headers: kube_headers("stdin"),
        };
        enc.encode(&h, &mut buf).unwrap();
        assert!(Decoder::new().decode(&mut buf).is_err());
    }

    #[test]
    fn multiple_values_and_case() {
        let (mut enc, mut dec) = (Encoder::new(), Decoder::new());
        let mut h = Headers::new();
        h.insert(
            "X-Stream-Protocol-Version",
            "v4.channel.k8s.io\0v3.channel.k8s.io",
        );
        assert_eq!(
            h.get("x-stream-protocol-version"),
            Some("v4.channel.k8s.io")
        );
        assert_eq!(h.iter().next().unwrap().0, "x-stream-protocol-version");
        round_trip(
            &mut enc,
            &mut dec,
            Frame::SynReply {
                stream_id: 1,
                fin: false,
                headers: h,
            },
        );
    }

    #[test]
    fn partial_input_waits_for_the_rest() {
        let (mut enc, mut dec) = (Encoder::new(), Decoder::new());
        let mut whole = BytesMut::new();
        let frame = Frame::SynStream {
            stream_id: 1,
            associated_to: 0,
            priority: 0,
            fin: false,
            unidirectional: false,
            headers: kube_headers("data"),
        };
        enc.encode(&frame, &mut whole).unwrap();
        enc.encode(&Frame::Ping { id: 1 }, &mut whole).unwrap();
        let mut buf = BytesMut::new();
        let mut got = vec![];
        for b in whole.iter() {
            buf.put_u8(*b);
            while let Some(f) = dec.decode(&mut buf).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, vec![frame, Frame::Ping { id: 1 }]);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let cases: Vec<Vec<u8>> = vec![
            vec![0x80, 0x02, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 1],
            vec![0x80, 0x03, 0x00, 0x06, 0, 0, 0, 3, 0, 0, 0],
            vec![0x80, 0x03, 0x00, 0x03, 0, 0, 0, 4, 0, 0, 0, 1],
            vec![0x80, 0x03, 0x00, 0x04, 0, 0, 0, 4, 0xFF, 0xFF, 0xFF, 0xFF],
            vec![
                0x80, 0x03, 0x00, 0x01, 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x78, 0x9c,
            ],
            vec![0x80, 0x03, 0x00, 0x02, 0, 0, 0, 2, 0, 1],
        ];
        for c in cases {
            let mut buf = BytesMut::from(&c[..]);
            assert!(Decoder::new().decode(&mut buf).is_err(), "{c:?}");
        }
        // A block that inflates past the limit is refused.
        let mut enc = Encoder::new();
        let mut h = Headers::new();
        let big = "x".repeat(MAX_HEADER_BLOCK);
        h.insert("a", &big);
        let mut buf = BytesMut::new();
        enc.encode(
            &Frame::SynReply {
                stream_id: 1,
                fin: false,
                headers: h,
            },
            &mut buf,
        )
        .unwrap();
        assert_eq!(
            Decoder::new().decode(&mut buf),
            Err(FrameError::HeaderBlockTooLarge)
        );
    }

    proptest::proptest! {
        #[test]
        fn header_blocks_round_trip(pairs in proptest::collection::vec(("[a-z-]{1,20}", "[ -~]{0,40}"), 0..12), n in 1usize..4) {
            let (mut enc, mut dec) = (Encoder::new(), Decoder::new());
            let headers: Headers = pairs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            for i in 0..n {
                let mut buf = BytesMut::new();
                let f = Frame::Headers { stream_id: 2 * i as u32 + 1, fin: false, headers: headers.clone() };
                enc.encode(&f, &mut buf).unwrap();
                proptest::prop_assert_eq!(dec.decode(&mut buf).unwrap(), Some(f));
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let mut dec = Decoder::new();
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = dec.decode(&mut buf) {}
        }
    }
}
