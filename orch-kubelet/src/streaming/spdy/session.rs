//! The server side of a SPDY/3.1 session over an upgraded connection: streams the client opens
//! are offered by [`Session::accept`], answered with SYN_REPLY ([`IncomingStream::accept`]) or
//! RST_STREAM ([`IncomingStream::refuse`]), and then carry bytes both ways as channels.
//!
//! Flow control (draft 3.1 §2.6.8): every stream and the session start with a 64 KiB receive
//! window; as received data is handed to a stream's consumer, WINDOW_UPDATE frames (for the
//! stream and for the session, stream 0) give the window back in half-window steps. On the
//! sending side windows are honoured once the peer shows it does flow control (it sent a
//! WINDOW_UPDATE or a SETTINGS initial window): the peer every Kubernetes client uses,
//! `github.com/moby/spdystream`, neither sends WINDOW_UPDATE nor limits what it sends, and
//! waiting for window it never grants would stall every transfer past 64 KiB. Received data
//! is not policed against the window for the same reason; memory stays bounded because a
//! stream whose consumer lags stops the connection's reader (TCP back-pressure), as spdystream
//! does.

use super::frame::{goaway, rst, Decoder, Encoder, Frame, Headers, SETTINGS_INITIAL_WINDOW_SIZE};
use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The initial window of every stream and of the session (§2.6.8).
pub const INITIAL_WINDOW: u32 = 64 * 1024;
/// The largest data frame this side sends.
const MAX_DATA_FRAME: usize = 32 * 1024;
/// Received chunks buffered per stream before the connection's reader waits for the consumer.
const STREAM_BUFFER: usize = 16;
/// Data frames queued for the socket before stream writers wait.
const WRITE_QUEUE: usize = 64;
/// How long [`Session::close`] lets queued output drain.
const CLOSE_GRACE: Duration = Duration::from_secs(10);

/// One side of a stream the client opened, before it is answered.
pub struct IncomingStream {
    id: u32,
    headers: Headers,
    rx: mpsc::Receiver<Bytes>,
    inner: Arc<Inner>,
}

/// An accepted stream: what the client sends arrives on `rx` (its end is the client's FIN or a
/// reset); what is sent on `tx` goes to the client, and dropping every clone of `tx` half-closes
/// the stream (an empty data frame with FLAG_FIN).
pub struct Stream {
    /// The stream id the client chose.
    pub id: u32,
    /// The headers of its SYN_STREAM.
    pub headers: Headers,
    /// Data from the client.
    pub rx: mpsc::Receiver<Bytes>,
    /// Data to the client.
    pub tx: mpsc::Sender<Bytes>,
}

impl IncomingStream {
    /// The stream id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The headers of its SYN_STREAM.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// Answers SYN_REPLY and starts the stream's writer.
    pub fn accept(self) -> Stream {
        let IncomingStream {
            id,
            headers,
            rx,
            inner,
        } = self;
        inner.control(Frame::SynReply {
            stream_id: id,
            fin: false,
            headers: Headers::new(),
        });
        let (tx, out_rx) = mpsc::channel(STREAM_BUFFER);
        let writer = tokio::spawn(forward(inner.clone(), id, out_rx));
        inner.writers.lock().push(writer);
        Stream {
            id,
            headers,
            rx,
            tx,
        }
    }

    /// Refuses the stream with RST_STREAM (upstream resets a stream its handler rejects).
    pub fn refuse(self) {
        self.inner.control(Frame::RstStream {
            stream_id: self.id,
            status: rst::REFUSED_STREAM,
        });
        self.inner.state.lock().streams.remove(&self.id);
    }
}

/// A server-side SPDY/3.1 session. Dropping it without [`Session::close`] ends the connection
/// at once.
pub struct Session {
    incoming: mpsc::UnboundedReceiver<IncomingStream>,
    inner: Arc<Inner>,
    reader: JoinHandle<()>,
    writer: Option<JoinHandle<()>>,
}

struct Inner {
    state: Mutex<State>,
    /// Woken when a send window grows or a stream is reset.
    window: Notify,
    control: mpsc::UnboundedSender<Out>,
    data: mpsc::Sender<Out>,
    /// Cancelled when the connection is gone (EOF, error, protocol violation).
    gone: CancellationToken,
    writers: Mutex<Vec<JoinHandle<()>>>,
}

#[derive(Default)]
struct State {
    streams: HashMap<u32, StreamState>,
    last_stream: u32,
    goaway_received: bool,
    peer_flow_control: bool,
    initial_send_window: i64,
    session_send_window: i64,
    session_unacked: u32,
}

struct StreamState {
    /// Feeds [`Stream::rx`]; `None` once the client half-closed.
    to_consumer: Option<mpsc::Sender<Bytes>>,
    /// Our half is closed (FIN sent).
    local_closed: bool,
    reset: bool,
    send_window: i64,
    unacked: u32,
}

enum Out {
    Frame(Frame),
    /// Send GOAWAY (with the last stream accepted) after everything queued, and close the
    /// connection.
    Shutdown(u32),
}

impl Inner {
    fn control(&self, f: Frame) {
        // The writer only stops with the connection; a frame for a gone peer is moot.
        let _ = self.control.send(Out::Frame(f));
    }
}

impl Session {
    /// Starts a session over an upgraded connection (after the `101 Switching Protocols`).
    pub fn new<T>(io: T) -> Session
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (rd, wr) = tokio::io::split(io);
        let (control, control_rx) = mpsc::unbounded_channel();
        let (data, data_rx) = mpsc::channel(WRITE_QUEUE);
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                initial_send_window: i64::from(INITIAL_WINDOW),
                session_send_window: i64::from(INITIAL_WINDOW),
                ..State::default()
            }),
            window: Notify::new(),
            control,
            data,
            gone: CancellationToken::new(),
            writers: Mutex::new(Vec::new()),
        });
        let (incoming_tx, incoming) = mpsc::unbounded_channel();
        let writer = tokio::spawn(write_loop(wr, control_rx, data_rx, inner.gone.clone()));
        let reader = tokio::spawn(read_loop(rd, inner.clone(), incoming_tx));
        Session {
            incoming,
            inner,
            reader,
            writer: Some(writer),
        }
    }

    /// The next stream the client opens; `None` once it opens no more (connection gone, or
    /// GOAWAY received).
    pub async fn accept(&mut self) -> Option<IncomingStream> {
        self.incoming.recv().await
    }

    /// A token cancelled when the connection is gone.
    pub fn gone(&self) -> CancellationToken {
        self.inner.gone.clone()
    }

    /// Ends the session as upstream's `connection.Close` does after a handler: waits for every
    /// accepted stream's writer to flush (callers drop their senders first), then sends GOAWAY
    /// and closes the connection.
    pub async fn close(mut self) {
        let writers = std::mem::take(&mut *self.inner.writers.lock());
        let flush = async {
            for w in writers {
                let _ = w.await;
            }
        };
        let _ = tokio::time::timeout(CLOSE_GRACE, flush).await;
        let last = self.inner.state.lock().last_stream;
        let _ = self.inner.control.send(Out::Shutdown(last));
        if let Some(w) = self.writer.take() {
            let _ = tokio::time::timeout(CLOSE_GRACE, w).await;
        }
        self.inner.gone.cancel();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.reader.abort();
        if let Some(w) = self.writer.take() {
            w.abort();
        }
        for w in self.inner.writers.lock().drain(..) {
            w.abort();
        }
        self.inner.gone.cancel();
    }
}

/// Sends one stream's outgoing chunks as data frames within the send windows, then FIN.
async fn forward(inner: Arc<Inner>, id: u32, mut rx: mpsc::Receiver<Bytes>) {
    while let Some(mut chunk) = rx.recv().await {
        while !chunk.is_empty() {
            let Some(n) = reserve(&inner, id, chunk.len()).await else {
                return;
            };
            let part = chunk.split_to(n);
            let frame = Frame::Data {
                stream_id: id,
                fin: false,
                data: part,
            };
            if inner.data.send(Out::Frame(frame)).await.is_err() {
                return;
            }
        }
    }
    let frame = Frame::Data {
        stream_id: id,
        fin: true,
        data: Bytes::new(),
    };
    let _ = inner.data.send(Out::Frame(frame)).await;
    let mut st = inner.state.lock();
    if let Some(s) = st.streams.get_mut(&id) {
        s.local_closed = true;
        if s.to_consumer.is_none() {
            st.streams.remove(&id);
        }
    }
}

/// Waits until `want` bytes (at most a frame) may be sent on stream `id`; `None` when the
/// stream was reset or the connection is gone.
async fn reserve(inner: &Inner, id: u32, want: usize) -> Option<usize> {
    loop {
        let notified = inner.window.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let mut st = inner.state.lock();
            let enforce = st.peer_flow_control;
            let session_window = st.session_send_window;
            let s = st.streams.get_mut(&id)?;
            if s.reset || inner.gone.is_cancelled() {
                return None;
            }
            let cap = if enforce {
                s.send_window.min(session_window).max(0) as usize
            } else {
                usize::MAX
            };
            let n = want.min(MAX_DATA_FRAME).min(cap);
            if n > 0 {
                s.send_window -= n as i64;
                st.session_send_window -= n as i64;
                return Some(n);
            }
        }
        tokio::select! {
            () = &mut notified => {}
            () = inner.gone.cancelled() => return None,
        }
    }
}

async fn write_loop<W: AsyncWrite>(
    wr: W,
    mut control: mpsc::UnboundedReceiver<Out>,
    mut data: mpsc::Receiver<Out>,
    gone: CancellationToken,
) {
    tokio::pin!(wr);
    let mut enc = Encoder::new();
    let mut buf = BytesMut::new();
    loop {
        let out = tokio::select! {
            biased;
            o = control.recv() => o,
            o = data.recv() => o,
            () = gone.cancelled() => None,
        };
        let mut shutdown = None;
        match out {
            Some(Out::Frame(f)) => encode(&mut enc, &f, &mut buf),
            Some(Out::Shutdown(last)) => shutdown = Some(Some(last)),
            // The connection is gone: flush what is queued (a GOAWAY with an error, say), no more.
            None => shutdown = Some(None),
        }
        // Batch what else is ready into one write.
        while shutdown.is_none() && buf.len() < 64 * 1024 {
            match control.try_recv().or_else(|_| data.try_recv()) {
                Ok(Out::Frame(f)) => encode(&mut enc, &f, &mut buf),
                Ok(Out::Shutdown(last)) => shutdown = Some(Some(last)),
                Err(_) => break,
            }
        }
        if let Some(goaway) = shutdown {
            // Whatever is queued goes out before GOAWAY.
            while let Ok(Out::Frame(f)) = control.try_recv().or_else(|_| data.try_recv()) {
                encode(&mut enc, &f, &mut buf);
            }
            if let Some(last) = goaway {
                encode(
                    &mut enc,
                    &Frame::GoAway {
                        last_good_stream_id: last,
                        status: goaway::OK,
                    },
                    &mut buf,
                );
            }
        }
        if wr.write_all(&buf).await.is_err() || wr.flush().await.is_err() {
            gone.cancel();
            return;
        }
        buf.clear();
        if shutdown.is_some() {
            let _ = wr.shutdown().await;
            gone.cancel();
            return;
        }
    }
}

fn encode(enc: &mut Encoder, f: &Frame, buf: &mut BytesMut) {
    if let Err(e) = enc.encode(f, buf) {
        // Only an oversized frame fails, and this side never builds one.
        tracing::warn!(error = %e, "spdy: frame not sent");
    }
}

async fn read_loop<R: AsyncRead>(
    rd: R,
    inner: Arc<Inner>,
    incoming: mpsc::UnboundedSender<IncomingStream>,
) {
    tokio::pin!(rd);
    let mut dec = Decoder::new();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut incoming = Some(incoming);
    'conn: loop {
        loop {
            let frame = match dec.decode(&mut buf) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "spdy: protocol error, ending the session");
                    let last = inner.state.lock().last_stream;
                    inner.control(Frame::GoAway {
                        last_good_stream_id: last,
                        status: goaway::PROTOCOL_ERROR,
                    });
                    break 'conn;
                }
            };
            handle(&inner, frame, &mut incoming).await;
        }
        tokio::select! {
            r = rd.read_buf(&mut buf) => match r {
                Ok(0) | Err(_) => break 'conn,
                Ok(_) => {}
            },
            () = inner.gone.cancelled() => break 'conn,
        }
    }
    // The connection is gone: every stream's consumer sees its end, writers stop.
    let mut st = inner.state.lock();
    for s in st.streams.values_mut() {
        s.to_consumer = None;
        s.reset = true;
    }
    drop(st);
    inner.gone.cancel();
    inner.window.notify_waiters();
}

async fn handle(
    inner: &Arc<Inner>,
    frame: Frame,
    incoming: &mut Option<mpsc::UnboundedSender<IncomingStream>>,
) {
    match &frame {
        Frame::Data {
            stream_id,
            fin,
            data,
        } => tracing::trace!(stream_id, fin, len = data.len(), "spdy: data"),
        other => tracing::debug!(frame = ?other, "spdy: control frame"),
    }
    match frame {
        Frame::SynStream {
            stream_id,
            fin,
            headers,
            ..
        } => {
            let mut st = inner.state.lock();
            if stream_id % 2 == 0 || stream_id <= st.last_stream {
                drop(st);
                inner.control(Frame::RstStream {
                    stream_id,
                    status: rst::PROTOCOL_ERROR,
                });
                return;
            }
            st.last_stream = stream_id;
            let Some(tx) = incoming.as_ref().filter(|_| !st.goaway_received) else {
                drop(st);
                inner.control(Frame::RstStream {
                    stream_id,
                    status: rst::REFUSED_STREAM,
                });
                return;
            };
            let (to_consumer, rx) = mpsc::channel(STREAM_BUFFER);
            let send_window = st.initial_send_window;
            st.streams.insert(
                stream_id,
                StreamState {
                    to_consumer: (!fin).then_some(to_consumer),
                    local_closed: false,
                    reset: false,
                    send_window,
                    unacked: 0,
                },
            );
            let offered = IncomingStream {
                id: stream_id,
                headers,
                rx,
                inner: inner.clone(),
            };
            if tx.send(offered).is_err() {
                // Nobody accepts streams any more.
                st.streams.remove(&stream_id);
                drop(st);
                inner.control(Frame::RstStream {
                    stream_id,
                    status: rst::REFUSED_STREAM,
                });
            }
        }
        Frame::Data {
            stream_id,
            fin,
            data,
        } => {
            let len = data.len() as u32;
            let consumer = {
                let st = inner.state.lock();
                match st.streams.get(&stream_id) {
                    Some(s) => s.to_consumer.clone(),
                    None => {
                        drop(st);
                        inner.control(Frame::RstStream {
                            stream_id,
                            status: rst::INVALID_STREAM,
                        });
                        return;
                    }
                }
            };
            let Some(consumer) = consumer else {
                inner.control(Frame::RstStream {
                    stream_id,
                    status: rst::STREAM_ALREADY_CLOSED,
                });
                return;
            };
            if !data.is_empty() {
                // A consumer that dropped its receiver no longer wants the data.
                let _ = consumer.send(data).await;
            }
            drop(consumer);
            consumed(inner, stream_id, len);
            if fin {
                remote_fin(inner, stream_id);
            }
        }
        Frame::Headers {
            stream_id,
            fin: true,
            ..
        } => remote_fin(inner, stream_id),
        Frame::RstStream { stream_id, .. } => {
            let mut st = inner.state.lock();
            if let Some(mut s) = st.streams.remove(&stream_id) {
                s.reset = true;
                s.to_consumer = None;
            }
            drop(st);
            inner.window.notify_waiters();
        }
        Frame::Settings { entries, .. } => {
            let mut st = inner.state.lock();
            for e in entries
                .iter()
                .filter(|e| e.id == SETTINGS_INITIAL_WINDOW_SIZE)
            {
                let delta = i64::from(e.value) - st.initial_send_window;
                st.initial_send_window = i64::from(e.value);
                st.peer_flow_control = true;
                for s in st.streams.values_mut() {
                    s.send_window += delta;
                }
            }
            drop(st);
            inner.window.notify_waiters();
        }
        // Client pings carry odd ids and are echoed; this side sends none of its own.
        Frame::Ping { id } if id % 2 == 1 => inner.control(Frame::Ping { id }),
        Frame::GoAway { .. } => {
            inner.state.lock().goaway_received = true;
            *incoming = None;
        }
        Frame::WindowUpdate { stream_id, delta } => {
            let mut st = inner.state.lock();
            st.peer_flow_control = true;
            if stream_id == 0 {
                st.session_send_window += i64::from(delta);
            } else if let Some(s) = st.streams.get_mut(&stream_id) {
                s.send_window += i64::from(delta);
            }
            drop(st);
            inner.window.notify_waiters();
        }
        // SYN_REPLY (this side opens no streams), HEADERS without FIN, even pings, unknown types.
        _ => {}
    }
}

/// `len` bytes of stream `id` reached its consumer: give the window back once half of it is
/// used, for the stream and for the session.
fn consumed(inner: &Inner, id: u32, len: u32) {
    if len == 0 {
        return;
    }
    let half = INITIAL_WINDOW / 2;
    let mut st = inner.state.lock();
    st.session_unacked += len;
    if st.session_unacked >= half {
        let delta = std::mem::take(&mut st.session_unacked);
        inner.control(Frame::WindowUpdate {
            stream_id: 0,
            delta,
        });
    }
    if let Some(s) = st.streams.get_mut(&id) {
        s.unacked += len;
        if s.unacked >= half && s.to_consumer.is_some() {
            let delta = std::mem::take(&mut s.unacked);
            inner.control(Frame::WindowUpdate {
                stream_id: id,
                delta,
            });
        }
    }
}

fn remote_fin(inner: &Inner, id: u32) {
    let mut st = inner.state.lock();
    if let Some(s) = st.streams.get_mut(&id) {
        s.to_consumer = None;
        if s.local_closed {
            st.streams.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::frame::Setting;
    use super::*;
    use tokio::io::DuplexStream;

    /// The client end of a session, frame by frame.
    struct Peer {
        io: DuplexStream,
        enc: Encoder,
        dec: Decoder,
        buf: BytesMut,
    }

    impl Peer {
        fn pair() -> (Peer, Session) {
            let (a, b) = tokio::io::duplex(1 << 20);
            let peer = Peer {
                io: a,
                enc: Encoder::new(),
                dec: Decoder::new(),
                buf: BytesMut::new(),
            };
            (peer, Session::new(b))
        }

        async fn send(&mut self, f: Frame) {
            let mut out = BytesMut::new();
            self.enc.encode(&f, &mut out).unwrap();
            self.io.write_all(&out).await.unwrap();
        }

        async fn open(&mut self, id: u32, kind: &str) {
            let headers = [("streamType", kind)].into_iter().collect();
            let f = Frame::SynStream {
                stream_id: id,
                associated_to: 0,
                priority: 0,
                fin: false,
                unidirectional: false,
                headers,
            };
            self.send(f).await;
        }

        async fn data(&mut self, id: u32, bytes: &[u8], fin: bool) {
            self.send(Frame::Data {
                stream_id: id,
                fin,
                data: Bytes::copy_from_slice(bytes),
            })
            .await;
        }

        /// The next frame, or `None` at EOF.
        async fn next(&mut self) -> Option<Frame> {
            loop {
                if let Some(f) = self.dec.decode(&mut self.buf).unwrap() {
                    return Some(f);
                }
                let n =
                    tokio::time::timeout(Duration::from_secs(5), self.io.read_buf(&mut self.buf))
                        .await
                        .expect("a frame within 5s")
                        .unwrap();
                if n == 0 {
                    return None;
                }
            }
        }

        /// The next frame that is not a WINDOW_UPDATE.
        async fn next_skipping_updates(&mut self) -> Option<Frame> {
            loop {
                match self.next().await {
                    Some(Frame::WindowUpdate { .. }) => {}
                    other => return other,
                }
            }
        }

        /// Data of stream `id` until its FIN (other frames skipped).
        async fn read_stream(&mut self, id: u32) -> Vec<u8> {
            let mut got = vec![];
            loop {
                match self.next().await {
                    Some(Frame::Data {
                        stream_id,
                        fin,
                        data,
                    }) if stream_id == id => {
                        got.extend_from_slice(&data);
                        if fin {
                            return got;
                        }
                    }
                    Some(_) => {}
                    None => panic!("EOF before FIN of stream {id}"),
                }
            }
        }
    }

    #[tokio::test]
    async fn a_stream_carries_data_both_ways_and_half_closes() {
        let (mut peer, mut session) = Peer::pair();
        peer.open(1, "stdout").await;
        let incoming = session.accept().await.unwrap();
        assert_eq!(incoming.headers().get("streamtype"), Some("stdout"));
        let mut stream = incoming.accept();
        assert!(matches!(
            peer.next().await,
            Some(Frame::SynReply {
                stream_id: 1,
                fin: false,
                ..
            })
        ));
        peer.data(1, b"hello", false).await;
        peer.data(1, b" world", true).await;
        assert_eq!(stream.rx.recv().await.unwrap(), "hello");
        assert_eq!(stream.rx.recv().await.unwrap(), " world");
        assert_eq!(stream.rx.recv().await, None);
        stream.tx.send(Bytes::from_static(b"back")).await.unwrap();
        drop(stream.tx);
        assert_eq!(peer.read_stream(1).await, b"back");
        session.close().await;
        assert!(matches!(
            peer.next().await,
            Some(Frame::GoAway {
                last_good_stream_id: 1,
                status: goaway::OK
            })
        ));
        assert_eq!(peer.next().await, None);
    }

    #[tokio::test]
    async fn pings_are_echoed_and_bad_streams_reset() {
        let (mut peer, mut session) = Peer::pair();
        peer.send(Frame::Ping { id: 1 }).await;
        assert_eq!(peer.next().await, Some(Frame::Ping { id: 1 }));
        peer.open(2, "data").await;
        assert_eq!(
            peer.next().await,
            Some(Frame::RstStream {
                stream_id: 2,
                status: rst::PROTOCOL_ERROR
            })
        );
        peer.open(3, "bogus").await;
        session.accept().await.unwrap().refuse();
        assert_eq!(
            peer.next().await,
            Some(Frame::RstStream {
                stream_id: 3,
                status: rst::REFUSED_STREAM
            })
        );
        peer.data(9, b"x", false).await;
        assert_eq!(
            peer.next().await,
            Some(Frame::RstStream {
                stream_id: 9,
                status: rst::INVALID_STREAM
            })
        );
        // After GOAWAY the client opens nothing more.
        peer.send(Frame::GoAway {
            last_good_stream_id: 0,
            status: goaway::OK,
        })
        .await;
        assert!(session.accept().await.is_none());
    }

    #[tokio::test]
    async fn consumed_data_is_given_back_as_window_updates() {
        let (mut peer, mut session) = Peer::pair();
        peer.open(1, "stdin").await;
        let mut stream = session.accept().await.unwrap().accept();
        let chunk = vec![7u8; 16 * 1024];
        for _ in 0..3 {
            peer.data(1, &chunk, false).await;
        }
        let mut total = 0;
        while total < 48 * 1024 {
            total += stream.rx.recv().await.unwrap().len();
        }
        let mut updates = vec![];
        while updates.len() < 2 {
            match peer.next().await.unwrap() {
                Frame::WindowUpdate { stream_id, delta } => updates.push((stream_id, delta)),
                Frame::SynReply { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        updates.sort_unstable();
        assert_eq!(updates, vec![(0, 32 * 1024), (1, 32 * 1024)]);
    }

    #[tokio::test]
    async fn send_windows_are_honoured_once_the_peer_does_flow_control() {
        let (mut peer, mut session) = Peer::pair();
        let setting = Setting {
            flags: 0,
            id: SETTINGS_INITIAL_WINDOW_SIZE,
            value: 1000,
        };
        peer.send(Frame::Settings {
            clear: false,
            entries: vec![setting],
        })
        .await;
        peer.open(1, "stdout").await;
        let stream = session.accept().await.unwrap().accept();
        stream.tx.send(Bytes::from(vec![1u8; 3000])).await.unwrap();
        let mut got = 0;
        let mut grants = 0;
        while got < 3000 {
            match peer.next().await.unwrap() {
                Frame::Data { data, .. } => {
                    got += data.len();
                    // Never more than the window granted so far.
                    assert!(
                        got <= 1000 * (grants + 1),
                        "{got} bytes with {grants} grants"
                    );
                }
                Frame::SynReply { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
            if got == 1000 * (grants + 1) {
                grants += 1;
                peer.send(Frame::WindowUpdate {
                    stream_id: 1,
                    delta: 1000,
                })
                .await;
            }
        }
        assert_eq!(got, 3000);
    }

    #[tokio::test]
    async fn a_peer_without_flow_control_still_gets_everything() {
        let (mut peer, mut session) = Peer::pair();
        peer.open(1, "stdout").await;
        let stream = session.accept().await.unwrap().accept();
        let payload: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
        let sent = payload.clone();
        tokio::spawn(async move {
            stream.tx.send(Bytes::from(sent)).await.unwrap();
        });
        assert_eq!(peer.read_stream(1).await, payload);
    }

    #[tokio::test]
    async fn garbage_ends_the_session_with_a_protocol_error() {
        let (mut peer, session) = Peer::pair();
        peer.io
            .write_all(&[0x80, 0x02, 0, 1, 0, 0, 0, 0])
            .await
            .unwrap();
        assert!(matches!(
            peer.next_skipping_updates().await,
            Some(Frame::GoAway {
                status: goaway::PROTOCOL_ERROR,
                ..
            })
        ));
        assert_eq!(peer.next().await, None);
        session.gone().cancelled().await;
    }

    #[tokio::test]
    async fn a_dropped_connection_ends_every_stream() {
        let (mut peer, mut session) = Peer::pair();
        peer.open(1, "stdin").await;
        let mut stream = session.accept().await.unwrap().accept();
        drop(peer);
        assert_eq!(stream.rx.recv().await, None);
        session.gone().cancelled().await;
        assert!(session.accept().await.is_none());
    }
}
