//! The clocks of a session: the connect deadline, the ping/pong cycle, token expiry (of the
//! connection and of its subscriptions) and the periodic check of positioned subscriptions.

use std::time::{Duration, Instant};

use herald_protocol::codes::{self, Disconnect};
use rand::Rng;

use crate::config::ClientConfig;

pub(super) enum Due {
    Nothing,
    Ping,
    CheckPositions,
    /// A subscription's token expired, plus its grace, without a `sub_refresh`.
    SubscriptionsExpired,
    Close(Disconnect),
}

/// When a subscription closes for its expired token, in whole seconds since the session
/// began: small enough to sit in what a subscription entry would otherwise leave as padding.
pub(super) type SubClose = std::num::NonZeroU32;

#[derive(Debug)]
pub(super) struct Timers {
    ping_interval: Duration,
    pong_timeout: Duration,
    expired_close_delay: Duration,
    expired_sub_close_delay: Duration,
    position_check_delay: Duration,
    /// What [`SubClose`] values count from.
    began: Instant,
    /// Before connect: when a silent connection is dropped as stale.
    connect_deadline: Option<Instant>,
    next_ping: Option<Instant>,
    pong_deadline: Option<Instant>,
    /// Whether a ping waits for a pong: not on a unidirectional connection, whose client
    /// cannot answer.
    expect_pong: bool,
    /// When an expired connection is closed (expiry plus grace for a refresh).
    expire_close: Option<Instant>,
    next_position_check: Option<Instant>,
    /// The earliest [`SubClose`] of the session's subscriptions.
    sub_close: Option<Instant>,
    /// The answer of `next` when nothing is scheduled: fixed, so a transport that re-arms its
    /// timer only when the deadline changes does not re-arm it on every turn.
    never: Instant,
}

impl Timers {
    pub(super) fn connecting(now: Instant, config: &ClientConfig) -> Self {
        Self {
            ping_interval: config.ping_interval,
            pong_timeout: config.pong_timeout,
            expired_close_delay: config.expired_close_delay,
            expired_sub_close_delay: config.expired_sub_close_delay,
            position_check_delay: config.channel_position_check_delay,
            began: now,
            connect_deadline: Some(now + config.connect_timeout),
            next_ping: None,
            pong_deadline: None,
            expect_pong: true,
            expire_close: None,
            next_position_check: None,
            sub_close: None,
            never: now + Duration::from_secs(365 * 24 * 3600),
        }
    }

    /// Starts the ping cycle. The first ping is spread over `[interval/2, interval)` so a
    /// reconnect storm does not turn into synchronized ping storms.
    pub(super) fn connected(&mut self, now: Instant) {
        self.connect_deadline = None;
        let half = self.ping_interval / 2;
        let jitter = rand::rng().random_range(0..half.as_millis().max(1) as u64);
        self.next_ping = Some(now + half + Duration::from_millis(jitter));
        self.next_position_check =
            (!self.position_check_delay.is_zero()).then(|| now + self.position_check_delay);
    }

    /// The connection token expires in `ttl` (None: never). A token may say it expires in
    /// billions of years: beyond what an `Instant` can hold it is treated as never.
    pub(super) fn set_expiry(&mut self, now: Instant, ttl: Option<Duration>) {
        self.expire_close =
            ttl.and_then(|ttl| now.checked_add(ttl)?.checked_add(self.expired_close_delay));
    }

    /// When a subscription whose token expires in `ttl` (None: never) closes: the expiry
    /// plus `client.expired_sub_close_delay`, rounded up to a whole second. None for never,
    /// also past what a `SubClose` holds (136 years).
    pub(super) fn sub_close_at(&self, now: Instant, ttl: Option<Duration>) -> Option<SubClose> {
        let at = now
            .checked_add(ttl?)?
            .checked_add(self.expired_sub_close_delay)?;
        let since = at.saturating_duration_since(self.began);
        let secs = since.as_secs() + u64::from(since.subsec_nanos() > 0);
        SubClose::new(u32::try_from(secs.max(1)).ok()?)
    }

    /// Whether a subscription closing at `close` is due at `now`.
    pub(super) fn sub_due(&self, close: SubClose, now: Instant) -> bool {
        now >= self.began + Duration::from_secs(close.get().into())
    }

    /// The earliest close of the session's subscriptions (None: none expires).
    pub(super) fn set_sub_close(&mut self, earliest: Option<SubClose>) {
        self.sub_close = earliest.map(|c| self.began + Duration::from_secs(c.get().into()));
    }

    /// Pings of a unidirectional connection: sent, never answered.
    pub(super) fn expect_no_pong(&mut self) {
        self.expect_pong = false;
    }

    /// A pong arrived: true when a ping was waiting for it.
    pub(super) fn pong_received(&mut self) -> bool {
        self.pong_deadline.take().is_some()
    }

    pub(super) fn next(&self) -> Instant {
        [
            self.connect_deadline,
            self.next_ping,
            self.pong_deadline,
            self.expire_close,
            self.next_position_check,
            self.sub_close,
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(self.never)
    }

    pub(super) fn fire(&mut self, now: Instant, connected: bool) -> Due {
        if !connected {
            return match self.connect_deadline {
                Some(t) if now >= t => Due::Close(codes::disconnect::STALE),
                _ => Due::Nothing,
            };
        }
        if self.pong_deadline.is_some_and(|t| now >= t) {
            return Due::Close(codes::disconnect::NO_PONG);
        }
        if self.expire_close.is_some_and(|t| now >= t) {
            return Due::Close(codes::disconnect::EXPIRED);
        }
        if self.next_ping.is_some_and(|t| now >= t) {
            self.next_ping = Some(now + self.ping_interval);
            // Keep an earlier deadline if a previous ping is still unanswered.
            if self.expect_pong {
                self.pong_deadline.get_or_insert(now + self.pong_timeout);
            }
            return Due::Ping;
        }
        if self.sub_close.is_some_and(|t| now >= t) {
            // The session sets the next one once it has closed what is due.
            self.sub_close = None;
            return Due::SubscriptionsExpired;
        }
        if self.next_position_check.is_some_and(|t| now >= t) {
            self.next_position_check = Some(now + self.position_check_delay);
            return Due::CheckPositions;
        }
        Due::Nothing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ClientConfig {
        ClientConfig::default()
    }

    #[test]
    fn silent_connection_goes_stale_after_connect_timeout() {
        let t0 = Instant::now();
        let mut t = Timers::connecting(t0, &config());
        assert_eq!(t.next(), t0 + Duration::from_secs(10));
        assert!(matches!(
            t.fire(t0 + Duration::from_secs(9), false),
            Due::Nothing
        ));
        assert!(matches!(
            t.fire(t0 + Duration::from_secs(10), false),
            Due::Close(d) if d == codes::disconnect::STALE
        ));
    }

    #[test]
    fn first_ping_is_jittered_then_regular_and_a_missing_pong_closes() {
        let t0 = Instant::now();
        let mut t = Timers::connecting(t0, &config());
        t.connected(t0);
        t.next_position_check = None;
        let first = t.next();
        assert!(
            first >= t0 + Duration::from_millis(12_500) && first < t0 + Duration::from_secs(25)
        );
        assert!(matches!(t.fire(first, true), Due::Ping));
        assert_eq!(t.next(), first + Duration::from_secs(8), "pong deadline");
        assert!(t.pong_received());
        assert!(!t.pong_received(), "a second pong is unsolicited");
        assert_eq!(t.next(), first + Duration::from_secs(25));
        let second = t.next();
        assert!(matches!(t.fire(second, true), Due::Ping));
        assert!(matches!(
            t.fire(second + Duration::from_secs(8), true),
            Due::Close(d) if d == codes::disconnect::NO_PONG
        ));
    }

    #[test]
    fn positions_are_checked_every_delay_once_connected_and_never_at_zero() {
        let t0 = Instant::now();
        let mut t = Timers::connecting(t0, &config());
        assert_eq!(
            t.next_position_check, None,
            "nothing to check before connect"
        );
        t.connected(t0);
        t.next_ping = None;
        assert_eq!(t.next(), t0 + Duration::from_secs(40));
        assert!(matches!(
            t.fire(t0 + Duration::from_secs(39), true),
            Due::Nothing
        ));
        assert!(matches!(
            t.fire(t0 + Duration::from_secs(40), true),
            Due::CheckPositions
        ));
        assert_eq!(t.next(), t0 + Duration::from_secs(80));
        let mut off = Timers::connecting(
            t0,
            &ClientConfig {
                channel_position_check_delay: Duration::ZERO,
                ..config()
            },
        );
        off.connected(t0);
        off.next_ping = None;
        assert_eq!(off.next(), off.never);
    }

    #[test]
    fn expiry_closes_after_the_grace_delay() {
        let t0 = Instant::now();
        let mut t = Timers::connecting(t0, &config());
        t.connected(t0);
        t.set_expiry(t0, Some(Duration::from_secs(5)));
        t.next_ping = None;
        assert_eq!(t.next(), t0 + Duration::from_secs(30));
        assert!(matches!(
            t.fire(t0 + Duration::from_secs(30), true),
            Due::Close(d) if d == codes::disconnect::EXPIRED
        ));
        t.set_expiry(t0, None);
        assert!(matches!(
            t.fire(t0 + Duration::from_secs(30), true),
            Due::Nothing
        ));
    }

    #[test]
    fn subscriptions_close_after_their_grace_delay_in_whole_seconds() {
        let t0 = Instant::now();
        let mut t = Timers::connecting(t0, &config());
        t.connected(t0);
        t.next_ping = None;
        t.next_position_check = None;
        assert_eq!(t.sub_close_at(t0, None), None);
        // 25 s of grace by default; 5.2 s of token rounds up.
        let close = t
            .sub_close_at(t0, Some(Duration::from_millis(5_200)))
            .unwrap();
        assert_eq!(close.get(), 31);
        assert!(!t.sub_due(close, t0 + Duration::from_secs(30)));
        assert!(t.sub_due(close, t0 + Duration::from_secs(31)));
        t.set_sub_close(Some(close));
        assert_eq!(t.next(), t0 + Duration::from_secs(31));
        assert!(matches!(
            t.fire(t0 + Duration::from_secs(30), true),
            Due::Nothing
        ));
        assert!(matches!(
            t.fire(t0 + Duration::from_secs(31), true),
            Due::SubscriptionsExpired
        ));
        assert_eq!(t.next(), t.never, "re-armed only by the session");
        // A token beyond what a SubClose holds never closes its subscription.
        assert_eq!(
            t.sub_close_at(t0, Some(Duration::from_secs(200 * 365 * 24 * 3600))),
            None
        );
        assert_eq!(t.sub_close_at(t0, Some(Duration::MAX)), None);
    }

    #[test]
    fn an_expiry_beyond_what_an_instant_holds_is_never() {
        let t0 = Instant::now();
        let mut t = Timers::connecting(t0, &config());
        t.connected(t0);
        t.next_ping = None;
        t.set_expiry(t0, Some(Duration::from_secs(u64::MAX / 2)));
        assert_eq!(t.expire_close, None);
        t.set_expiry(t0, Some(Duration::MAX));
        assert_eq!(t.expire_close, None);
    }
}
