//! Turning an input's bytes into UTF-8 text: a byte-order mark says UTF-8 or UTF-16 (little or
//! big endian) and is taken off; without one, the text is read as UTF-8 unless the caller named an
//! encoding (Windows-1252, ISO-8859-1, Shift_JIS, ...: any label `encoding_rs` knows).

use std::io::{self, BufRead, Read};
use std::path::Path;

use encoding_rs::Encoding;
use encoding_rs_io::DecodeReaderBytesBuilder;

/// The hint every message about undecodable text gives.
pub(crate) const ENCODING_HINT: &str = "save the file as UTF-8, or give its encoding with \
    ReadOptions::encoding (windows-1252 for Excel's \"CSV (Comma delimited)\")";

/// The encoding a label names (`windows-1252`, `latin1`, `utf-16le`...), if `encoding_rs` knows it.
pub(crate) fn encoding(label: &str) -> Option<&'static Encoding> {
    Encoding::for_label(label.trim().as_bytes())
}

/// `reader`'s text as UTF-8: transcoded from a byte-order mark's encoding or `given`, else passed
/// through unchanged (so that invalid UTF-8 is reported with its line, not replaced).
pub(crate) fn decoded(
    reader: impl Read + Send + 'static,
    given: Option<&'static Encoding>,
) -> Box<dyn Read + Send> {
    Box::new(
        DecodeReaderBytesBuilder::new()
            .encoding(given)
            // A byte-order mark says more than a guess, and is never part of the text.
            .bom_override(true)
            .strip_bom(true)
            .utf8_passthru(true)
            .build(reader),
    )
}

/// Refuses, once for the whole file, text that is not UTF-8 when no encoding was given and no
/// byte-order mark names one: the bytes Windows-1252 files have (Excel's "CSV (Comma delimited)"
/// and "Text (Tab delimited)") would otherwise be refused line by line, each with the same fix.
pub(crate) fn check_utf8(path: &Path, given: Option<&'static Encoding>) -> io::Result<()> {
    if given.is_some() {
        return Ok(());
    }
    let Some((count, first)) = not_utf8(std::fs::File::open(path)?)? else {
        return Ok(());
    };
    let lines = if count == 1 {
        format!("line {first} holds bytes")
    } else {
        format!("{count} lines hold bytes (the first: line {first})")
    };
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "it is not UTF-8 text: {lines} that UTF-8 does not have, as in a file Excel saved as \
             \"CSV (Comma delimited)\" or \"Text (Tab delimited)\". Give its encoding, most likely \
             ReadOptions::encoding windows-1252, or save it as \"CSV UTF-8\""
        ),
    ))
}

/// How many lines of `reader` are not UTF-8, and the first of them; `None` when every line is,
/// or when a UTF-16 byte-order mark says the text is not meant to be.
fn not_utf8(reader: impl Read) -> io::Result<Option<(u64, u64)>> {
    let mut reader = io::BufReader::with_capacity(64 * 1024, reader);
    if reader.fill_buf()?.starts_with(&[0xff, 0xfe])
        || reader.fill_buf()?.starts_with(&[0xfe, 0xff])
    {
        return Ok(None);
    }
    let (mut line, mut count, mut first) = (0u64, 0u64, 0u64);
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        if reader.read_until(b'\n', &mut buffer)? == 0 {
            break;
        }
        line += 1;
        if std::str::from_utf8(&buffer).is_err() {
            count += 1;
            if first == 0 {
                first = line;
            }
        }
    }
    Ok((count > 0).then_some((count, first)))
}

/// Reads the first line (up to its `\n`, at most 1 MiB) and returns it with a reader that yields
/// the whole text again from its start, so that the header can be looked at before the CSV reader
/// is built.
#[cfg_attr(not(feature = "csv"), allow(dead_code))]
pub(crate) fn first_line(
    reader: Box<dyn Read + Send>,
) -> io::Result<(Vec<u8>, Box<dyn Read + Send>)> {
    // A small buffer: reads larger than it go straight through, so it adds almost nothing to how
    // far ahead of the passes the reader is.
    let mut buffered = io::BufReader::with_capacity(1024, reader);
    let mut head = Vec::new();
    (&mut buffered)
        .take(1024 * 1024)
        .read_until(b'\n', &mut head)?;
    let again = io::Cursor::new(head.clone()).chain(buffered);
    Ok((head, Box::new(again)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(bytes: &[u8], given: Option<&'static Encoding>) -> Vec<u8> {
        let mut out = Vec::new();
        decoded(io::Cursor::new(bytes.to_vec()), given)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn boms_decide_and_are_dropped_and_utf8_passes_through() {
        assert_eq!(text(b"\xef\xbb\xbfcall_id", None), b"call_id");
        let utf16le: Vec<u8> = [0xff, 0xfe]
            .into_iter()
            .chain("a\tb\n".encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        assert_eq!(text(&utf16le, None), b"a\tb\n");
        let utf16be: Vec<u8> = [0xfe, 0xff]
            .into_iter()
            .chain("é".encode_utf16().flat_map(u16::to_be_bytes))
            .collect();
        assert_eq!(text(&utf16be, None), "é".as_bytes());
        // Invalid UTF-8 is kept as it is, for the reader to report with its line.
        assert_eq!(text(b"caf\xe9", None), b"caf\xe9");
        assert_eq!(
            text(b"caf\xe9", encoding("windows-1252")),
            "café".as_bytes()
        );
        assert_eq!(text(b"\x80", encoding("latin1")), "€".as_bytes());
        assert!(encoding("no-such-encoding").is_none());
    }

    #[test]
    fn text_that_is_not_utf8_is_counted_once_for_the_file() {
        let bytes = b"call_id,content\nid,caf\xe9\nid,ok\nid,\x80 5\n".to_vec();
        assert_eq!(not_utf8(io::Cursor::new(bytes)).unwrap(), Some((2, 2)));
        assert_eq!(
            not_utf8(io::Cursor::new("na\u{ef}ve\n".as_bytes())).unwrap(),
            None
        );
        assert_eq!(
            not_utf8(io::Cursor::new(vec![0xff, 0xfe, b'a', 0])).unwrap(),
            None
        );
    }

    #[test]
    fn the_first_line_is_read_and_given_back() {
        let (head, mut again) =
            first_line(Box::new(io::Cursor::new(b"a;b\n1;2\n".to_vec()))).unwrap();
        assert_eq!(head, b"a;b\n");
        let mut all = String::new();
        again.read_to_string(&mut all).unwrap();
        assert_eq!(all, "a;b\n1;2\n");
    }
}
