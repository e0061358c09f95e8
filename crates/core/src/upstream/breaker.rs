//! The circuit breaker of one provider of a tenant (SPEC §13): after enough
//! consecutive failures it opens and calls fail fast; after a while one trial
//! call is let through, and its outcome closes or reopens the circuit.
//! Time comes from the caller (the engine's clock), so tests can move it.

use crate::tenant::BreakerPolicy;
use crate::time::Timestamp;
use std::sync::{Mutex, PoisonError};

/// What the breaker says to a call about to be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Closed: call away.
    Allowed,
    /// Half-open: this call is the one trial; report its outcome.
    Trial,
    /// Open: fail fast (or try the next provider).
    Rejected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Timestamp,
    },
    /// A trial call is out since `since`.
    HalfOpen {
        since: Timestamp,
    },
}

#[derive(Debug)]
pub struct Breaker {
    policy: BreakerPolicy,
    state: Mutex<State>,
}

impl Breaker {
    pub fn new(policy: BreakerPolicy) -> Self {
        Self { policy, state: Mutex::new(State::Closed { failures: 0 }) }
    }

    fn open_for(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.policy.open_for).unwrap_or(chrono::Duration::MAX)
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        // The state is always whole between two statements: a poisoned lock
        // holds a valid state.
        f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Whether a call may go out now.
    pub fn admit(&self, now: Timestamp) -> Admission {
        let open_for = self.open_for();
        self.with(|state| match *state {
            State::Closed { .. } => Admission::Allowed,
            State::Open { until } if now < until => Admission::Rejected,
            // A trial that never reported (its turn vanished) is replaced
            // after as long again.
            State::HalfOpen { since } if now < since + open_for => Admission::Rejected,
            State::Open { .. } | State::HalfOpen { .. } => {
                *state = State::HalfOpen { since: now };
                Admission::Trial
            }
        })
    }

    /// The provider answered: the circuit closes. True if it was not closed.
    pub fn succeeded(&self) -> bool {
        self.with(|state| {
            let was_open = !matches!(state, State::Closed { .. });
            *state = State::Closed { failures: 0 };
            was_open
        })
    }

    /// The provider failed: one more consecutive failure, or a failed trial.
    /// True if the circuit is open now (further calls would be refused).
    pub fn failed(&self, now: Timestamp) -> bool {
        let until = now + self.open_for();
        let threshold = self.policy.failures;
        self.with(|state| match *state {
            State::Closed { failures } if failures + 1 < threshold => {
                *state = State::Closed { failures: failures + 1 };
                false
            }
            State::Closed { .. } | State::HalfOpen { .. } => {
                *state = State::Open { until };
                true
            }
            State::Open { .. } => true,
        })
    }

    /// A trial call ended without telling (the turn was stopped): the next
    /// call may be the trial at once.
    pub fn abandoned(&self, now: Timestamp) {
        self.with(|state| {
            if let State::HalfOpen { .. } = state {
                *state = State::Open { until: now };
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn t(secs: i64) -> Timestamp {
        crate::time::from_millis(1_700_000_000_000 + secs * 1000)
    }

    fn breaker() -> Breaker {
        Breaker::new(BreakerPolicy { failures: 5, open_for: Duration::from_secs(60) })
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let b = breaker();
        for _ in 0..4 {
            assert!(!b.failed(t(0)));
        }
        assert!(!b.succeeded(), "it was closed"); // the count starts over
        for _ in 0..4 {
            assert!(!b.failed(t(1)));
            assert_eq!(b.admit(t(1)), Admission::Allowed);
        }
        assert!(b.failed(t(1)), "the fifth failure opens it");
        assert_eq!(b.admit(t(1)), Admission::Rejected);
        assert_eq!(b.admit(t(60)), Admission::Rejected);
    }

    #[test]
    fn half_opens_for_one_trial_that_closes_or_reopens() {
        let b = breaker();
        for _ in 0..5 {
            b.failed(t(0));
        }
        assert_eq!(b.admit(t(61)), Admission::Trial);
        assert_eq!(b.admit(t(61)), Admission::Rejected, "one trial at a time");
        assert!(b.failed(t(62)), "a failed trial reopens it");
        assert_eq!(b.admit(t(100)), Admission::Rejected, "a failed trial reopens for the full period");
        assert_eq!(b.admit(t(122)), Admission::Trial);
        assert!(b.succeeded(), "the trial closed it");
        assert_eq!(b.admit(t(122)), Admission::Allowed);
        for _ in 0..4 {
            b.failed(t(123));
        }
        assert_eq!(b.admit(t(123)), Admission::Allowed, "closed again with a fresh count");
    }

    #[test]
    fn a_lost_trial_is_replaced() {
        let b = breaker();
        for _ in 0..5 {
            b.failed(t(0));
        }
        assert_eq!(b.admit(t(60)), Admission::Trial);
        assert_eq!(b.admit(t(119)), Admission::Rejected);
        assert_eq!(b.admit(t(120)), Admission::Trial, "the silent trial is replaced");
        b.abandoned(t(121));
        assert_eq!(b.admit(t(121)), Admission::Trial, "an abandoned trial frees the slot at once");
    }
}
