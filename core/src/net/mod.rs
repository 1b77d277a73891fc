//! The network side of the media path: the UDP sockets of the one media port, and the tokio
//! driver that moves datagrams, frames and time into the sans-IO media plane (`crate::plane`).

pub(crate) mod driver;
pub(crate) mod frames;
pub(crate) mod stun;
pub(crate) mod tcp;
pub(crate) mod udp;
