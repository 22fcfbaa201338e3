//! Turning an input's bytes into UTF-8 text: a byte-order mark says UTF-8 or UTF-16 (little or
//! big endian) and is taken off; without one, the text is read as UTF-8 unless the caller named an
//! encoding (Windows-1252, ISO-8859-1, Shift_JIS, ...: any label `encoding_rs` knows).

use std::io::{self, BufRead, Read};

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
    fn the_first_line_is_read_and_given_back() {
        let (head, mut again) =
            first_line(Box::new(io::Cursor::new(b"a;b\n1;2\n".to_vec()))).unwrap();
        assert_eq!(head, b"a;b\n");
        let mut all = String::new();
        again.read_to_string(&mut all).unwrap();
        assert_eq!(all, "a;b\n1;2\n");
    }
}
