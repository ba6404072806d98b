//! Prometheus durations: parsing (`1d12h`, `30d`, `90s`, `500ms`) and Prometheus' own
//! formatting, where years and weeks are used only when exact (`7d` prints as `1w`, `28d` as
//! `4w`, but `30d` stays `30d`). Rule names such as `slo:sli_error:ratio_rate4w` depend on it.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

const MS: u64 = 1;
const SEC: u64 = 1000 * MS;
const MIN: u64 = 60 * SEC;
const HOUR: u64 = 60 * MIN;
const DAY: u64 = 24 * HOUR;
const WEEK: u64 = 7 * DAY;
const YEAR: u64 = 365 * DAY;

/// A duration with millisecond precision, formatted the way Prometheus formats it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PromDuration {
    millis: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: expected a Prometheus duration such as 5m, 1h, 30d or 1d12h")]
pub struct DurationError {
    pub input: String,
}

impl PromDuration {
    pub const fn from_millis(millis: u64) -> Self {
        PromDuration { millis }
    }
    pub const fn from_secs(secs: u64) -> Self {
        PromDuration { millis: secs * SEC }
    }
    pub const fn from_mins(mins: u64) -> Self {
        PromDuration { millis: mins * MIN }
    }
    pub const fn from_hours(hours: u64) -> Self {
        PromDuration {
            millis: hours * HOUR,
        }
    }
    pub const fn from_days(days: u64) -> Self {
        PromDuration { millis: days * DAY }
    }
    pub const fn as_millis(self) -> u64 {
        self.millis
    }
    pub fn as_secs_f64(self) -> f64 {
        self.millis as f64 / SEC as f64
    }
    pub fn as_std(self) -> Duration {
        Duration::from_millis(self.millis)
    }
    /// Length in (possibly fractional) days, as in `slo:time_period:days`.
    pub fn as_days_f64(self) -> f64 {
        self.millis as f64 / DAY as f64
    }
}

impl From<Duration> for PromDuration {
    fn from(d: Duration) -> Self {
        PromDuration {
            millis: u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

impl FromStr for PromDuration {
    type Err = DurationError;

    /// Parses Prometheus' duration syntax: one or more `<int><unit>` terms with units
    /// `y w d h m s ms`, each unit at most once and in decreasing order.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || DurationError {
            input: s.to_string(),
        };
        let units: [(&str, u64); 7] = [
            ("y", YEAR),
            ("w", WEEK),
            ("d", DAY),
            ("h", HOUR),
            ("m", MIN),
            ("s", SEC),
            ("ms", MS),
        ];
        let bytes = s.as_bytes();
        if bytes.is_empty() {
            return Err(err());
        }
        let mut i = 0;
        let mut total: u64 = 0;
        // Index into `units` that the next term must come after (decreasing order).
        let mut next_unit = 0;
        while i < bytes.len() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if start == i {
                return Err(err());
            }
            let n: u64 = s[start..i].parse().map_err(|_| err())?;
            let ustart = i;
            while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
                i += 1;
            }
            let unit = &s[ustart..i];
            let pos = units[next_unit..]
                .iter()
                .position(|(u, _)| *u == unit)
                .ok_or_else(err)?
                + next_unit;
            next_unit = pos + 1;
            total = n
                .checked_mul(units[pos].1)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(err)?;
        }
        Ok(PromDuration { millis: total })
    }
}

/// The terms of Prometheus' duration text, largest first: unit, milliseconds, and whether
/// the unit is only used when it divides the duration exactly (years and weeks).
const TERMS: [(&str, u64, bool); 7] = [
    ("y", YEAR, true),
    ("w", WEEK, true),
    ("d", DAY, false),
    ("h", HOUR, false),
    ("m", MIN, false),
    ("s", SEC, false),
    ("ms", MS, false),
];

impl fmt::Display for PromDuration {
    /// Prometheus' `model.Duration.String()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.millis;
        if ms == 0 {
            return f.write_str("0s");
        }
        // Written into a buffer and out in one piece: `write!` per term went through the
        // general formatter, the larger part of building a budget report (seven windows per
        // SLO, 10,000 SLOs per cycle). At most 7 terms of at most 20 digits and 2 letters.
        let mut buf = [0u8; 7 * 22];
        let mut n = 0;
        for (unit, mult, exact) in TERMS {
            if exact && !ms.is_multiple_of(mult) {
                continue;
            }
            let v = ms / mult;
            if v > 0 {
                let mut digits = [0u8; 20];
                let mut d = digits.len();
                let mut rest = v;
                while rest > 0 {
                    d -= 1;
                    digits[d] = b'0' + (rest % 10) as u8;
                    rest /= 10;
                }
                for b in digits[d..].iter().chain(unit.as_bytes()) {
                    buf[n] = *b;
                    n += 1;
                }
                ms -= v * mult;
            }
        }
        // ASCII digits and unit letters only.
        f.write_str(std::str::from_utf8(&buf[..n]).map_err(|_| fmt::Error)?)
    }
}

impl serde::Serialize for PromDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for PromDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PromDuration {
        s.parse().unwrap()
    }

    /// The text is the one `write!` per term gave (the reference below), for any duration.
    #[test]
    fn display_matches_the_term_by_term_reference() {
        fn reference(millis: u64) -> String {
            use std::fmt::Write;
            let mut ms = millis;
            if ms == 0 {
                return "0s".into();
            }
            let mut out = String::new();
            for (unit, mult, exact) in TERMS {
                if exact && !ms.is_multiple_of(mult) {
                    continue;
                }
                let v = ms / mult;
                if v > 0 {
                    write!(out, "{v}{unit}").unwrap();
                    ms -= v * mult;
                }
            }
            out
        }
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut cases: Vec<u64> = vec![0, 1, 999, 1000, 60_000, YEAR, WEEK, u64::MAX, u64::MAX - 1];
        for _ in 0..50_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let scale = [MS, SEC, MIN, HOUR, DAY, WEEK, YEAR][(seed % 7) as usize];
            cases.push(seed >> (seed % 64));
            cases.push((seed % 1000).saturating_mul(scale));
        }
        for ms in cases {
            let d = PromDuration { millis: ms };
            assert_eq!(d.to_string(), reference(ms), "{ms}");
        }
    }

    #[test]
    fn formats_like_prometheus() {
        assert_eq!(p("7d").to_string(), "1w");
        assert_eq!(p("28d").to_string(), "4w");
        assert_eq!(p("30d").to_string(), "30d");
        assert_eq!(p("14d").to_string(), "2w");
        assert_eq!(p("90d").to_string(), "90d");
        assert_eq!(p("365d").to_string(), "1y");
        assert_eq!(p("1d").to_string(), "1d");
        assert_eq!(p("3d").to_string(), "3d");
        assert_eq!(p("90m").to_string(), "1h30m");
        assert_eq!(p("1500ms").to_string(), "1s500ms");
        assert_eq!(p("0s").to_string(), "0s");
    }

    #[test]
    fn parses_compound_terms() {
        assert_eq!(p("1d12h"), PromDuration::from_hours(36));
        assert_eq!(p("1w"), PromDuration::from_days(7));
        assert_eq!(p("5m"), PromDuration::from_secs(300));
        assert_eq!(p("250ms").as_millis(), 250);
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            "",
            "5",
            "m",
            "5x",
            "1h1d",
            "1h1h",
            "-5m",
            "1.5h",
            " 5m",
            "99999999999999999999y",
        ] {
            assert!(
                bad.parse::<PromDuration>().is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn days_as_float() {
        assert_eq!(p("30d").as_days_f64(), 30.0);
        assert_eq!(p("12h").as_days_f64(), 0.5);
    }
}
