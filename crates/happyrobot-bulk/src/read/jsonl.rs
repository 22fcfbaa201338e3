//! JSON Lines: one object per line, its keys mapped as a CSV header's columns are, a key given
//! twice refused (a JSON parser would silently keep the last), blank lines skipped.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use serde::de::{Deserializer as _, MapAccess, Visitor};
use serde_json::Value;

use super::columns;
use super::text::{self, ENCODING_HINT};
use super::{Fields, Item, LineError, make_record, parse_flag, shorten};
use crate::ReadOptions;

/// The records of a JSON Lines file.
pub(crate) struct JsonlRecords {
    reader: BufReader<Box<dyn Read + Send>>,
    line: u64,
    buffer: Vec<u8>,
    options: ReadOptions,
    cells: bool,
    done: bool,
}

impl JsonlRecords {
    pub(crate) fn open(path: &Path, options: &ReadOptions, cells: bool) -> io::Result<Self> {
        Ok(Self::from_reader(
            Box::new(File::open(path)?),
            options,
            cells,
        ))
    }

    pub(crate) fn from_reader(
        reader: Box<dyn Read + Send>,
        options: &ReadOptions,
        cells: bool,
    ) -> Self {
        Self {
            reader: BufReader::with_capacity(64 * 1024, text::decoded(reader, options.encoding)),
            line: 0,
            buffer: Vec::new(),
            options: options.clone(),
            cells,
            done: false,
        }
    }
}

impl Iterator for JsonlRecords {
    type Item = io::Result<Item>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        loop {
            self.buffer.clear();
            match self.reader.read_until(b'\n', &mut self.buffer) {
                Ok(0) => {
                    self.done = true;
                    return None;
                }
                Ok(_) => {}
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
            self.line += 1;
            let Ok(text) = std::str::from_utf8(&self.buffer) else {
                let message = format!("it is not valid UTF-8 text: {ENCODING_HINT}");
                return Some(Ok(Item::Invalid(LineError::new(self.line, message))));
            };
            let text = text.trim_start_matches('\u{feff}').trim();
            if text.is_empty() {
                continue;
            }
            let item = match read_line(text, self.line, &self.options, self.cells) {
                Ok(record) => Item::Valid(record),
                Err(message) => Item::Invalid(LineError::new(self.line, message)),
            };
            return Some(Ok(item));
        }
    }
}

fn read_line(
    text: &str,
    line: u64,
    options: &ReadOptions,
    cells: bool,
) -> Result<crate::record::Record, String> {
    let fields = object(text)?;
    let names: Vec<String> = fields.iter().map(|(k, _)| k.clone()).collect();
    let columns = columns::map(&names, options, "key")?;
    let string = |index: Option<usize>, name: &str| match index.map(|i| &fields[i].1) {
        Some(Value::String(text)) => Ok(text.clone()),
        None | Some(Value::Null) if name == "content" && options.default_content.is_some() => {
            Ok(String::new())
        }
        None | Some(Value::Null) => Err(format!("{name} is missing")),
        Some(_) => Err(format!("{name} must be a string")),
    };
    let (call_id, content) = match (
        string(Some(columns.call_id), "call_id"),
        string(columns.content, "content"),
    ) {
        (Ok(call_id), Ok(content)) => (call_id, content),
        (Err(a), Err(b)) => return Err(format!("{a}; {b}")),
        (Err(problem), _) | (_, Err(problem)) => return Err(problem),
    };
    let flagged = match columns.flagged.map(|i| &fields[i].1) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(flag)) => Ok(Some(*flag)),
        Some(Value::String(text)) => parse_flag(text),
        Some(Value::Number(n)) => parse_flag(&n.to_string()),
        Some(_) => Err("flagged must be true or false".to_string()),
    };
    let fields_read = Fields {
        call_id: &call_id,
        content,
        flagged,
    };
    let mut record = make_record(line, fields_read, options)?;
    if cells {
        record.cells = Some(
            fields
                .iter()
                .map(|(_, value)| match value {
                    Value::String(text) => text.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                })
                .collect(),
        );
        record.keys = Some(names);
    }
    Ok(record)
}

/// The members of a JSON object in order, refusing a key given twice.
fn object(text: &str) -> Result<Vec<(String, Value)>, String> {
    struct Members;

    impl<'de> Visitor<'de> for Members {
        type Value = Result<Vec<(String, Value)>, String>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut members: Vec<(String, Value)> = Vec::new();
            while let Some((key, value)) = map.next_entry::<String, Value>()? {
                if members.iter().any(|(k, _)| *k == key) {
                    return Ok(Err(format!(
                        "the key {:?} is given twice (a JSON reader would keep only the last): \
                         give it once",
                        shorten(&key)
                    )));
                }
                members.push((key, value));
            }
            Ok(Ok(members))
        }
    }

    let not_object = || {
        "it is not a JSON object such as {\"call_id\": \"...\", \"content\": \"...\"}".to_string()
    };
    let mut deserializer = serde_json::Deserializer::from_str(text);
    match deserializer.deserialize_map(Members) {
        Ok(members) => {
            deserializer
                .end()
                .map_err(|e| format!("invalid JSON: {e}"))?;
            members
        }
        Err(e) if e.is_data() => Err(not_object()),
        Err(e) => match serde_json::from_str::<Value>(text) {
            Ok(_) => Err(not_object()),
            Err(_) => Err(format!("invalid JSON: {e}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "65f1c0ffee0123456789abcd";

    fn read(text: &str) -> Vec<Item> {
        JsonlRecords::from_reader(
            Box::new(io::Cursor::new(text.as_bytes().to_vec())),
            &ReadOptions::default(),
            false,
        )
        .map(|item| item.unwrap())
        .collect()
    }

    #[test]
    fn records_and_bad_lines_are_read_with_their_numbers() {
        let text = format!(
            "{{\"call_id\":\"{ID}\",\"content\":\"a\",\"flagged\":true}}\n\
             \n\
             {{\"call_id\":\"{ID}\",\"content\":\"b\",\"flagged\":\"yes\"}}\r\n\
             {{\"call_id\":\"{ID}\",\"content\":\"c\",\"flagged\":null}}\n\
             not json\n\
             [1,2]\n\
             {{\"call_id\":\"{ID}\"}}\n\
             {{\"call_id\":\"{ID}\",\"content\":\"d\",\"extra\":1}}\n\
             {{\"call_id\":7,\"content\":\"\"}}\n\
             {{\"call_id\":\"{ID}\",\"content\":\"e\",\"flagged\":0}}\n\
             {{\"call_id\":\"{ID}\",\"content\":\"f\",\"content\":\"g\"}}"
        );
        let items = read(&text);
        let valid: Vec<(u64, String)> = items
            .iter()
            .filter_map(|i| match i {
                Item::Valid(r) => Some((r.line, r.note.content().to_string())),
                Item::Invalid(_) => None,
            })
            .collect();
        assert_eq!(
            valid,
            [
                (1, "a".into()),
                (3, "b".into()),
                (4, "c".into()),
                (10, "e".into())
            ]
        );
        let errors: Vec<String> = items
            .iter()
            .filter_map(|i| match i {
                Item::Invalid(e) => Some(e.to_string()),
                Item::Valid(_) => None,
            })
            .collect();
        assert_eq!(errors.len(), 6, "{errors:#?}");
        assert!(
            errors[0].starts_with("line 5: invalid JSON"),
            "{}",
            errors[0]
        );
        assert!(
            errors[1].starts_with("line 6: it is not a JSON object"),
            "{}",
            errors[1]
        );
        assert_eq!(errors[2], "line 7: content is missing");
        assert!(
            errors[3].starts_with("line 8: unknown key \"extra\""),
            "{}",
            errors[3]
        );
        assert_eq!(errors[4], "line 9: call_id must be a string");
        assert!(
            errors[5].starts_with("line 11: the key \"content\" is given twice"),
            "{}",
            errors[5]
        );
    }
}
