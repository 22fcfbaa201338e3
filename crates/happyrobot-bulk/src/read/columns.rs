//! Which column (or JSON key) holds the call ID, the text and the flag: the header's names matched
//! without regard to case, surrounding spaces, or spaces, hyphens and underscores between words
//! (`Call ID` is `call_id`), or the names the caller mapped. Without a mapping, a column this
//! engine does not know is refused, so that a misspelt `flaged` is never silently ignored; the
//! columns of a list of calls ([`CALL_LIST_COLUMNS`]) are let through in a header that has them
//! all.

use crate::ReadOptions;
use crate::read::shorten;

/// Where the fields are among a line's cells.
#[derive(Debug, Clone)]
pub(crate) struct Columns {
    pub(crate) call_id: usize,
    pub(crate) content: Option<usize>,
    pub(crate) flagged: Option<usize>,
    /// How many cells the header has.
    pub(crate) count: usize,
}

/// A name as it is matched: no byte-order mark, trimmed, lower case, and any run of spaces,
/// hyphens, dots and underscores as one underscore.
pub(crate) fn normalize(name: &str) -> String {
    let mut out = String::new();
    let mut gap = false;
    for c in name.trim_start_matches('\u{feff}').trim().chars() {
        if matches!(c, ' ' | '-' | '_' | '.' | '\t') {
            gap = true;
        } else {
            if gap && !out.is_empty() {
                out.push('_');
            }
            gap = false;
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// The columns of a list of calls as `happyrobot calls list` writes it (CSV or workbook), in its
/// order. A header that has every one of them is that list's: they are let through without
/// [`ReadOptions::ignore_other_columns`](crate::ReadOptions::ignore_other_columns), so that the list,
/// once a `content` column is filled (or with
/// [`ReadOptions::default_content`](crate::ReadOptions::default_content)), imports as it is; any
/// other unknown column is still refused.
pub const CALL_LIST_COLUMNS: [&str; 8] = [
    "call_id", "created", "status", "type", "from", "to", "campaign", "notes",
];

/// The names (normalized) a field is known by when the caller did not map it and the header does
/// not use the field's own name: that name, and what spreadsheets people keep call it (`Call ID` and `CallID`, `Note`, `Comment`, `Flag`,
/// `Flag?`). `Notes` is the text too, except in a list of calls, where it is the count of notes.
fn known_as(field: &str, listing: bool) -> &'static [&'static str] {
    match field {
        "call_id" => &["call_id", "callid"],
        "content" if listing => &["content", "note", "comment"],
        "content" => &["content", "note", "notes", "comment"],
        "flagged" => &["flagged", "flag", "flag?"],
        _ => &[],
    }
}

/// What the header calls a column, for a message.
const FIELDS: &str = "call_id, content and optionally flagged";

/// Maps a header (CSV or workbook) or a JSON object's keys (`what` says which) to the fields.
pub(crate) fn map(names: &[String], options: &ReadOptions, what: &str) -> Result<Columns, String> {
    if names.iter().all(|n| n.trim().is_empty()) {
        return Err(format!(
            "the input has no header: its first line must name the {what}s ({FIELDS})"
        ));
    }
    let wanted = [
        ("call_id", options.columns.call_id.as_deref()),
        ("content", options.columns.content.as_deref()),
        ("flagged", options.columns.flagged.as_deref()),
    ];
    let mapped = wanted.iter().any(|(_, given)| given.is_some());
    let normalized: Vec<String> = names.iter().map(|n| normalize(n)).collect();
    let listing = CALL_LIST_COLUMNS
        .iter()
        .all(|column| normalized.iter().any(|n| n == column));
    let mut found: [Option<usize>; 3] = [None; 3];
    for (index, name) in names.iter().enumerate() {
        let normal = normalize(name);
        let field = wanted.iter().position(|(default, given)| match given {
            Some(given) => normal == normalize(given),
            // A header that has the field's own name matches only that name, as it always did
            // (a `note` beside a `content` stays an other column); the other names are for a
            // header without it.
            None if normalized.iter().any(|n| n == default) => normal == *default,
            None => known_as(default, listing).contains(&normal.as_str()),
        });
        let is_key = options
            .columns
            .key
            .as_deref()
            .is_some_and(|key| normal == normalize(key));
        match field {
            None if is_key => {}
            Some(field) => {
                if found[field].replace(index).is_some() {
                    return Err(format!(
                        "the header names the {what} {:?} twice",
                        shorten(name.trim())
                    ));
                }
            }
            None if mapped || options.ignore_other_columns => {}
            None if listing && CALL_LIST_COLUMNS.contains(&normal.as_str()) => {}
            None => {
                return Err(format!(
                    "unknown {what} {:?}: the {what}s are {FIELDS}. Map yours by name \
                     (ReadOptions::columns), or let other {what}s through \
                     (ReadOptions::ignore_other_columns), so that a misspelt name is never \
                     silently ignored",
                    shorten(name.trim())
                ));
            }
        }
    }
    let missing = |field: usize| {
        let (default, given) = wanted[field];
        let name = given.unwrap_or(default);
        if what == "key" {
            return format!("{name} is missing");
        }
        let list = names
            .iter()
            .map(|n| format!("{:?}", shorten(n.trim())))
            .collect::<Vec<_>>()
            .join(", ");
        format!("the header has no {what} {name:?} (it has {list})")
    };
    let Some(call_id) = found[0] else {
        return Err(missing(0));
    };
    if found[1].is_none() && options.default_content.is_none() {
        return Err(missing(1));
    }
    if found[2].is_none() && options.columns.flagged.is_some() {
        return Err(missing(2));
    }
    Ok(Columns {
        call_id,
        content: found[1],
        flagged: found[2],
        count: names.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ColumnNames;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn the_names_spreadsheets_use_are_known() {
        let options = ReadOptions::default();
        let columns = map(&names(&["CallID", "Note", "Flag?"]), &options, "column").unwrap();
        assert_eq!(
            (columns.call_id, columns.content, columns.flagged),
            (0, Some(1), Some(2))
        );
        for (header, content) in [
            (["Call Id", "Comment", "Flag"], 1),
            (["call_id", "Notes", "x"], 1),
        ] {
            let header = names(&header);
            if header[2] == "x" {
                assert!(
                    map(&header, &options, "column").is_err(),
                    "x is not a known column"
                );
                continue;
            }
            assert_eq!(
                map(&header, &options, "column").unwrap().content,
                Some(content)
            );
        }
        // Beside the field's own name, another of its names is an other column, as before.
        let error = map(&names(&["call_id", "content", "note"]), &options, "column").unwrap_err();
        assert!(error.contains("unknown column \"note\""), "{error}");
        let loose = ReadOptions {
            ignore_other_columns: true,
            ..Default::default()
        };
        let columns = map(&names(&["call_id", "content", "note"]), &loose, "column").unwrap();
        assert_eq!(columns.content, Some(1));
        // Without it, two of its other names are refused, not guessed between.
        let error = map(&names(&["call_id", "comment", "note"]), &options, "column").unwrap_err();
        assert!(error.contains("twice"), "{error}");
        // In a list of calls, `notes` is the count of notes, not the text.
        let mut listing: Vec<&str> = CALL_LIST_COLUMNS.to_vec();
        listing.push("content");
        let columns = map(&names(&listing), &options, "column").unwrap();
        assert_eq!(columns.content, Some(CALL_LIST_COLUMNS.len()));
        // A mapped text column leaves the flag to be found by its usual names.
        let mapped = ReadOptions {
            columns: crate::ColumnNames {
                content: Some("Remark".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let columns = map(&names(&["call_id", "Remark", "Flag?"]), &mapped, "column").unwrap();
        assert_eq!(columns.flagged, Some(2));
    }

    #[test]
    fn names_are_matched_as_people_type_them() {
        assert_eq!(normalize("\u{feff} Call ID "), "call_id");
        assert_eq!(normalize("call-id"), "call_id");
        assert_eq!(normalize("CONTENT"), "content");
        assert_eq!(normalize("Load  No."), "load_no");
        let columns = map(
            &names(&["Content", "Call ID", "FLAGGED"]),
            &ReadOptions::default(),
            "column",
        )
        .unwrap();
        assert_eq!(
            (columns.call_id, columns.content, columns.flagged),
            (1, Some(0), Some(2))
        );
    }

    #[test]
    fn other_columns_need_a_mapping_or_the_option() {
        let header = names(&["Call ID", "Note", "Flagged", "Driver"]);
        let error = map(&header, &ReadOptions::default(), "column").unwrap_err();
        // `Note` is a name of the text now; `Driver` is no column's.
        assert!(error.starts_with("unknown column \"Driver\""), "{error}");
        let mapped = ReadOptions {
            columns: ColumnNames {
                content: Some("note".into()),
                ..ColumnNames::default()
            },
            ..ReadOptions::default()
        };
        let columns = map(&header, &mapped, "column").unwrap();
        assert_eq!((columns.call_id, columns.content), (0, Some(1)));
        let error = map(
            &names(&["call_id", "content", "flaged"]),
            &ReadOptions::default(),
            "column",
        )
        .unwrap_err();
        assert!(
            error.contains("\"flaged\""),
            "a misspelt column is refused: {error}"
        );
        let loose = ReadOptions {
            ignore_other_columns: true,
            ..ReadOptions::default()
        };
        assert!(map(&names(&["call_id", "content", "driver"]), &loose, "column").is_ok());
    }

    #[test]
    fn a_list_of_calls_is_read_with_its_columns_and_nothing_else() {
        let mut header = names(&CALL_LIST_COLUMNS);
        header.extend(names(&["content", "flagged"]));
        let columns = map(&header, &ReadOptions::default(), "column").unwrap();
        assert_eq!(
            (columns.call_id, columns.content, columns.flagged),
            (0, Some(8), Some(9))
        );
        // A column the list does not have is still refused...
        header.push("flaged".into());
        let error = map(&header, &ReadOptions::default(), "column").unwrap_err();
        assert!(error.contains("\"flaged\""), "{error}");
        // ... and so are the list's columns in a header that lacks one of them.
        let error = map(
            &names(&["call_id", "content", "status"]),
            &ReadOptions::default(),
            "column",
        )
        .unwrap_err();
        assert!(error.contains("\"status\""), "{error}");
    }

    #[test]
    fn missing_and_repeated_columns_are_named() {
        let error = map(
            &names(&["call_id", "flagged"]),
            &ReadOptions::default(),
            "column",
        )
        .unwrap_err();
        assert!(error.contains("no column \"content\""), "{error}");
        let error = map(
            &names(&["call_id", "content", "Content"]),
            &ReadOptions::default(),
            "column",
        )
        .unwrap_err();
        assert!(error.contains("twice"), "{error}");
        let with_default = ReadOptions {
            default_content: Some("QA sweep".into()),
            ignore_other_columns: true,
            ..ReadOptions::default()
        };
        let columns = map(&names(&["call_id", "status"]), &with_default, "column").unwrap();
        assert_eq!(columns.content, None);
    }
}
