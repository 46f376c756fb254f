//! Cron schedules as CronJobs read them: the one parser the API server's validation and the
//! CronJob controller share.
//!
//! Kubernetes parses `spec.schedule` with robfig/cron v3's `ParseStandard` (upstream
//! `pkg/apis/batch/validation/validation.go` `validateScheduleFormat`,
//! `pkg/controller/cronjob/cronjob_controllerv2.go` `syncCronJob`). Its grammar:
//!
//! - an optional `TZ=<zone> ` or `CRON_TZ=<zone> ` prefix;
//! - a descriptor `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily` (`@midnight`),
//!   `@hourly` or `@every <Go duration>` (case-sensitive);
//! - or exactly five whitespace-separated fields, minute (0-59), hour (0-23), day of month
//!   (1-31), month (1-12 or `JAN`-`DEC`) and day of week (0-6 or `SUN`-`SAT`), names in any
//!   case. A field is a comma-separated list of `*`, `?`, `N` or `N-M`, each optionally with
//!   `/step`; `N/step` means `N-max/step`.
//! - Day of month and day of week are ORed when both are restricted, and ANDed when either is
//!   `*` or `?` (a `*` or `?` anywhere in the field's list, without a step above 1, counts).
//!
//! Finding the next activation — calendar arithmetic in a time zone, across daylight saving
//! changes — is done by the `croner` crate (jiff backend). croner alone does not fit the
//! grammar exactly: it accepts more (`L`, `W`, `#`, `+`, seconds and year fields, day of week
//! 7), lacks `@midnight` and `@every`, rejects `N/step` unless lenient, and treats only a
//! bare `*` as the unrestricted day field. So this module parses robfig's grammar itself
//! (with robfig's error messages, which reach users in 422 responses), and hands croner a
//! canonical pattern of plain numbers.
//!
//! Differences from robfig that remain: around daylight saving changes croner runs a time
//! that falls in a gap at the first instant after it (robfig skips it) and a time in a
//! repeated hour once (robfig may run it twice); a schedule that never fires gives `None`
//! once croner's search limit is reached (robfig searches five years).
//!
//! ```
//! use orch_types::cron::Schedule;
//! use jiff::{tz::TimeZone, Timestamp};
//! let s = Schedule::parse("*/15 9-17 * * MON-FRI").unwrap();
//! let t: Timestamp = "2024-06-07T16:50:00Z".parse().unwrap(); // a Friday
//! let next = s.next_after(t, &TimeZone::UTC).unwrap();
//! assert_eq!(next.to_string(), "2024-06-07T17:00:00Z");
//! let t: Timestamp = "2024-06-07T17:45:00Z".parse().unwrap();
//! let after = s.next_after(t, &TimeZone::UTC).unwrap();
//! assert_eq!(after.to_string(), "2024-06-10T09:00:00Z"); // Monday
//! assert_eq!(
//!     Schedule::parse("not a cron").unwrap_err().to_string(),
//!     "expected exactly 5 fields, found 3: [not a cron]"
//! );
//! ```

use croner::parser::{CronParser, Seconds, Year};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// Why a schedule does not parse; the message is robfig/cron's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScheduleError(String);

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Zone from a `TZ=` / `CRON_TZ=` prefix; it wins over the zone passed to
    /// [`Schedule::next_after`].
    zone: Option<TimeZone>,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// Five fields, evaluated by croner.
    Spec(Box<croner::Cron>),
    /// `@every`: a fixed delay of whole seconds (robfig `ConstantDelaySchedule`).
    Every(SignedDuration),
}

/// Bounds and names of one field (robfig `bounds`).
struct Field {
    min: u64,
    max: u64,
    names: &'static [&'static str],
}

const MINUTE: Field = Field {
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: Field = Field {
    min: 0,
    max: 23,
    names: &[],
};
const DOM: Field = Field {
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: Field = Field {
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
const DOW: Field = Field {
    min: 0,
    max: 6,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

/// The values one field selects, and whether it counts as unrestricted (robfig `starBit`).
struct Parsed {
    values: Vec<bool>,
    star: bool,
}

fn err(msg: impl Into<String>) -> ScheduleError {
    ScheduleError(msg.into())
}

/// robfig `mustParseInt`: a non-negative decimal (Go `strconv.Atoi` syntax).
fn parse_int(expr: &str) -> Result<u64, ScheduleError> {
    let digits = expr.strip_prefix('+').unwrap_or(expr);
    let n: i64 = if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().map_err(|_| {
            err(format!(
                "failed to parse int from {expr}: strconv.Atoi: parsing \"{expr}\": value out of range"
            ))
        })?
    } else if let Some(d) = expr
        .strip_prefix('-')
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
    {
        -d.parse::<i64>().unwrap_or(i64::MAX)
    } else {
        return Err(err(format!(
            "failed to parse int from {expr}: strconv.Atoi: parsing \"{expr}\": invalid syntax"
        )));
    };
    u64::try_from(n).map_err(|_| err(format!("negative number ({n}) not allowed: {expr}")))
}

/// robfig `parseIntOrName`.
fn int_or_name(expr: &str, f: &Field) -> Result<u64, ScheduleError> {
    let lower = expr.to_ascii_lowercase();
    if let Some(i) = f.names.iter().position(|n| *n == lower) {
        return Ok(f.min + i as u64);
    }
    parse_int(expr)
}

/// robfig `getRange`: one element of a field's comma list.
fn range(expr: &str, f: &Field, out: &mut Parsed) -> Result<(), ScheduleError> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_and_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single = low_and_high.len() == 1;
    let (start, mut end, mut star) = if low_and_high[0] == "*" || low_and_high[0] == "?" {
        (f.min, f.max, true)
    } else {
        let start = int_or_name(low_and_high[0], f)?;
        let end = match low_and_high.len() {
            1 => start,
            2 => int_or_name(low_and_high[1], f)?,
            _ => return Err(err(format!("too many hyphens: {expr}"))),
        };
        (start, end, false)
    };
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = parse_int(range_and_step[1])?;
            if single {
                end = f.max;
            }
            if step > 1 {
                star = false;
            }
            step
        }
        _ => return Err(err(format!("too many slashes: {expr}"))),
    };
    if start < f.min {
        return Err(err(format!(
            "beginning of range ({start}) below minimum ({}): {expr}",
            f.min
        )));
    }
    if end > f.max {
        return Err(err(format!(
            "end of range ({end}) above maximum ({}): {expr}",
            f.max
        )));
    }
    if start > end {
        return Err(err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        )));
    }
    if step == 0 {
        return Err(err(format!(
            "step of range should be a positive number: {expr}"
        )));
    }
    for v in (start..=end).step_by(step as usize) {
        out.values[v as usize] = true;
    }
    out.star |= star;
    Ok(())
}

/// robfig `getField`: empty list elements are skipped, as `strings.FieldsFunc` does.
fn field(text: &str, f: &Field) -> Result<Parsed, ScheduleError> {
    let mut out = Parsed {
        values: vec![false; f.max as usize + 1],
        star: false,
    };
    for part in text.split(',').filter(|p| !p.is_empty()) {
        range(part, f, &mut out)?;
    }
    Ok(out)
}

/// The field as croner reads it: `*` when unrestricted, else the plain list of values.
fn canonical(p: &Parsed, f: &Field) -> Option<String> {
    if p.star {
        return Some("*".into());
    }
    let list: Vec<String> = (f.min..=f.max)
        .filter(|v| p.values[*v as usize])
        .map(|v| v.to_string())
        .collect();
    // A list of only commas selects nothing: such a schedule never fires.
    (!list.is_empty()).then(|| list.join(","))
}

/// Go `time.ParseDuration`, as robfig's `@every` reads its argument.
fn go_duration(s: &str) -> Option<SignedDuration> {
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(SignedDuration::ZERO);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_len];
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
            return None;
        }
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos: i128 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        rest = &rest[unit_len..];
        let whole: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
        let mut part = whole.checked_mul(nanos)?;
        let mut scale = nanos;
        for d in frac.bytes() {
            scale /= 10;
            part += i128::from(d - b'0') * scale;
        }
        total = total.checked_add(part)?;
    }
    let total = if neg { -total } else { total };
    let total = i64::try_from(total).ok()?;
    Some(SignedDuration::from_nanos(total))
}

/// Loads a time zone by IANA name as Go's `time.LoadLocation` does: `""` and `"UTC"` are UTC;
/// `"Local"` is the controller's local zone, which orch takes to be UTC (so a CronJob without
/// `timeZone` runs in UTC); names are case-sensitive. The database is the system's, else the
/// copy built into the binary (as a Go binary importing `time/tzdata`).
pub fn load_time_zone(name: &str) -> Result<TimeZone, ScheduleError> {
    if name.is_empty() || name == "UTC" || name == "Local" {
        return Ok(TimeZone::UTC);
    }
    let unknown = || err(format!("unknown time zone {name}"));
    if name.starts_with('/') || name.contains("..") || name.contains('\\') {
        return Err(unknown());
    }
    let tz = TimeZone::get(name).map_err(|_| unknown())?;
    if tz.iana_name() != Some(name) {
        return Err(unknown());
    }
    Ok(tz)
}

impl Schedule {
    /// Parses a schedule as robfig/cron v3 `ParseStandard` does.
    pub fn parse(spec: &str) -> Result<Self, ScheduleError> {
        if spec.is_empty() {
            return Err(err("empty spec string"));
        }
        let mut spec = spec;
        let mut zone = None;
        if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
            let eq = spec.find('=').unwrap_or(0);
            let Some(space) = spec.find(' ') else {
                return Err(err(format!(
                    "provided bad location {}: missing schedule after it",
                    &spec[eq + 1..]
                )));
            };
            let name = &spec[eq + 1..space];
            zone = Some(
                load_time_zone(name)
                    .map_err(|e| err(format!("provided bad location {name}: {e}")))?,
            );
            spec = spec[space..].trim();
        }
        if spec.starts_with('@') {
            return Self::descriptor(spec).map(|kind| Schedule { zone, kind });
        }
        let fields: Vec<&str> = spec.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(err(format!(
                "expected exactly 5 fields, found {}: [{}]",
                fields.len(),
                fields.join(" ")
            )));
        }
        let bounds = [&MINUTE, &HOUR, &DOM, &MONTH, &DOW];
        let mut parts = Vec::with_capacity(5);
        for (text, f) in fields.iter().zip(bounds) {
            parts.push((field(text, f)?, f));
        }
        Ok(Schedule {
            zone,
            kind: Self::spec(&parts)?,
        })
    }

    /// robfig `parseDescriptor`.
    fn descriptor(d: &str) -> Result<Kind, ScheduleError> {
        let pattern = match d {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            _ => {
                let Some(arg) = d.strip_prefix("@every ") else {
                    return Err(err(format!("unrecognized descriptor: {d}")));
                };
                let dur = go_duration(arg).ok_or_else(|| {
                    err(format!(
                        "failed to parse duration {d}: time: invalid duration \"{arg}\""
                    ))
                })?;
                // robfig `Every`: at least a second, whole seconds.
                let secs = dur.as_secs().max(1);
                return Ok(Kind::Every(SignedDuration::from_secs(secs)));
            }
        };
        Self::croner(pattern)
    }

    fn spec(parts: &[(Parsed, &Field)]) -> Result<Kind, ScheduleError> {
        let mut out = Vec::with_capacity(5);
        for (p, f) in parts {
            match canonical(p, f) {
                Some(s) => out.push(s),
                // Nothing selected in a field: the schedule never fires; an impossible date
                // says the same to croner.
                None => return Self::croner("0 0 31 2 *"),
            }
        }
        Self::croner(&out.join(" "))
    }

    fn croner(pattern: &str) -> Result<Kind, ScheduleError> {
        CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(pattern)
            .map(|c| Kind::Spec(Box::new(c)))
            .map_err(|e| err(format!("{pattern}: {e}")))
    }

    /// Whether the schedule carries its own `TZ=` / `CRON_TZ=` zone.
    pub fn has_zone(&self) -> bool {
        self.zone.is_some()
    }

    /// The first activation strictly after `t`, reading the schedule in its own `TZ=` zone or
    /// else in `zone`; `None` when it never fires again.
    pub fn next_after(&self, t: Timestamp, zone: &TimeZone) -> Option<Timestamp> {
        match &self.kind {
            Kind::Every(d) => {
                // robfig `ConstantDelaySchedule.Next`: the delay from `t` rounded down to
                // its second.
                let whole = Timestamp::from_second(t.as_second()).ok()?;
                whole.checked_add(*d).ok()
            }
            Kind::Spec(c) => {
                let z = t.to_zoned(self.zone.clone().unwrap_or_else(|| zone.clone()));
                c.find_next_occurrence(&z, false)
                    .ok()
                    .map(|n| n.timestamp())
                    .filter(|n| *n > t)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn next(spec: &str, from: &str, zone: &str) -> String {
        let z = load_time_zone(zone).unwrap();
        Schedule::parse(spec)
            .unwrap()
            .next_after(ts(from), &z)
            .map(|t| t.to_string())
            .unwrap_or_default()
    }

    fn error(spec: &str) -> String {
        Schedule::parse(spec).unwrap_err().to_string()
    }

    #[test]
    fn five_fields_with_names_ranges_and_steps() {
        assert_eq!(
            next("*/5 * * * *", "2024-01-01T00:00:00Z", "UTC"),
            "2024-01-01T00:05:00Z"
        );
        // Strictly after, and from within a second.
        assert_eq!(
            next("*/5 * * * *", "2024-01-01T00:04:59.5Z", "UTC"),
            "2024-01-01T00:05:00Z"
        );
        assert_eq!(
            next("30 6-16/4 * * 1-5", "2024-01-01T07:00:00Z", "UTC"),
            "2024-01-01T10:30:00Z"
        );
        assert_eq!(
            next("0 0 1 jan,Jul *", "2024-02-01T00:00:00Z", "UTC"),
            "2024-07-01T00:00:00Z"
        );
        // `N/step` is `N-max/step`.
        assert_eq!(
            next("50/5 * * * *", "2024-01-01T00:56:00Z", "UTC"),
            "2024-01-01T01:50:00Z"
        );
        assert_eq!(
            next("0 12 ? * SUN", "2024-01-01T00:00:00Z", "UTC"),
            "2024-01-07T12:00:00Z"
        );
    }

    #[test]
    fn day_of_month_and_week_are_ored_when_both_are_restricted() {
        // 2024-01-01 is a Monday: the 13th or a Friday.
        assert_eq!(
            next("0 0 13 * FRI", "2024-01-01T00:00:00Z", "UTC"),
            "2024-01-05T00:00:00Z"
        );
        assert_eq!(
            next("0 0 13 * FRI", "2024-01-12T00:00:00Z", "UTC"),
            "2024-01-13T00:00:00Z"
        );
        // A `*` in the day-of-month list makes it unrestricted: AND, only Fridays.
        assert_eq!(
            next("0 0 *,13 * FRI", "2024-01-06T00:00:00Z", "UTC"),
            "2024-01-12T00:00:00Z"
        );
        // `*/2` is restricted (step above 1): OR.
        assert_eq!(
            next("0 0 */10 * FRI", "2024-01-06T00:00:00Z", "UTC"),
            "2024-01-11T00:00:00Z"
        );
    }

    #[test]
    fn descriptors() {
        let from = "2024-05-15T10:20:30Z";
        for (d, want) in [
            ("@yearly", "2025-01-01T00:00:00Z"),
            ("@annually", "2025-01-01T00:00:00Z"),
            ("@monthly", "2024-06-01T00:00:00Z"),
            ("@weekly", "2024-05-19T00:00:00Z"),
            ("@daily", "2024-05-16T00:00:00Z"),
            ("@midnight", "2024-05-16T00:00:00Z"),
            ("@hourly", "2024-05-15T11:00:00Z"),
            ("@every 1h30m", "2024-05-15T11:50:30Z"),
            ("@every 500ms", "2024-05-15T10:20:31Z"),
        ] {
            assert_eq!(next(d, from, "UTC"), want, "{d}");
        }
        assert_eq!(error("@Daily"), "unrecognized descriptor: @Daily");
        assert_eq!(
            error("@every 5x"),
            "failed to parse duration @every 5x: time: invalid duration \"5x\""
        );
    }

    #[test]
    fn time_zones() {
        // 09:00 in Paris is 08:00 UTC in winter, 07:00 in summer.
        assert_eq!(
            next("0 9 * * *", "2024-01-10T12:00:00Z", "Europe/Paris"),
            "2024-01-11T08:00:00Z"
        );
        assert_eq!(
            next("0 9 * * *", "2024-07-10T12:00:00Z", "Europe/Paris"),
            "2024-07-11T07:00:00Z"
        );
        assert_eq!(
            next("0 9 * * *", "2024-07-10T12:00:00Z", "UTC"),
            "2024-07-11T09:00:00Z"
        );
        // A prefix wins over the zone passed in.
        assert_eq!(
            next(
                "CRON_TZ=Asia/Tokyo 0 9 * * *",
                "2024-07-10T12:00:00Z",
                "UTC"
            ),
            "2024-07-11T00:00:00Z"
        );
        assert!(Schedule::parse("TZ=UTC * * * * *").unwrap().has_zone());
        assert_eq!(
            error("TZ=Mars/Base * * * * *"),
            "provided bad location Mars/Base: unknown time zone Mars/Base"
        );
        assert!(load_time_zone("europe/paris").is_err(), "case-sensitive");
        assert!(load_time_zone("America/New_York").is_ok());
    }

    #[test]
    fn errors_are_robfigs() {
        assert_eq!(error(""), "empty spec string");
        assert_eq!(
            error("* * * *"),
            "expected exactly 5 fields, found 4: [* * * *]"
        );
        assert_eq!(
            error("60 * * * *"),
            "end of range (60) above maximum (59): 60"
        );
        assert_eq!(
            error("* * 0 * *"),
            "beginning of range (0) below minimum (1): 0"
        );
        assert_eq!(
            error("5-3 * * * *"),
            "beginning of range (5) beyond end of range (3): 5-3"
        );
        assert_eq!(
            error("*/0 * * * *"),
            "step of range should be a positive number: */0"
        );
        assert_eq!(error("1-2-3 * * * *"), "too many hyphens: 1-2-3");
        assert_eq!(error("*/2/3 * * * *"), "too many slashes: */2/3");
        assert_eq!(error("* * * * 7"), "end of range (7) above maximum (6): 7");
        assert_eq!(
            error("0 0 L * *"),
            "failed to parse int from L: strconv.Atoi: parsing \"L\": invalid syntax"
        );
        assert_eq!(
            error("0 0 1 * MON#2"),
            "failed to parse int from MON#2: strconv.Atoi: parsing \"MON#2\": invalid syntax"
        );
        assert_eq!(
            error("/5 * * * *"),
            "failed to parse int from : strconv.Atoi: parsing \"\": invalid syntax"
        );
        assert_eq!(
            error("0 0 jan * *"),
            "failed to parse int from jan: strconv.Atoi: parsing \"jan\": invalid syntax",
            "month names only in the month field"
        );
    }

    #[test]
    fn a_schedule_that_never_fires_has_no_next_time() {
        let s = Schedule::parse("59 23 31 2 *").unwrap();
        assert_eq!(
            s.next_after(ts("2024-01-01T00:00:00Z"), &TimeZone::UTC),
            None
        );
        assert_eq!(
            Schedule::parse("0 0 , * *")
                .unwrap()
                .next_after(ts("2024-01-01T00:00:00Z"), &TimeZone::UTC),
            None
        );
    }
}
