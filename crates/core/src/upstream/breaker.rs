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
    /// Half-open: this call is the one trial; report its outcome (and,
    /// should it end without one, say so with its id: [`Breaker::abandoned`]).
    Trial(TrialId),
    /// Open: fail fast (or try the next provider).
    Rejected,
}

/// Which trial call an admission let through: a trial that outlived its
/// slot (replaced after `open_for`) must not free the slot of the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrialId(u64);

/// What a breaker would do with a call now, for whoever watches it (the
/// server's metrics read it at each scrape).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Circuit {
    /// Calls go out.
    Closed,
    /// The next call is (or a call out now is) the one trial.
    HalfOpen,
    /// Calls fail fast.
    Open,
}

impl Circuit {
    /// 0 closed, 1 half-open, 2 open: the worse, the higher.
    pub fn level(self) -> u8 {
        match self {
            Self::Closed => 0,
            Self::HalfOpen => 1,
            Self::Open => 2,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Timestamp,
    },
    /// Trial call `trial` is out since `since`.
    HalfOpen {
        since: Timestamp,
        trial: TrialId,
    },
}

#[derive(Debug)]
pub struct Breaker {
    policy: BreakerPolicy,
    /// The state, and the id of the last trial let through.
    state: Mutex<(State, u64)>,
}

impl Breaker {
    pub fn new(policy: BreakerPolicy) -> Self {
        Self { policy, state: Mutex::new((State::Closed { failures: 0 }, 0)) }
    }

    fn open_for(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.policy.open_for).unwrap_or(chrono::Duration::MAX)
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.locked().0)
    }

    fn locked(&self) -> std::sync::MutexGuard<'_, (State, u64)> {
        // The state is always whole between two statements: a poisoned lock
        // holds a valid state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a call may go out now.
    pub fn admit(&self, now: Timestamp) -> Admission {
        let open_for = self.open_for();
        let mut locked = self.locked();
        let (state, trials) = &mut *locked;
        match *state {
            State::Closed { .. } => Admission::Allowed,
            State::Open { until } if now < until => Admission::Rejected,
            // A trial that never reported (its turn vanished) is replaced
            // after as long again.
            State::HalfOpen { since, .. } if now < since + open_for => Admission::Rejected,
            State::Open { .. } | State::HalfOpen { .. } => {
                *trials += 1;
                let trial = TrialId(*trials);
                *state = State::HalfOpen { since: now, trial };
                Admission::Trial(trial)
            }
        }
    }

    /// The circuit as of `now`, without changing it: an open circuit whose
    /// time is up is half-open (its next call is the trial).
    pub fn circuit(&self, now: Timestamp) -> Circuit {
        match self.locked().0 {
            State::Closed { .. } => Circuit::Closed,
            State::Open { until } if now < until => Circuit::Open,
            State::Open { .. } | State::HalfOpen { .. } => Circuit::HalfOpen,
        }
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

    /// Trial call `trial` ended without telling (the turn was stopped): the
    /// next call may be the trial at once, unless `trial` was replaced
    /// meanwhile (its successor holds the slot).
    pub fn abandoned(&self, trial: TrialId, now: Timestamp) {
        self.with(|state| {
            if matches!(*state, State::HalfOpen { trial: current, .. } if current == trial) {
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
        crate::time::from_millis(1_700_000_000_000 + secs * 1000).unwrap()
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
        assert_eq!(b.circuit(t(1)), Circuit::Closed);
        assert!(b.failed(t(1)), "the fifth failure opens it");
        assert_eq!(b.circuit(t(1)), Circuit::Open);
        assert_eq!(b.circuit(t(61)), Circuit::HalfOpen, "its time is up: the next call is the trial");
        assert_eq!(b.admit(t(1)), Admission::Rejected);
        assert_eq!(b.admit(t(60)), Admission::Rejected);
    }

    #[test]
    fn half_opens_for_one_trial_that_closes_or_reopens() {
        let b = breaker();
        for _ in 0..5 {
            b.failed(t(0));
        }
        assert!(matches!(b.admit(t(61)), Admission::Trial(_)));
        assert_eq!(b.admit(t(61)), Admission::Rejected, "one trial at a time");
        assert_eq!(b.circuit(t(61)), Circuit::HalfOpen);
        assert!(b.failed(t(62)), "a failed trial reopens it");
        assert_eq!(b.circuit(t(62)), Circuit::Open);
        assert_eq!(b.admit(t(100)), Admission::Rejected, "a failed trial reopens for the full period");
        assert!(matches!(b.admit(t(122)), Admission::Trial(_)));
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
        let Admission::Trial(lost) = b.admit(t(60)) else { panic!("no trial") };
        assert_eq!(b.admit(t(119)), Admission::Rejected);
        let Admission::Trial(second) = b.admit(t(120)) else { panic!("the silent trial was not replaced") };
        // The lost trial's turn ends at last: the slot is the second's.
        b.abandoned(lost, t(121));
        assert_eq!(b.admit(t(121)), Admission::Rejected, "a replaced trial freed its successor's slot");
        b.abandoned(second, t(122));
        assert!(matches!(b.admit(t(122)), Admission::Trial(_)), "an abandoned trial frees the slot at once");
    }
}
