//! The transport phase of one Engine.IO session, and which packets each phase accepts.
//!
//! A session opened by polling may move to WebSocket: the client opens a WebSocket with the
//! same `sid` and sends `2probe`; the server answers `3probe` there and ends any pending poll
//! with a noop (the client pauses polling); the client sends `5` (upgrade) on the WebSocket,
//! and from then on the session lives there and polling requests are refused. Anything else on
//! the probing socket aborts the upgrade, and the session stays on polling. A session opened
//! directly on WebSocket starts upgraded.
//!
//! Transports feed every packet a client sends to [`TransportPhase::on_packet`] and act on the
//! [`Action`] it returns; an error says what the transport must refuse (see [`PhaseError`]).

use crate::engineio::Packet;

/// The transport a packet arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Polling,
    WebSocket,
}

/// Where the session lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// On HTTP long-polling; a WebSocket may only send `2probe`.
    Polling,
    /// On polling, with a WebSocket probed (`3probe` sent) and waiting for `5`.
    Probing,
    /// On WebSocket (upgraded, or opened there); polling requests are refused.
    WebSocket,
    /// Closed by either side; nothing more is accepted.
    Closed,
}

/// What the transport does with an accepted packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Hand the message to the Socket.IO layer.
    Deliver,
    /// The client answered the server's ping: the heartbeat is alive.
    Heartbeat,
    /// Answer `3probe` on the probing WebSocket and end any pending poll with a noop.
    AnswerProbe,
    /// The session moved to the WebSocket: end any pending poll with a noop and send the
    /// packets buffered for polling over the WebSocket.
    Upgraded,
    /// The client closed the session.
    Close,
}

/// A packet or request the session's phase does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhaseError {
    /// A polling request for a session that lives on WebSocket, or is closed (HTTP 400).
    #[error("the session is not on polling (phase {0:?})")]
    NotPolling(Phase),
    /// A second WebSocket, or one for a session that is closed: close that WebSocket.
    #[error("the session cannot be upgraded now (phase {0:?})")]
    UpgradeRefused(Phase),
    /// Something other than `2probe` then `5` on a probing WebSocket: close it; the session
    /// stays on polling.
    #[error("upgrade aborted: {0} packet on the probing WebSocket")]
    ProbeAborted(&'static str),
    /// A packet no client sends (open, noop, upgrade outside a probe, a ping that is not a
    /// probe: in v4 only the server pings): close the session.
    #[error("unexpected {packet} packet from the client over {transport:?} (phase {phase:?})")]
    Unexpected {
        packet: &'static str,
        transport: Transport,
        phase: Phase,
    },
}

/// The transport phase of one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportPhase {
    phase: Phase,
}

impl TransportPhase {
    /// A session opened by a polling handshake.
    pub fn polling() -> Self {
        TransportPhase {
            phase: Phase::Polling,
        }
    }

    /// A session opened directly on WebSocket.
    pub fn websocket() -> Self {
        TransportPhase {
            phase: Phase::WebSocket,
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Checks that a polling request (GET or POST) may be served.
    pub fn check_poll(&self) -> Result<(), PhaseError> {
        match self.phase {
            Phase::Polling | Phase::Probing => Ok(()),
            other => Err(PhaseError::NotPolling(other)),
        }
    }

    /// Checks that a WebSocket may attach to this session to probe it.
    pub fn check_upgrade_request(&self) -> Result<(), PhaseError> {
        match self.phase {
            Phase::Polling => Ok(()),
            other => Err(PhaseError::UpgradeRefused(other)),
        }
    }

    /// The session closed for a reason of the server's (ping timeout, transport error, …).
    pub fn close(&mut self) {
        self.phase = Phase::Closed;
    }

    /// Takes one packet the client sent over `via`.
    pub fn on_packet(&mut self, via: Transport, packet: &Packet) -> Result<Action, PhaseError> {
        use Transport::{Polling, WebSocket};
        let unexpected = |phase| PhaseError::Unexpected {
            packet: packet.name(),
            transport: via,
            phase,
        };
        match (self.phase, via) {
            (Phase::Closed, _) => Err(unexpected(Phase::Closed)),
            (Phase::Polling, WebSocket) => {
                if packet.is_probe_ping() {
                    self.phase = Phase::Probing;
                    Ok(Action::AnswerProbe)
                } else {
                    Err(PhaseError::ProbeAborted(packet.name()))
                }
            }
            (Phase::Probing, WebSocket) => {
                if matches!(packet, Packet::Upgrade) {
                    self.phase = Phase::WebSocket;
                    Ok(Action::Upgraded)
                } else {
                    self.phase = Phase::Polling;
                    Err(PhaseError::ProbeAborted(packet.name()))
                }
            }
            (Phase::WebSocket, Polling) => Err(PhaseError::NotPolling(Phase::WebSocket)),
            (phase, _) => self.established(phase, packet),
        }
    }

    /// A packet on the transport the session lives on.
    fn established(&mut self, phase: Phase, packet: &Packet) -> Result<Action, PhaseError> {
        match packet {
            Packet::Message(_) | Packet::Binary(_) => Ok(Action::Deliver),
            Packet::Pong(None) => Ok(Action::Heartbeat),
            Packet::Close => {
                self.phase = Phase::Closed;
                Ok(Action::Close)
            }
            Packet::Open(_)
            | Packet::Ping(_)
            | Packet::Pong(Some(_))
            | Packet::Upgrade
            | Packet::Noop => Err(PhaseError::Unexpected {
                packet: packet.name(),
                transport: match phase {
                    Phase::WebSocket => Transport::WebSocket,
                    _ => Transport::Polling,
                },
                phase,
            }),
        }
    }
}

#[cfg(test)]
mod tests;
