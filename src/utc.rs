//! Unix seconds written as UTC calendar time: the report's "Started (UTC)" row and
//! the default session-log file name. The calendar arithmetic is the `time` crate's.

use time::OffsetDateTime;

/// The UTC date and time `unix_s` seconds after 1970-01-01 (fractions dropped), or
/// `None` outside the years −9999…9999.
fn at(unix_s: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(unix_s).ok()
}

/// Year, month, day, hour, minute, second of `t`.
fn fields(t: OffsetDateTime) -> (i32, u8, u8, u8, u8, u8) {
    (
        t.year(),
        t.month().into(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
    )
}

/// `YYYY-MM-DD HH:MM:SS`; a time outside the calendar range is written as seconds.
pub fn utc_string(unix_s: f64) -> String {
    match at(unix_s.floor() as i64).map(fields) {
        Some((y, mo, d, h, mi, s)) => format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}"),
        None => format!("{unix_s} s after 1970 (out of calendar range)"),
    }
}

/// `YYYYMMDD-HHMMSSZ`, for file names that sort by time; the epoch if `unix_s` is
/// outside the calendar range.
pub fn file_stamp(unix_s: i64) -> String {
    let (y, mo, d, h, mi, s) = fields(at(unix_s).unwrap_or(OffsetDateTime::UNIX_EPOCH));
    format!("{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}Z")
}

/// `YYYY-MM-DDTHH:MM:SSZ` (ISO 8601), e.g. for stamps that record when something was
/// made; the epoch if `unix_s` is outside the calendar range.
pub fn iso8601(unix_s: i64) -> String {
    let (y, mo, d, h, mi, s) = fields(at(unix_s).unwrap_or(OffsetDateTime::UNIX_EPOCH));
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_dates_and_times() {
        assert_eq!(utc_string(0.0), "1970-01-01 00:00:00");
        assert_eq!(utc_string(951_782_400.0), "2000-02-29 00:00:00");
        assert_eq!(utc_string(1_795_442_400.9), "2026-11-23 14:00:00");
        assert_eq!(utc_string(-1.0), "1969-12-31 23:59:59");
        assert_eq!(file_stamp(1_795_452_300), "20261123-164500Z");
        assert_eq!(iso8601(1_795_452_300), "2026-11-23T16:45:00Z");
    }

    #[test]
    fn out_of_range_times_do_not_panic() {
        assert!(utc_string(1e18).contains("out of calendar range"));
        assert_eq!(file_stamp(i64::MAX), "19700101-000000Z");
    }
}
