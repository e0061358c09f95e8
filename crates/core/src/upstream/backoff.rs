//! How long to wait before the next attempt: exponential backoff with
//! jitter, or what the vendor asked for (`Retry-After`).

use std::time::Duration;

/// The wait before the second attempt; it doubles with each further one.
const BASE: Duration = Duration::from_millis(250);
/// No computed wait is longer than this (a vendor's hint may be).
const CAP: Duration = Duration::from_secs(4);

/// A source of jitter: a fraction in `[0, 1)`. Tests pass a fixed one.
pub trait Jitter {
    fn fraction(&mut self) -> f64;
}

impl<R: rand::Rng> Jitter for R {
    fn fraction(&mut self) -> f64 {
        self.gen::<f64>()
    }
}

/// The wait after failed attempt number `attempt` (1 for the first): the
/// vendor's hint when it gave one, else half the exponential step plus a
/// random part of the other half, so that many turns failing together do not
/// retry in step.
pub fn backoff(attempt: u32, hint: Option<Duration>, jitter: &mut impl Jitter) -> Duration {
    if let Some(hint) = hint {
        return hint;
    }
    let step = BASE.saturating_mul(1u32 << attempt.saturating_sub(1).min(16)).min(CAP);
    step / 2 + step.mul_f64(jitter.fraction().clamp(0.0, 1.0) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(f64);
    impl Jitter for Fixed {
        fn fraction(&mut self) -> f64 {
            self.0
        }
    }

    #[test]
    fn doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let ms = |attempt, f| backoff(attempt, None, &mut Fixed(f)).as_millis();
        assert_eq!((ms(1, 0.0), ms(1, 0.999_999)), (125, 249));
        assert_eq!((ms(2, 0.0), ms(3, 0.0), ms(4, 0.0)), (250, 500, 1000));
        assert_eq!((ms(5, 0.0), ms(6, 0.5), ms(40, 0.0)), (2000, 3000, 2000));
    }

    #[test]
    fn the_vendors_hint_wins() {
        let hint = Some(Duration::from_millis(30));
        assert_eq!(backoff(3, hint, &mut Fixed(0.9)), Duration::from_millis(30));
        assert_eq!(backoff(1, Some(Duration::from_secs(90)), &mut Fixed(0.0)), Duration::from_secs(90));
    }

    #[test]
    fn real_jitter_stays_in_range() {
        let mut rng = rand::thread_rng();
        for _ in 0..1000 {
            let d = backoff(2, None, &mut rng);
            assert!(d >= Duration::from_millis(250) && d < Duration::from_millis(500), "{d:?}");
        }
    }
}
