//! The maintenance window (R3): when a singleton's automatic failback, a
//! planned move with a gap, may go on without an operator's confirmation.
//! Written as days and a UTC time range, `Sun 02:00-04:00 UTC`,
//! `Sat,Sun 22:00-02:00 UTC` (a range past midnight belongs to the day it
//! starts on) or `daily 01:00-01:30 UTC`. UTC only, so a window never moves
//! with a daylight-saving change.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveTime, Timelike, Utc, Weekday};

/// A weekly window of UTC time.
/// `Copy` (the days are a bit set), so the failover reconciler's settings stay `Copy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaintenanceWindow {
    /// The days a window starts on: bit `n` is `n` days from Monday.
    days: u8,
    /// Start, inclusive.
    start: NaiveTime,
    /// End, exclusive; before `start`, the window ends the next day.
    end: NaiveTime,
}

impl fmt::Display for MaintenanceWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days: Vec<String> = (0..7u8)
            .filter(|n| self.days & (1 << n) != 0)
            .filter_map(|n| Weekday::try_from(n).ok())
            .map(|d| d.to_string())
            .collect();
        write!(
            f,
            "{} {}-{} UTC",
            days.join(","),
            self.start.format("%H:%M"),
            self.end.format("%H:%M")
        )
    }
}

fn bit(day: Weekday) -> u8 {
    1 << day.num_days_from_monday()
}

const EXPECTED: &str =
    "days and a UTC time range, like \"Sun 02:00-04:00 UTC\", \"Sat,Sun 22:00-02:00 UTC\" or \"daily 01:00-01:30 UTC\"";

impl MaintenanceWindow {
    /// Reads `Sun 02:00-04:00 UTC`.
    ///
    /// # Errors
    /// What a window looks like, when `text` is not one.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        let [days, range, "UTC"] = parts.as_slice() else {
            return Err(EXPECTED.into());
        };
        let days = if days.eq_ignore_ascii_case("daily") {
            0b111_1111
        } else {
            days.split(',').try_fold(0u8, |set, d| {
                d.parse::<Weekday>()
                    .map(|d| set | bit(d))
                    .map_err(|_| format!("{d:?} is not a day; {EXPECTED}"))
            })?
        };
        let (start, end) = range.split_once('-').ok_or_else(|| EXPECTED.to_string())?;
        let time = |t: &str| {
            NaiveTime::parse_from_str(t, "%H:%M").map_err(|_| format!("{t:?} is not a time (HH:MM); {EXPECTED}"))
        };
        let (start, end) = (time(start)?, time(end)?);
        if start == end {
            return Err(format!("{range} is empty; {EXPECTED}"));
        }
        Ok(Self { days, start, end })
    }

    /// Whether `at` is inside the window.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        let time = NaiveTime::from_hms_opt(at.hour(), at.minute(), at.second()).unwrap_or_default();
        let on = |day: Weekday| self.days & bit(day) != 0;
        let today = at.weekday();
        if self.start < self.end {
            return on(today) && self.start <= time && time < self.end;
        }
        // Past midnight: the evening part of a window day, or the morning after one.
        (on(today) && time >= self.start) || (on(today.pred()) && time < self.end)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(day: u32, h: u32, m: u32) -> DateTime<Utc> {
        // 2026-12-06 is a Sunday.
        Utc.with_ymd_and_hms(2026, 12, day, h, m, 0).unwrap()
    }

    #[test]
    fn a_window_holds_its_days_and_hours_only() {
        let w = MaintenanceWindow::parse("Sun 02:00-04:00 UTC").unwrap();
        assert!(w.contains(at(6, 2, 0)));
        assert!(w.contains(at(6, 3, 59)));
        assert!(!w.contains(at(6, 4, 0)));
        assert!(!w.contains(at(6, 1, 59)));
        assert!(!w.contains(at(7, 3, 0)), "Monday is outside");
        let night = MaintenanceWindow::parse("Sat,Sun 22:00-02:00 UTC").unwrap();
        assert!(night.contains(at(5, 23, 0)), "Saturday evening");
        assert!(night.contains(at(7, 1, 0)), "the morning after Sunday");
        assert!(!night.contains(at(5, 1, 0)), "the morning after Friday");
        assert_eq!(night.to_string(), "Sat,Sun 22:00-02:00 UTC");
        assert!(
            MaintenanceWindow::parse("daily 00:00-23:59 UTC")
                .unwrap()
                .contains(at(9, 12, 0))
        );
        for bad in [
            "Sun 02:00-04:00",
            "Sunday-ish 02:00-04:00 UTC",
            "Sun 2-4 UTC",
            "Sun 02:00-02:00 UTC",
            "",
        ] {
            assert!(MaintenanceWindow::parse(bad).is_err(), "{bad}");
        }
    }
}
