//! The original's times, in every form it stored them (`original-schema.md` §2), as Nezuko's
//! milliseconds since the Unix epoch.
//!
//! SQLite holds text in three formats, all UTC: `YYYY-MM-DD HH:MM:SS.ffffff` (the ORM, no
//! offset), `YYYY-MM-DD HH:MM:SS` (the `CURRENT_TIMESTAMP` default) and ISO 8601 with `T` and
//! `+00:00` (the seed script). PostgreSQL's `timestamp` columns hold naive UTC wall-clock time and
//! its `timestamptz` columns print with an offset (`+00` in a UTC session). A time without an
//! offset is therefore UTC; one with an offset is converted.

use chrono::{NaiveDateTime, TimeDelta};

/// Milliseconds since the Unix epoch of `text`, or `None` when it is no time of the forms above.
pub fn parse_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    if text.len() < 19 || !text.is_char_boundary(19) {
        return None;
    }
    let (stamp, offset) = split_offset(text)?;
    let stamp = stamp.replacen('T', " ", 1);
    let naive = NaiveDateTime::parse_from_str(&stamp, "%Y-%m-%d %H:%M:%S%.f").ok()?;
    let utc = naive.checked_sub_signed(TimeDelta::seconds(offset))?;
    Some(utc.and_utc().timestamp_millis())
}

/// The time and its offset east of UTC in seconds (0 when there is none).
fn split_offset(text: &str) -> Option<(&str, i64)> {
    if let Some(stamp) = text.strip_suffix('Z').or_else(|| text.strip_suffix(" UTC")) {
        return Some((stamp, 0));
    }
    // A sign after the seconds (position 19 on) starts the offset; the date's `-` come before it.
    let Some(at) = text[19..].find(['+', '-']).map(|i| i + 19) else {
        return Some((text, 0));
    };
    let (stamp, offset) = text.split_at(at);
    let sign = if offset.starts_with('-') { -1 } else { 1 };
    let digits: String = offset[1..].chars().filter(|c| *c != ':').collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (hours, minutes) = match digits.len() {
        2 => (digits.parse::<i64>().ok()?, 0),
        4 => (
            digits[..2].parse::<i64>().ok()?,
            digits[2..].parse::<i64>().ok()?,
        ),
        _ => return None,
    };
    Some((stamp, sign * (hours * 3600 + minutes * 60)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-02-04 10:00:00 UTC.
    const AT: i64 = 1_770_199_200_000;

    #[test]
    fn the_three_sqlite_formats_and_postgres_text_are_read_as_utc() {
        assert_eq!(parse_ms("2026-02-04 10:00:00"), Some(AT));
        assert_eq!(parse_ms("2026-02-04 10:00:00.250000"), Some(AT + 250));
        assert_eq!(parse_ms("2026-02-04T10:00:00.250000+00:00"), Some(AT + 250));
        assert_eq!(parse_ms("2026-02-04 10:00:00.25+00"), Some(AT + 250));
        assert_eq!(parse_ms("2026-02-04T10:00:00Z"), Some(AT));
    }

    #[test]
    fn an_offset_is_converted() {
        assert_eq!(parse_ms("2026-02-04T15:30:00+05:30"), Some(AT));
        assert_eq!(parse_ms("2026-02-04 00:00:00-1000"), Some(AT));
    }

    #[test]
    fn what_is_no_time_is_none() {
        for text in [
            "",
            "yesterday",
            "2026-02-04",
            "2026-02-04 10:00:00+x",
            "2026-02-30 10:00:00",
        ] {
            assert_eq!(parse_ms(text), None, "{text}");
        }
    }
}
