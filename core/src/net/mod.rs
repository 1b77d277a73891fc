//! The network side of the media path: the UDP sockets of the one media port, and the event loop
//! that drives every viewer's WebRTC connection over them.

pub(crate) mod event_loop;
pub(crate) mod stun;
pub(crate) mod udp;
