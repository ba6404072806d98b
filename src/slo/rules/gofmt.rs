//! Go's float formatting, as Sloth's templates print numbers.
//!
//! Sloth renders floats in two ways:
//! - `%g` / `%v` (text/template, `fmt.Sprintf("%g")`): the shortest representation that
//!   round-trips, in `%e` form when the decimal exponent is below -4 or at least 6
//!   (`strconv.FormatFloat(v, 'g', -1, 64)`), e.g. `0.0009999999999999432`, `14.4`, `1e-05`,
//!   `1.234567e+06`;
//! - `strconv.FormatFloat(v, 'f', -1, 64)` for the `sloth_objective` label: the shortest
//!   round-trip digits, never in exponent form, e.g. `99.9`, `95`.
//!
//! Rust's `{}` and `{:e}` formatting of `f64` produce the same shortest round-trip digits, so
//! only the layout has to be reproduced.

/// Go's `strconv.FormatFloat(v, 'g', -1, 64)` (what `%v`/`%g` print for a float64).
pub fn format_g(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // `{:e}` gives the shortest round-trip digits as `d.ddddde<exp>`.
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').expect("{:e} always has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    if (-4..6).contains(&exp) {
        // Fixed notation with the shortest digits: Rust's Display does exactly this.
        format!("{v}")
    } else {
        // Go's %e layout: mantissa, 'e', sign, at least two exponent digits.
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    }
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`: shortest round-trip digits, no exponent.
pub fn format_f(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    format!("{v}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g_matches_go() {
        // Values checked against Go's strconv.FormatFloat(v, 'g', -1, 64).
        let cases: [(f64, &str); 14] = [
            ((100.0 - 99.9) / 100.0, "0.0009999999999999432"),
            (99.9 / 100.0, "0.9990000000000001"),
            (0.95, "0.95"),
            ((100.0 - 95.0) / 100.0, "0.05"),
            (14.4, "14.4"),
            (6.0, "6"),
            (1.0, "1"),
            (30.0, "30"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            ((100.0 - 99.999) / 100.0, "1.0000000000047748e-05"),
            (999999.0, "999999"),
            (1234567.0, "1.234567e+06"),
            (1e21, "1e+21"),
        ];
        for (v, want) in cases {
            assert_eq!(format_g(v), want, "{v:?}");
        }
        assert_eq!(format_g(-2.5), "-2.5");
        assert_eq!(format_g(0.0), "0");
    }

    #[test]
    fn f_matches_go() {
        assert_eq!(format_f(99.9), "99.9");
        assert_eq!(format_f(95.0), "95");
        assert_eq!(format_f(99.99), "99.99");
        assert_eq!(format_f(99.95), "99.95");
        assert_eq!(format_f(1e-7), "0.0000001");
    }
}
