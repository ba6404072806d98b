//! What the demo shows as it runs: one line per event, stamped with the simulated time
//! since the start, progress bars for the rollout's weight and the error budget, and colour
//! when the output is a terminal (and `NO_COLOR` is unset).
//!
//! Lines are written as they happen (no cursor movement), so the same output reads well in
//! a terminal, a CI log or a pipe.

use std::io::Write;

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Plain,
    Good,
    Warn,
    Bad,
    Dim,
    Bold,
}

pub struct View {
    out: Box<dyn Write + Send>,
    color: bool,
    start: DateTime<Utc>,
}

impl View {
    pub fn new(out: Box<dyn Write + Send>, color: bool, start: DateTime<Utc>) -> Self {
        View { out, color, start }
    }

    pub fn paint(&self, tone: Tone, s: &str) -> String {
        if !self.color {
            return s.to_string();
        }
        let code = match tone {
            Tone::Plain => return s.to_string(),
            Tone::Good => "32",
            Tone::Warn => "33",
            Tone::Bad => "31",
            Tone::Dim => "2",
            Tone::Bold => "1",
        };
        format!("\x1b[{code}m{s}\x1b[0m")
    }

    /// Simulated time since the start, `+hh:mm:ss`.
    pub fn stamp(&self, now: DateTime<Utc>) -> String {
        let s = (now - self.start).num_seconds().max(0);
        format!("+{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    }

    /// A line; write errors (a closed pipe) are ignored: the demo's outcome does not depend
    /// on being watched.
    pub fn line(&mut self, text: &str) {
        let _ = writeln!(self.out, "{text}");
        let _ = self.out.flush();
    }

    /// An event at a simulated time: `[+00:31:10] tag  text`.
    pub fn event(&mut self, now: DateTime<Utc>, tag: &str, tone: Tone, text: &str) {
        let stamp = self.paint(Tone::Dim, &format!("[{}]", self.stamp(now)));
        let tag = self.paint(tone, &format!("{tag:<8}"));
        self.line(&format!("{stamp} {tag} {text}"));
    }

    pub fn heading(&mut self, text: &str) {
        let t = self.paint(Tone::Bold, text);
        self.line("");
        self.line(&t);
    }
}

/// A bar of `width` cells filled to `frac` (clamped to 0..1).
pub fn bar(frac: f64, width: usize) -> String {
    let frac = if frac.is_finite() {
        frac.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let full = (frac * width as f64).round() as usize;
    format!("[{}{}]", "█".repeat(full), "░".repeat(width - full))
}

pub fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_clamped_and_sized() {
        assert_eq!(bar(0.5, 4), "[██░░]");
        assert_eq!(bar(2.0, 2), "[██]");
        assert_eq!(bar(f64::NAN, 2), "[░░]");
        assert_eq!(pct(0.9512), "95.1%");
    }
}
