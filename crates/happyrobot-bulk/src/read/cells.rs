//! A workbook cell as the text the workbook shows: a date as `2024-03-14`, a date and time as
//! `2024-03-14 08:30`, a time as `08:30`, a duration as `36:30`, a number as Excel's General
//! format shows it (`12`, not `12.0`; `0.3`, not `0.30000000000000004`), a boolean as `TRUE` or
//! `FALSE`. An error cell (`#NAME?`, `#DIV/0!`...) is refused where a field is read from it,
//! saying what it means.

use calamine::{CellErrorType, Data, ExcelDateTime};

use super::{parse_flag, shorten};

/// A cell as the text the workbook shows.
pub(crate) fn text_of(cell: &Data) -> String {
    match cell {
        Data::Empty => String::new(),
        Data::String(text) => text.clone(),
        Data::Float(f) => number(*f),
        Data::Int(i) => i.to_string(),
        Data::Bool(true) => "TRUE".to_string(),
        Data::Bool(false) => "FALSE".to_string(),
        Data::DateTime(moment) => date_time(moment),
        Data::DateTimeIso(text) => iso_date_time(text),
        Data::DurationIso(text) => iso_duration(text).unwrap_or_else(|| text.clone()),
        Data::Error(error) => error.to_string(),
    }
}

/// The call ID's text, the note's text and the flag of a row's three cells, or everything wrong
/// with them.
pub(crate) type RowFields = (String, String, Result<Option<bool>, String>);

/// Reads the cells of the call ID, the text and the flag.
pub(crate) fn fields(call_id: &Data, content: &Data, flagged: &Data) -> Result<RowFields, String> {
    let mut problems = Vec::new();
    for (what, cell) in [("call ID", call_id), ("text", content), ("flag", flagged)] {
        if let Data::Error(error) = cell {
            problems.push(error_cell(what, error));
        }
    }
    if matches!(call_id, Data::Int(_) | Data::Float(_)) {
        problems.push(format!(
            "the call ID is a number in the workbook ({}), which loses digits and leading zeros: \
             format the call_id column as Text and type the IDs again (24 characters)",
            shorten(&text_of(call_id))
        ));
    }
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    let flag = match flagged {
        Data::Bool(flag) => Ok(Some(*flag)),
        Data::Empty => Ok(None),
        other => parse_flag(&text_of(other)),
    };
    Ok((text_of(call_id), text_of(content), flag))
}

/// What an error cell in the `what` column means, and what to do.
fn error_cell(what: &str, error: &CellErrorType) -> String {
    match error {
        CellErrorType::Name => format!(
            "the {what} cell shows the error #NAME?, which Excel shows for text typed with a \
             leading -, + or = (as in - driver late), taken for a formula: type it with an \
             apostrophe first ('- driver late)"
        ),
        other => format!(
            "the {what} cell shows the error {other}, from a formula that failed: put the value \
             itself in the cell"
        ),
    }
}

/// A number as Excel's General format shows it: integers without a decimal point, others to the
/// 15 significant digits Excel keeps.
fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        return format!("{}", value as i64);
    }
    let rounded: f64 = format!("{value:.14e}").parse().unwrap_or(value);
    format!("{rounded}")
}

/// A date, a date and time, a time or a duration cell, in an unambiguous ISO form.
fn date_time(moment: &ExcelDateTime) -> String {
    let value = moment.as_f64();
    if moment.is_duration() {
        return clock((value * 86_400.0).round() as i64);
    }
    let (year, month, day, hour, minute, second, _) = moment.to_ymd_hms_milli();
    let time = if second == 0 {
        format!("{hour:02}:{minute:02}")
    } else {
        format!("{hour:02}:{minute:02}:{second:02}")
    };
    if value.abs() < 1.0 {
        // A time of day alone: its date part is Excel's day zero.
        time
    } else if (hour, minute, second) == (0, 0, 0) {
        format!("{year:04}-{month:02}-{day:02}")
    } else {
        format!("{year:04}-{month:02}-{day:02} {time}")
    }
}

/// Seconds as hours (any number of them), minutes and, when there are any, seconds.
fn clock(seconds: i64) -> String {
    let sign = if seconds < 0 { "-" } else { "" };
    let seconds = seconds.unsigned_abs();
    let (hours, minutes, rest) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if rest == 0 {
        format!("{sign}{hours}:{minutes:02}")
    } else {
        format!("{sign}{hours}:{minutes:02}:{rest:02}")
    }
}

/// An OpenDocument date or date-time (`2024-03-14T08:30:00`) in the same form as an Excel one.
fn iso_date_time(text: &str) -> String {
    let Some((date, time)) = text.split_once('T') else {
        return text.to_string();
    };
    let time = time.split('.').next().unwrap_or(time);
    let time = time.strip_suffix(":00").unwrap_or(time);
    match (date, time) {
        ("1899-12-30", time) => time.to_string(),
        (date, "00:00") => date.to_string(),
        (date, time) => format!("{date} {time}"),
    }
}

/// An OpenDocument duration (`PT36H30M00S`) as `36:30`.
fn iso_duration(text: &str) -> Option<String> {
    let rest = text.strip_prefix("PT")?;
    let (hours, rest) = rest.split_once('H')?;
    let (minutes, rest) = rest.split_once('M')?;
    let seconds = rest.strip_suffix('S').unwrap_or("0");
    let seconds: f64 = seconds.parse().ok()?;
    let total = hours.parse::<i64>().ok()? * 3600 + minutes.parse::<i64>().ok()? * 60;
    Some(clock(total + seconds.round() as i64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use calamine::ExcelDateTimeType;

    fn moment(value: f64) -> Data {
        Data::DateTime(ExcelDateTime::new(
            value,
            ExcelDateTimeType::DateTime,
            false,
        ))
    }

    #[test]
    fn cells_read_as_the_workbook_shows_them() {
        assert_eq!(text_of(&moment(45365.35416666666)), "2024-03-14 08:30");
        assert_eq!(text_of(&moment(45365.0)), "2024-03-14");
        assert_eq!(
            text_of(&moment(45365.5 + 15.0 / 86400.0)),
            "2024-03-14 12:00:15"
        );
        assert_eq!(text_of(&moment(0.35416666666)), "08:30");
        let duration = ExcelDateTime::new(1.5208333333, ExcelDateTimeType::TimeDelta, false);
        assert_eq!(text_of(&Data::DateTime(duration)), "36:30");
        assert_eq!(
            text_of(&Data::DateTimeIso("2024-03-14T08:30:00".into())),
            "2024-03-14 08:30"
        );
        assert_eq!(
            text_of(&Data::DateTimeIso("2024-03-14T00:00:00".into())),
            "2024-03-14"
        );
        assert_eq!(
            text_of(&Data::DateTimeIso("2024-03-14".into())),
            "2024-03-14"
        );
        assert_eq!(text_of(&Data::DurationIso("PT36H30M00S".into())), "36:30");
        assert_eq!(text_of(&Data::Float(12.0)), "12");
        assert_eq!(text_of(&Data::Float(0.1 + 0.2)), "0.3");
        assert_eq!(text_of(&Data::Float(-12.5)), "-12.5");
        assert_eq!(text_of(&Data::Float(1e20)), "100000000000000000000");
        assert_eq!(text_of(&Data::Int(7)), "7");
        assert_eq!(text_of(&Data::Bool(true)), "TRUE");
        assert_eq!(text_of(&Data::Error(CellErrorType::Div0)), "#DIV/0!");
    }

    #[test]
    fn error_cells_are_refused_with_what_they_mean() {
        let id = Data::String("65f1c0ffee0123456789abcd".into());
        let error = fields(&id, &Data::Error(CellErrorType::Name), &Data::Empty).unwrap_err();
        assert!(
            error.starts_with("the text cell shows the error #NAME?")
                && error.contains("'- driver late"),
            "{error}"
        );
        let error = fields(
            &id,
            &Data::String("ok".into()),
            &Data::Error(CellErrorType::NA),
        )
        .unwrap_err();
        assert!(
            error.starts_with("the flag cell shows the error #N/A"),
            "{error}"
        );
        let (call, content, flag) =
            fields(&id, &moment(45365.0), &Data::String("X".into())).unwrap();
        assert_eq!(
            (call.len(), content.as_str(), flag),
            (24, "2024-03-14", Ok(Some(true)))
        );
    }
}
