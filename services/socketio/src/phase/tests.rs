use super::*;
use crate::engineio::PROBE;

fn probe() -> Packet {
    Packet::Ping(Some(PROBE.into()))
}

#[test]
fn polling_then_probe_then_upgrade() {
    let mut s = TransportPhase::polling();
    assert_eq!(s.phase(), Phase::Polling);
    assert!(s.check_poll().is_ok());
    assert!(s.check_upgrade_request().is_ok());
    assert_eq!(
        s.on_packet(Transport::Polling, &Packet::message("40")),
        Ok(Action::Deliver)
    );
    assert_eq!(
        s.on_packet(Transport::Polling, &Packet::Pong(None)),
        Ok(Action::Heartbeat)
    );

    assert_eq!(
        s.on_packet(Transport::WebSocket, &probe()),
        Ok(Action::AnswerProbe)
    );
    assert_eq!(s.phase(), Phase::Probing);
    // The client may still be polling while the probe is answered.
    assert!(s.check_poll().is_ok());
    assert_eq!(
        s.on_packet(Transport::Polling, &Packet::message("42[\"a\"]")),
        Ok(Action::Deliver)
    );
    assert!(s.check_upgrade_request().is_err());

    assert_eq!(
        s.on_packet(Transport::WebSocket, &Packet::Upgrade),
        Ok(Action::Upgraded)
    );
    assert_eq!(s.phase(), Phase::WebSocket);
    assert_eq!(
        s.check_poll(),
        Err(PhaseError::NotPolling(Phase::WebSocket))
    );
    assert_eq!(
        s.on_packet(Transport::Polling, &Packet::message("x")),
        Err(PhaseError::NotPolling(Phase::WebSocket))
    );
    assert_eq!(
        s.on_packet(Transport::WebSocket, &Packet::Binary(Default::default())),
        Ok(Action::Deliver)
    );
    assert_eq!(
        s.on_packet(Transport::WebSocket, &Packet::Close),
        Ok(Action::Close)
    );
    assert_eq!(s.phase(), Phase::Closed);
}

#[test]
fn anything_but_a_probe_on_a_new_websocket_aborts_the_upgrade() {
    for packet in [
        Packet::message("40"),
        Packet::Upgrade,
        Packet::Ping(None),
        Packet::Pong(Some(PROBE.into())),
    ] {
        let mut s = TransportPhase::polling();
        assert!(
            matches!(
                s.on_packet(Transport::WebSocket, &packet),
                Err(PhaseError::ProbeAborted(_))
            ),
            "{packet:?}"
        );
        assert_eq!(s.phase(), Phase::Polling);
    }
}

#[test]
fn anything_but_upgrade_after_the_probe_falls_back_to_polling() {
    let mut s = TransportPhase::polling();
    s.on_packet(Transport::WebSocket, &probe()).unwrap();
    assert_eq!(
        s.on_packet(Transport::WebSocket, &Packet::message("42[\"a\"]")),
        Err(PhaseError::ProbeAborted("message"))
    );
    assert_eq!(s.phase(), Phase::Polling);
    // A new probe may follow.
    assert_eq!(
        s.on_packet(Transport::WebSocket, &probe()),
        Ok(Action::AnswerProbe)
    );
}

#[test]
fn packets_no_client_sends_are_refused() {
    for start in [TransportPhase::polling(), TransportPhase::websocket()] {
        let via = match start.phase() {
            Phase::WebSocket => Transport::WebSocket,
            _ => Transport::Polling,
        };
        for packet in [
            Packet::Ping(None),
            Packet::Ping(Some(PROBE.into())),
            Packet::Pong(Some(PROBE.into())),
            Packet::Noop,
            Packet::Upgrade,
        ] {
            let mut s = start.clone();
            assert!(
                matches!(
                    s.on_packet(via, &packet),
                    Err(PhaseError::Unexpected { .. })
                ),
                "{packet:?} via {via:?}"
            );
            assert_eq!(s.phase(), start.phase());
        }
    }
}

#[test]
fn a_websocket_session_starts_upgraded() {
    let mut s = TransportPhase::websocket();
    assert!(s.check_poll().is_err());
    assert_eq!(
        s.check_upgrade_request(),
        Err(PhaseError::UpgradeRefused(Phase::WebSocket))
    );
    assert_eq!(
        s.on_packet(Transport::WebSocket, &Packet::message("40")),
        Ok(Action::Deliver)
    );
}

#[test]
fn a_closed_session_accepts_nothing() {
    let mut s = TransportPhase::polling();
    assert_eq!(
        s.on_packet(Transport::Polling, &Packet::Close),
        Ok(Action::Close)
    );
    assert_eq!(s.check_poll(), Err(PhaseError::NotPolling(Phase::Closed)));
    assert!(
        s.on_packet(Transport::Polling, &Packet::message("x"))
            .is_err()
    );
    assert!(s.on_packet(Transport::WebSocket, &probe()).is_err());

    let mut s = TransportPhase::websocket();
    s.close();
    assert_eq!(s.phase(), Phase::Closed);
    assert!(
        s.on_packet(Transport::WebSocket, &Packet::Pong(None))
            .is_err()
    );
}
