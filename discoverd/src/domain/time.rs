//! Points in time as the daemon stores and shows them: microseconds since
//! the Unix epoch, printed as ironic-inspector prints them
//! (`2026-11-25T05:19:46.767531`, UTC).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in time, in microseconds since the epoch (UTC).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Timestamp(i64);

impl Timestamp {
    pub fn now() -> Self {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        Timestamp(micros)
    }

    pub fn from_micros(micros: i64) -> Self {
        Timestamp(micros)
    }

    pub fn as_micros(self) -> i64 {
        self.0
    }

    /// From discoverd 1.0's stored form, float seconds.
    pub fn from_secs_f64(secs: f64) -> Self {
        Timestamp((secs * 1e6).round() as i64)
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }

    /// `self - d`, saturating at the epoch's far past.
    pub fn minus(self, d: Duration) -> Self {
        Timestamp(
            self.0
                .saturating_sub(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
        )
    }

    /// `self + d`, saturating.
    pub fn plus(self, d: Duration) -> Self {
        Timestamp(
            self.0
                .saturating_add(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
        )
    }

    /// How long ago `self` was, from `now` (zero if in the future).
    pub fn elapsed_at(self, now: Timestamp) -> Duration {
        Duration::from_micros(u64::try_from(now.0.saturating_sub(self.0)).unwrap_or(0))
    }

    /// ISO 8601, UTC, microseconds, no zone suffix: the inspector's form.
    pub fn iso8601(self) -> String {
        let secs = self.0.div_euclid(1_000_000);
        let micros = self.0.rem_euclid(1_000_000);
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        // Howard Hinnant's civil-from-days.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.iso8601())
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.iso8601())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.iso8601())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_matches_known_dates() {
        assert_eq!(
            Timestamp::from_secs_f64(0.0).iso8601(),
            "1970-01-01T00:00:00.000000"
        );
        assert_eq!(
            Timestamp::from_secs_f64(1_422_976_763.5).iso8601(),
            "2015-02-03T15:19:23.500000"
        );
        assert_eq!(
            Timestamp::from_secs_f64(1_795_583_986.767531).iso8601(),
            "2026-11-25T05:19:46.767531"
        );
        assert_eq!(Timestamp::from_micros(-1).iso8601(), "1969-12-31T23:59:59.999999");
    }

    #[test]
    fn arithmetic_saturates_and_round_trips() {
        let t = Timestamp::from_secs_f64(100.25);
        assert_eq!(t.as_secs_f64(), 100.25);
        assert_eq!(t.minus(Duration::from_secs(50)).as_secs_f64(), 50.25);
        assert_eq!(t.plus(Duration::from_millis(750)).as_secs_f64(), 101.0);
        assert_eq!(
            t.elapsed_at(t.plus(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(t.plus(Duration::from_secs(3)).elapsed_at(t), Duration::ZERO);
        assert_eq!(
            Timestamp::from_micros(i64::MIN)
                .minus(Duration::from_secs(1))
                .as_micros(),
            i64::MIN
        );
    }
}
