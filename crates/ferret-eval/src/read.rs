//! Line reading shared by the run and qrels parsers: plain or gzip files, UTF-8 checked per
//! line, CRLF tolerated, errors that name the file and line.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use crate::EvalError;

/// Opens `path` (gzip-decoded when it ends in `.gz`) as a buffered reader.
pub fn open(path: &Path) -> Result<Box<dyn BufRead>, EvalError> {
    let file = std::fs::File::open(path).map_err(|source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    Ok(Box::new(BufReader::with_capacity(1 << 16, reader)))
}

/// Calls `f(line_number, line)` for every line of `path`, with the line ending (`\n` or `\r\n`)
/// removed. Invalid UTF-8 is an error naming the line.
pub fn for_each_line(
    path: &Path,
    mut f: impl FnMut(usize, &str) -> Result<(), EvalError>,
) -> Result<(), EvalError> {
    let mut reader = open(path)?;
    let mut buf = Vec::new();
    let mut line_no = 0;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|source| EvalError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        if n == 0 {
            return Ok(());
        }
        line_no += 1;
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        let line = std::str::from_utf8(&buf).map_err(|e| {
            EvalError::parse(
                path,
                line_no,
                format!("invalid UTF-8 at byte {}", e.valid_up_to()),
            )
        })?;
        f(line_no, line)?;
    }
}
