//! Session time as people read it, the same on the dashboard and in the report.

/// Formats seconds as `mm:ss` (or `h:mm:ss` past an hour); negative times read `00:00`.
pub fn clock(seconds: f64) -> String {
    let s = seconds.max(0.0).floor() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
    } else {
        format!("{:02}:{:02}", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::clock;

    #[test]
    fn minutes_seconds_then_hours() {
        assert_eq!(clock(0.0), "00:00");
        assert_eq!(clock(-3.0), "00:00");
        assert_eq!(clock(125.9), "02:05");
        assert_eq!(clock(3725.0), "1:02:05");
    }
}
