//! Wall-clock times for state files and run ids, in UTC, without a date
//! library: RFC 3339 timestamps sort as text, and so do run ids.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `2026-11-25T16:13:42.123Z`.
pub fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let (date, (h, m, s)) = civil(since.as_secs());
    format!("{date}T{h:02}:{m:02}:{s:02}.{:03}Z", since.subsec_millis())
}

pub fn now() -> String {
    rfc3339(SystemTime::now())
}

/// A new run id: `20261125-161342-` and four random hex digits, so ids sort
/// by start time and two runs in the same second still differ.
pub fn new_run_id() -> String {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let (date, (h, m, s)) = civil(since.as_secs());
    let noise = (since.subsec_nanos() ^ std::process::id().rotate_left(16)) & 0xffff;
    format!("{}-{h:02}{m:02}{s:02}-{noise:04x}", date.replace('-', ""))
}

/// `YYYY-MM-DD` and (hour, minute, second) of a Unix time, by Howard
/// Hinnant's days-from-civil algorithm run backwards.
fn civil(secs: u64) -> (String, (u64, u64, u64)) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        format!("{year:04}-{month:02}-{day:02}"),
        (rem / 3600, rem % 3600 / 60, rem % 60),
    )
}

/// `3m12s`-style, for people.
pub fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0 => format!("{}ms", duration.as_millis()),
        1..=59 => format!("{:.1}s", duration.as_secs_f64()),
        60..=3599 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_622_022_123);
        assert_eq!(rfc3339(t), "2026-11-25T15:53:42.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn run_ids_are_safe_folder_names() {
        let id = new_run_id();
        assert_eq!(id.len(), "20261125-161342-abcd".len(), "{id}");
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_millis(250)), "250ms");
        assert_eq!(human(Duration::from_secs(192)), "3m12s");
        assert_eq!(human(Duration::from_secs(7500)), "2h05m");
    }
}
