//! Reading an import file: its lines one at a time, never the whole file, and the
//! split of one line into a row's fields (a CSV record under the file's header, or
//! a JSON object).

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use super::rows::{Fields, Header};

/// The longest line read (a user's fields are at most a few hundred bytes each); a
/// longer one is a bad row, skipped without being held in memory.
const MAX_LINE_BYTES: usize = 64 * 1024;

/// Splits one CSV record (RFC 4180, on one line): fields separated by commas; a
/// field in double quotes may hold commas, and `""` in it stands for one quote.
pub(super) fn split_record(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        let more = if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("a quoted field is not closed (fields cannot span lines)".into()),
                }
            }
            match chars.next() {
                Some(',') => true,
                None => false,
                Some(_) => return Err("a quoted field must be followed by a comma or the end of the line".into()),
            }
        } else {
            loop {
                match chars.next() {
                    Some(',') => break true,
                    None => break false,
                    Some('"') => {
                        return Err("a quote inside an unquoted field (quote the field and double the quote)".into())
                    }
                    Some(c) => field.push(c),
                }
            }
        };
        fields.push(field);
        if !more {
            return Ok(fields);
        }
    }
}

fn json_fields(line: &str) -> Result<Fields, String> {
    serde_json::from_str(line).map_err(|e| format!("not a user object: {e}"))
}

/// How the rows are written, known from the first non-empty line.
#[derive(Debug)]
enum Format {
    Csv(Header),
    JsonLines,
}

/// The rows of an import file, each with its line number and either its values or
/// why they cannot be read.
pub(super) struct Rows {
    lines: Lines,
    format: Option<Format>,
}

impl Rows {
    pub(super) fn new(file: tokio::fs::File) -> Self {
        Rows { lines: Lines::new(file), format: None }
    }

    pub(super) fn lines_read(&self) -> usize {
        self.lines.read
    }

    /// The next row, skipping blank lines and the CSV header.
    ///
    /// # Errors
    /// The file cannot be read, or its first line is a bad CSV header (or unreadable,
    /// so the format is unknown).
    pub(super) async fn next(&mut self) -> anyhow::Result<Option<(usize, Result<Fields, String>)>> {
        loop {
            let Some((line, text)) = self.lines.next().await? else { return Ok(None) };
            let text = match (text, &self.format) {
                (Ok(text), _) => text,
                (Err(reason), Some(_)) => return Ok(Some((line, Err(reason.into())))),
                (Err(reason), None) => anyhow::bail!("line {line}: {reason}"),
            };
            if text.trim().is_empty() {
                continue;
            }
            match &self.format {
                Some(Format::Csv(header)) => return Ok(Some((line, header.fields(&text)))),
                Some(Format::JsonLines) => return Ok(Some((line, json_fields(&text)))),
                None if text.trim_start().starts_with('{') => {
                    self.format = Some(Format::JsonLines);
                    return Ok(Some((line, json_fields(&text))));
                }
                None => {
                    let header = Header::parse(&text).map_err(|e| anyhow::anyhow!("line {line}: CSV header: {e}"))?;
                    self.format = Some(Format::Csv(header));
                }
            }
        }
    }
}

/// A file's lines, one at a time, without their line ends (and without a UTF-8
/// byte order mark on the first).
struct Lines {
    reader: BufReader<tokio::fs::File>,
    buf: Vec<u8>,
    /// Lines returned so far: the number of the last one.
    read: usize,
}

impl Lines {
    fn new(file: tokio::fs::File) -> Self {
        Lines { reader: BufReader::with_capacity(64 * 1024, file), buf: Vec::new(), read: 0 }
    }

    /// The next line and its number, or why its text cannot be used (too long, not
    /// UTF-8); `None` at the end of the file.
    async fn next(&mut self) -> std::io::Result<Option<(usize, Result<String, &'static str>)>> {
        self.buf.clear();
        // At most one byte more than a line may have (its newline): a longer line is
        // never held whole.
        let limit = MAX_LINE_BYTES as u64 + 1;
        let n = (&mut self.reader).take(limit).read_until(b'\n', &mut self.buf).await?;
        if n == 0 {
            return Ok(None);
        }
        self.read += 1;
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
            if self.buf.last() == Some(&b'\r') {
                self.buf.pop();
            }
        } else if self.buf.len() > MAX_LINE_BYTES {
            self.skip_rest_of_line().await?;
            return Ok(Some((self.read, Err("the line is longer than 64 KiB"))));
        }
        let text = match String::from_utf8(std::mem::take(&mut self.buf)) {
            Ok(text) => text,
            Err(e) => {
                self.buf = e.into_bytes();
                return Ok(Some((self.read, Err("the line is not UTF-8"))));
            }
        };
        let text = match text.strip_prefix('\u{feff}') {
            Some(rest) if self.read == 1 => rest.to_string(),
            _ => text,
        };
        Ok(Some((self.read, Ok(text))))
    }

    async fn skip_rest_of_line(&mut self) -> std::io::Result<()> {
        loop {
            let chunk = self.reader.fill_buf().await?;
            if chunk.is_empty() {
                return Ok(());
            }
            match chunk.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    self.reader.consume(end + 1);
                    return Ok(());
                }
                None => {
                    let n = chunk.len();
                    self.reader.consume(n);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::import::rows::tests::ada;

    #[test]
    fn csv_fields_split_on_commas_outside_quotes() {
        assert_eq!(split_record("a,b,c").unwrap(), ["a", "b", "c"]);
        assert_eq!(split_record(r#""Lovelace, Ada",x"#).unwrap(), ["Lovelace, Ada", "x"]);
        assert_eq!(split_record(r#""say ""hi""",,"#).unwrap(), [r#"say "hi""#, "", ""]);
        assert_eq!(split_record(r#""""#).unwrap(), [""]);
        assert_eq!(split_record(" a , b").unwrap(), [" a ", " b"]);
    }

    #[test]
    fn csv_refuses_broken_quoting() {
        for bad in [r#""open,b"#, r#""a"b,c"#, r#"a"b,c"#] {
            assert!(split_record(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn json_rows_use_camel_case_and_refuse_unknown_keys() {
        let f = json_fields(r#"{"email":"ada@example.com","givenName":"Ada","familyName":"Lovelace","language":"de"}"#);
        assert_eq!(f.unwrap(), Fields { preferred_language: Some("de".into()), ..ada() });
        assert!(json_fields(r#"{"emial":"ada@example.com"}"#).is_err());
        assert!(json_fields(r#"{"phone":41791234567}"#).is_err());
    }

    async fn rows_of(name: &str, content: &[u8]) -> anyhow::Result<Vec<(usize, Result<Fields, String>)>> {
        let path = std::env::temp_dir().join(format!("herald-import-{name}-{:016x}", rand::random::<u64>()));
        std::fs::write(&path, content)?;
        let mut rows = Rows::new(tokio::fs::File::open(&path).await?);
        let mut all = Vec::new();
        let result = async {
            while let Some(row) = rows.next().await? {
                all.push(row);
            }
            anyhow::Ok(())
        }
        .await;
        std::fs::remove_file(&path)?;
        result.map(|()| all)
    }

    #[tokio::test]
    async fn the_first_line_tells_csv_from_json_lines_and_line_numbers_count_every_line() {
        let csv = "\u{feff}email,given_name,family_name\r\n\r\nada@example.com,Ada,Lovelace\r\n\"x,y\n";
        let rows = rows_of("csv", csv.as_bytes()).await.unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0], (3, Ok(ada())));
        assert_eq!(rows[1].0, 4);
        assert!(rows[1].1.is_err());

        let json = "\n{\"email\":\"ada@example.com\",\"givenName\":\"Ada\",\"familyName\":\"Lovelace\"}\nnot json";
        let rows = rows_of("json", json.as_bytes()).await.unwrap();
        assert_eq!(rows[0], (2, Ok(ada())));
        assert_eq!(rows[1].0, 3);
        assert!(rows[1].1.is_err());

        assert!(rows_of("header", b"mail,given_name,family_name\n").await.unwrap_err().to_string().contains("line 1"));
    }

    #[tokio::test]
    async fn overlong_and_non_utf8_lines_are_bad_rows_and_reading_goes_on() {
        let mut content = b"email,given_name,family_name\n".to_vec();
        content.extend(std::iter::repeat_n(b'a', MAX_LINE_BYTES + 10));
        content.extend(b"\nada@example.com,Ad\xff,Lovelace\nada@example.com,Ada,Lovelace");
        let rows = rows_of("long", &content).await.unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0], (2, Err("the line is longer than 64 KiB".into())));
        assert_eq!(rows[1], (3, Err("the line is not UTF-8".into())));
        assert_eq!(rows[2], (4, Ok(ada())));
    }
}
