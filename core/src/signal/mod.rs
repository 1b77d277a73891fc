//! Signalling: how a viewer and the server exchange SDP and ICE candidates.

pub mod message;
pub mod turn;
pub(crate) mod whep;
pub(crate) mod ws;
