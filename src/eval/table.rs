//! The CSV tables the evaluation readers take in (manifests, CREMA-D vote tables,
//! MSP-Podcast label files), parsed by the `csv` crate: RFC 4180 quoting, quoted
//! line breaks, CRLF. Each reader then finds its columns by header name and checks
//! the cells itself, naming file, line and column in its own errors.

/// A table read whole: the header's cells and the data rows.
pub(crate) struct Table {
    /// Header cells, trimmed, a leading byte-order mark dropped; empty when the
    /// input has no lines.
    pub header: Vec<String>,
    /// Data rows in file order; blank lines are skipped.
    pub rows: Vec<Row>,
}

/// One data row and where it starts.
pub(crate) struct Row {
    /// 1-based line number of the row's first line (for messages).
    pub line: usize,
    cells: csv::StringRecord,
    header_len: usize,
}

impl Table {
    /// Parses `text`. Rows may have more or fewer cells than the header (a short
    /// row is an error only when a missing cell is asked for, see [`Row::field`]).
    pub fn parse(text: &str) -> std::io::Result<Self> {
        let mut records = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes())
            .into_records();
        let header: Vec<String> = match records.next().transpose()? {
            Some(h) => h
                .iter()
                .map(|c| c.trim_start_matches('\u{feff}').trim().to_string())
                .collect(),
            None => Vec::new(),
        };
        let mut lines = LineCounter::default();
        let mut rows = Vec::new();
        for record in records {
            let cells = record?;
            // A line of blanks only (the crate skips truly empty lines itself).
            if cells.len() == 1 && cells[0].is_empty() {
                continue;
            }
            let start = cells.position().map_or(0, |p| p.byte() as usize);
            rows.push(Row {
                line: lines.line_at(text, start),
                cells,
                header_len: header.len(),
            });
        }
        Ok(Self { header, rows })
    }

    /// Index of the header cell `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }
}

/// Line numbers of byte offsets, counted incrementally (offsets only grow).
#[derive(Default)]
struct LineCounter {
    offset: usize,
    newlines: usize,
}

impl LineCounter {
    /// The 1-based line of the first character at or after `start` that is not a
    /// line break: the crate's record positions point before the line breaks that
    /// precede a record (a CRLF's `\n`, blank lines).
    fn line_at(&mut self, text: &str, start: usize) -> usize {
        let bytes = text.as_bytes();
        let mut start = start.min(bytes.len());
        while start < bytes.len() && matches!(bytes[start], b'\r' | b'\n') {
            start += 1;
        }
        if start > self.offset {
            self.newlines += bytes[self.offset..start]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            self.offset = start;
        }
        self.newlines + 1
    }
}

impl Row {
    /// Cell `c` (trimmed); when the row is too short, the message says how many
    /// cells it has against the header's.
    pub fn field(&self, c: usize) -> Result<&str, String> {
        self.cells.get(c).ok_or_else(|| {
            format!(
                "row has {} field(s), the header {}",
                self.cells.len(),
                self.header_len
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_cells_bom_blank_lines_and_line_numbers() {
        let text =
            "\u{feff}name , n\r\n\r\n\"a,b\",1\r\n  \r\n\"say \"\"hi\"\"\nthere\",2\nshort\n";
        let t = Table::parse(text).expect("parses");
        assert_eq!(t.header, ["name", "n"]);
        assert_eq!(t.column("n"), Some(1));
        assert_eq!(t.rows.len(), 3);
        assert_eq!((t.rows[0].line, t.rows[0].field(0)), (3, Ok("a,b")));
        assert_eq!(t.rows[1].line, 5);
        assert_eq!(t.rows[1].field(0), Ok("say \"hi\"\nthere"));
        assert_eq!(t.rows[1].field(1), Ok("2"));
        assert_eq!(t.rows[2].line, 7);
        assert_eq!(
            t.rows[2].field(1),
            Err("row has 1 field(s), the header 2".to_string())
        );
    }

    #[test]
    fn empty_input_has_no_header_or_rows() {
        let t = Table::parse("").expect("empty is fine");
        assert!(t.header.is_empty() && t.rows.is_empty());
        let t = Table::parse("a,b\n\n").expect("header only");
        assert_eq!((t.header.len(), t.rows.len()), (2, 0));
    }
}
