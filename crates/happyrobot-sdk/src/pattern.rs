//! The string `pattern`s of the spec, checked without a regex engine.
//!
//! typify would check a pattern with `regress`, a whole ECMAScript regex engine, for the spec's one
//! pattern, `\S`. `cargo xtask codegen` points the generated check at these functions instead (see
//! `PATTERNS` in `xtask/src/codegen.rs`); each has the meaning the pattern has in ECMAScript, which
//! is what the spec's JSON Schema means, and a test compares it with `regress` for every character.

/// Whether `value` matches the pattern `\S`: holds a character that is not ECMAScript whitespace.
///
/// ECMAScript's whitespace (`WhiteSpace` and `LineTerminator`) is Unicode's `White_Space`, which
/// [`char::is_whitespace`] tests, without U+0085 (next line) and with U+FEFF (zero-width no-break
/// space).
pub(crate) fn has_non_whitespace(value: &str) -> bool {
    value.chars().any(|c| !is_ecmascript_whitespace(c))
}

fn is_ecmascript_whitespace(c: char) -> bool {
    match c {
        '\u{85}' => false,
        '\u{feff}' => true,
        other => other.is_whitespace(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_the_regex_engine_typify_uses_for_every_character() {
        let regex = regress::Regex::new("\\S").unwrap();
        let mut differ = Vec::new();
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            let text = c.to_string();
            if has_non_whitespace(&text) != regex.find(&text).is_some() {
                differ.push(c);
            }
        }
        assert!(differ.is_empty(), "differ from regress on {differ:?}");
    }

    #[test]
    fn whole_strings() {
        assert!(has_non_whitespace("a"));
        assert!(has_non_whitespace("  \t x \n"));
        assert!(!has_non_whitespace(""));
        assert!(!has_non_whitespace(" \t\r\n\u{a0}\u{2028}\u{3000}\u{feff}"));
        assert!(has_non_whitespace("\u{85}"));
    }
}
