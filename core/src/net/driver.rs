//! The tokio driver of the media plane: it owns the UDP sockets of the media port, the clock and
//! the channels, and does nothing but move bytes and time into and out of the sans-IO
//! [`MediaPlane`]. Every decision about media is the plane's.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use rtc::peer_connection::transport::RTCIceCandidateInit;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::config::Protocol;
use crate::event::{Event, LeaveReason, ViewerId};
use crate::media::packetizer::MediaFrame;
use crate::metrics::Metrics;
use crate::net::udp::MediaPort;
use crate::plane::{MediaPlane, NewViewer, Notice, Output, StreamInfo, Transmit, ViewerOffer};
use crate::session::peer::TrackSpec;
use crate::stream::StreamShared;
use crate::Result;

/// Frames waiting for the loop. Past this, pushes drop frames instead of waiting.
pub(crate) const MEDIA_QUEUE: usize = 256;
/// Control commands waiting for the loop (signalling tasks wait for room).
pub(crate) const CONTROL_QUEUE: usize = 256;
/// Notices to one viewer's signalling task; there are at most two in a viewer's life.
pub(crate) const NOTICE_QUEUE: usize = 4;
/// Datagrams handled in a row before the loop looks at its other inputs again.
const RECV_BATCH: usize = 64;
/// Datagrams handed to the kernel per `sendmmsg` call.
const SEND_BATCH: usize = 64;

/// A frame pushed by a host.
pub(crate) struct MediaInput {
    pub stream: u64,
    pub frame: Arc<MediaFrame>,
    /// Frames were dropped just before this one.
    pub after_gap: bool,
    /// It comes from the built-in encoder (which makes keyframes on demand).
    pub raw_source: bool,
}

/// Requests from signalling tasks and the server.
pub(crate) enum Control {
    OpenStream(Arc<StreamShared>),
    CloseStream(u64),
    NewViewer {
        stream: u64,
        protocol: Protocol,
        remote: SocketAddr,
        started: Instant,
        /// The viewer's offer (WHEP); `None` when the server offers (WebSocket).
        offer_sdp: Option<String>,
        notices: mpsc::Sender<Notice>,
        reply: oneshot::Sender<Result<ViewerOffer>>,
    },
    Answer {
        viewer: ViewerId,
        sdp: String,
        reply: oneshot::Sender<Result<()>>,
    },
    RemoteCandidate {
        viewer: ViewerId,
        candidate: RTCIceCandidateInit,
    },
    CloseViewer {
        viewer: ViewerId,
        reason: LeaveReason,
    },
    /// Reply with the number of viewer sessions and streams held (for leak checks).
    Census(std::sync::mpsc::Sender<(usize, usize)>),
    /// Close every viewer and end the loop.
    Shutdown,
}

/// One media loop: the plane and the I/O around it.
pub(crate) struct Driver {
    plane: MediaPlane,
    port: MediaPort,
    metrics: Arc<Metrics>,
    events: broadcast::Sender<Event>,
    control_rx: mpsc::Receiver<Control>,
    media_rx: mpsc::Receiver<MediaInput>,
    streams: HashMap<u64, Arc<StreamShared>>,
    notices: HashMap<ViewerId, mpsc::Sender<Notice>>,
    batch: Vec<Transmit>,
}

impl Driver {
    pub(crate) fn new(
        plane: MediaPlane,
        port: MediaPort,
        metrics: Arc<Metrics>,
        events: broadcast::Sender<Event>,
        control_rx: mpsc::Receiver<Control>,
        media_rx: mpsc::Receiver<MediaInput>,
    ) -> Self {
        Self {
            plane,
            port,
            metrics,
            events,
            control_rx,
            media_rx,
            streams: HashMap::new(),
            notices: HashMap::new(),
            batch: Vec::with_capacity(SEND_BATCH),
        }
    }

    /// Runs until every control sender is gone or `Shutdown` (the server stopped), then closes
    /// every viewer.
    pub(crate) async fn run(mut self) {
        let mut buf = vec![0u8; 2048];
        loop {
            let deadline = self.plane.poll_timeout();
            let sleep = async {
                match deadline {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            };
            // Unbiased: steady inbound datagrams cannot starve frames, commands or timers.
            tokio::select! {
                cmd = self.control_rx.recv() => match cmd {
                    Some(Control::Shutdown) | None => break,
                    Some(cmd) => self.on_control(cmd),
                },
                res = std::future::poll_fn(|cx| self.port.poll_recv(cx, &mut buf)) => {
                    match res {
                        Ok((sock, n, from)) => {
                            let now = Instant::now();
                            let local = self.port.local_addr(sock);
                            self.plane.handle_datagram(now, local, from, &buf[..n]);
                            for _ in 1..RECV_BATCH {
                                let Some((sock, n, from)) = self.port.try_recv(&mut buf) else { break };
                                let local = self.port.local_addr(sock);
                                self.plane.handle_datagram(now, local, from, &buf[..n]);
                            }
                        }
                        Err(e) => tracing::warn!("media socket receive failed: {e}"),
                    }
                },
                input = self.media_rx.recv() => {
                    if let Some(input) = input {
                        self.plane.handle_frame(
                            Instant::now(),
                            input.stream,
                            input.frame,
                            input.after_gap,
                            input.raw_source,
                        );
                    }
                },
                () = sleep => self.plane.handle_timeout(Instant::now()),
            }
            self.drain();
        }
        self.plane.shutdown(Instant::now());
        self.drain();
    }

    fn on_control(&mut self, cmd: Control) {
        let now = Instant::now();
        match cmd {
            Control::OpenStream(shared) => {
                self.plane.open_stream(StreamInfo {
                    id: shared.id,
                    spec: TrackSpec {
                        stream: shared.name.clone(),
                        video_codec: shared.video_codec,
                        video_ssrc: shared.video_ssrc,
                        audio_ssrc: shared.audio_ssrc,
                    },
                });
                self.streams.insert(shared.id, shared);
            }
            Control::CloseStream(id) => {
                self.plane.close_stream(now, id);
                self.streams.remove(&id);
            }
            Control::NewViewer {
                stream,
                protocol,
                remote,
                started,
                offer_sdp,
                notices,
                reply,
            } => {
                let res = self.plane.new_viewer(
                    now,
                    NewViewer {
                        stream,
                        protocol,
                        remote,
                        started,
                        offer_sdp,
                    },
                );
                if let Ok(offer) = &res {
                    self.notices.insert(offer.id, notices);
                }
                let _ = reply.send(res);
            }
            Control::Answer { viewer, sdp, reply } => {
                let _ = reply.send(self.plane.apply_answer(now, viewer, sdp));
            }
            Control::RemoteCandidate { viewer, candidate } => {
                if let Err(e) = self.plane.remote_candidate(viewer) {
                    tracing::debug!(viewer, candidate = %candidate.candidate, "{e}");
                    self.plane
                        .close_viewer(now, viewer, LeaveReason::ConnectionLost);
                }
            }
            Control::CloseViewer { viewer, reason } => self.plane.close_viewer(now, viewer, reason),
            Control::Census(reply) => {
                let _ = reply.send(self.plane.census());
            }
            Control::Shutdown => {} // handled by run()
        }
    }

    /// Sends what the plane has to send, in batches, and delivers its outputs.
    fn drain(&mut self) {
        let now = Instant::now();
        while let Some(t) = self.plane.poll_transmit(now) {
            self.batch.push(t);
            if self.batch.len() == SEND_BATCH {
                self.send_batch(now);
            }
        }
        self.send_batch(now);
        while let Some(out) = self.plane.poll_output() {
            match out {
                Output::Event(e) => {
                    let _ = self.events.send(e);
                }
                Output::Notice(id, notice) => {
                    let closed = matches!(notice, Notice::Closed(_));
                    let tx = if closed {
                        self.notices.remove(&id)
                    } else {
                        self.notices.get(&id).cloned()
                    };
                    if let Some(tx) = tx {
                        let _ = tx.try_send(notice);
                    }
                }
                Output::KeyframeWanted(stream) => {
                    if let Some(s) = self.streams.get(&stream) {
                        s.request_keyframe();
                    }
                }
                Output::Viewers { stream, connected } => {
                    if let Some(s) = self.streams.get(&stream) {
                        s.set_viewers(connected);
                    }
                }
            }
        }
    }

    fn send_batch(&mut self, now: Instant) {
        if self.batch.is_empty() {
            return;
        }
        let mut failed = Vec::new();
        self.port.send_batch(&self.batch, |i| failed.push(i));
        let bytes: u64 = self.batch.iter().map(|t| t.data.len() as u64).sum();
        Metrics::add(
            &self.metrics.packets_sent,
            (self.batch.len() - failed.len()) as u64,
        );
        Metrics::add(&self.metrics.bytes_sent, bytes);
        let mut last = None;
        for i in failed {
            let viewer = self.batch[i].viewer;
            if last != Some(viewer) {
                self.plane.handle_send_failed(now, viewer);
                last = Some(viewer);
            }
        }
        self.batch.clear();
    }
}
