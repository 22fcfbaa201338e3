//! What a file given as a workbook really is, from its name and first bytes: a workbook whatever
//! its extension says (an `.xlsx` renamed `.xls`, or the reverse, is read as what it is), or one
//! sentence saying what it is instead and what to do (Excel's lock file, text saved under a
//! workbook's name, an empty file, something else).

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use calamine::{Ods, Sheets, Xls, Xlsb, Xlsx, open_workbook};

/// What the first bytes say.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    /// A package of parts, as `.xlsx`, `.xlsm` and `.xlsb` are (and Word documents).
    Package,
    /// An OpenDocument spreadsheet (`.ods`).
    Ods,
    /// The older binary format (`.xls`), or an Office file with a password.
    Compound,
    /// Text; its first line.
    Text(String),
    Empty,
    Other,
}

/// How many bytes are looked at.
const HEAD: usize = 4096;

/// The workbook at `path`, read in the format its bytes say; or why it is not one, in words.
pub(crate) fn open(path: &Path) -> io::Result<Sheets<BufReader<File>>> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(real) = name.strip_prefix("~$").filter(|real| !real.is_empty()) {
        return Err(invalid(format!(
            "it is the lock file Excel keeps while {real} is open, not a workbook: import {real}"
        )));
    }
    let mut head = Vec::with_capacity(HEAD);
    File::open(path)?.take(HEAD as u64).read_to_end(&mut head)?;
    match kind(&head) {
        Kind::Compound => open_workbook::<Xls<_>, _>(path)
            .map(Sheets::Xls)
            .map_err(|e| unreadable("an Excel 97-2003 workbook (.xls) that cannot be read", e)),
        Kind::Ods => open_workbook::<Ods<_>, _>(path)
            .map(Sheets::Ods)
            .map_err(|e| unreadable("an OpenDocument spreadsheet that cannot be read", e)),
        Kind::Package => open_workbook::<Xlsx<_>, _>(path)
            .map(Sheets::Xlsx)
            .or_else(|_| open_workbook::<Xlsb<_>, _>(path).map(Sheets::Xlsb))
            .map_err(|e| {
                unreadable(
                    "packed as an Excel workbook is, but no sheet can be read from it (another \
                     kind of document?)",
                    e,
                )
            }),
        Kind::Text(first) => Err(invalid(text_named_as_workbook(path, &first))),
        Kind::Empty => Err(invalid(
            "it is empty (0 bytes), not a workbook: save the workbook again from the spreadsheet"
                .to_string(),
        )),
        Kind::Other => Err(invalid(
            "it is not a workbook (.xlsx, .xlsm, .xls or .ods) nor text: open it in a spreadsheet \
             and save it as .xlsx"
                .to_string(),
        )),
    }
}

/// The refusal of a file of a workbook's kind that cannot be read (the reader's own words go to
/// the debug log, not to the person).
fn unreadable(what: &str, error: impl std::fmt::Display) -> io::Error {
    tracing::debug!("{what}: {error}");
    invalid(format!(
        "it is {what}: it may be damaged, or have a password; open it in the spreadsheet that \
         made it and save a copy as .xlsx without a password"
    ))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// The refusal of text (CSV, or tab separated) under a workbook's name.
fn text_named_as_workbook(path: &Path, first: &str) -> String {
    let extension = if first.matches('\t').count() > first.matches(',').count() {
        "txt"
    } else {
        "csv"
    };
    let renamed = path.with_extension(extension);
    let renamed = renamed
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let named = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default();
    if ["csv", "tsv", "txt"].contains(&named.to_ascii_lowercase().as_str()) {
        // Named as text and read as a workbook on purpose.
        return format!(
            "it holds text, not a workbook (its first line is {:?}): read it as CSV, not as a \
             workbook",
            super::shorten(first.trim_end())
        );
    }
    format!(
        "it holds text, not a workbook (its first line is {:?}): it was saved as {} under a \
         workbook's name. Rename it {renamed} and import that",
        super::shorten(first.trim_end()),
        if extension == "txt" {
            "tab-separated text"
        } else {
            "CSV"
        }
    )
}

/// What `head`, a file's first bytes, is.
fn kind(head: &[u8]) -> Kind {
    const OLE: [u8; 8] = [0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1];
    const ODS: &[u8] = b"mimetypeapplication/vnd.oasis.opendocument.spreadsheet";
    if head.is_empty() {
        Kind::Empty
    } else if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        // An OpenDocument file's first part is its type, stored as it is.
        if head.get(30..30 + ODS.len()) == Some(ODS) {
            Kind::Ods
        } else {
            Kind::Package
        }
    } else if head.starts_with(&OLE) {
        Kind::Compound
    } else {
        text_line(head).map_or(Kind::Other, Kind::Text)
    }
}

/// The first line of `head` if it is text: UTF-16 after its byte-order mark, else bytes without
/// the control characters text never has (any 8-bit encoding passes).
fn text_line(head: &[u8]) -> Option<String> {
    let utf16 = |bytes: &[u8], word: fn([u8; 2]) -> u16| {
        let units: Vec<u16> = bytes.chunks_exact(2).map(|c| word([c[0], c[1]])).collect();
        String::from_utf16_lossy(&units)
    };
    let text = match head {
        [0xff, 0xfe, rest @ ..] => utf16(rest, u16::from_le_bytes),
        [0xfe, 0xff, rest @ ..] => utf16(rest, u16::from_be_bytes),
        _ if head
            .iter()
            .any(|b| *b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0c)) =>
        {
            return None;
        }
        _ => {
            String::from_utf8_lossy(head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head)).into_owned()
        }
    };
    Some(text.lines().next().unwrap_or_default().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_bytes_say_what_a_file_is() {
        assert_eq!(kind(b""), Kind::Empty);
        assert_eq!(kind(b"PK\x03\x04rest"), Kind::Package);
        let mut ods = b"PK\x03\x04".to_vec();
        ods.resize(30, 0);
        ods.extend_from_slice(b"mimetypeapplication/vnd.oasis.opendocument.spreadsheetPK");
        assert_eq!(kind(&ods), Kind::Ods);
        assert_eq!(
            kind(&[0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1, 0]),
            Kind::Compound
        );
        assert_eq!(
            kind(b"call_id,content\r\nx,y\r\n"),
            Kind::Text("call_id,content".into())
        );
        assert_eq!(kind(b"caf\xe9,x\n"), Kind::Text("caf\u{fffd},x".into()));
        let utf16: Vec<u8> = [0xff, 0xfe]
            .into_iter()
            .chain(
                "Call ID\tNote\r\n"
                    .encode_utf16()
                    .flat_map(u16::to_le_bytes),
            )
            .collect();
        assert_eq!(kind(&utf16), Kind::Text("Call ID\tNote".into()));
        assert_eq!(kind(b"%PDF-1.7\x00\x01"), Kind::Other);
    }

    #[test]
    fn text_under_a_workbooks_name_is_told_its_own_name() {
        let message = text_named_as_workbook(Path::new("dir/review.xlsx"), "call_id,content");
        assert!(
            message.contains("saved as CSV")
                && message.ends_with("Rename it review.csv and import that"),
            "{message}"
        );
        let message = text_named_as_workbook(Path::new("review.xls"), "Call ID\tNote\tFlag");
        assert!(message.contains("Rename it review.txt"), "{message}");
        let message = text_named_as_workbook(Path::new("review.CSV"), "call_id,content");
        assert!(
            message.ends_with("read it as CSV, not as a workbook"),
            "{message}"
        );
    }
}
