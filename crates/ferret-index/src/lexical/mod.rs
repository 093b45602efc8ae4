//! The lexical representation: an inverted index on tantivy.
//!
//! ferret analyzes text itself ([`ferret_text`]), so the same analyzer serves indexing and
//! queries. tantivy receives each field as its list of terms joined by [`TERM_SEPARATOR`] and
//! splits it again with [`TermListTokenizer`]: one string per field crosses to tantivy's
//! indexing threads. (tantivy's own `PreTokenizedString` costs a `String` per token and a JSON
//! round trip per field inside tantivy — a third of the indexing time on SciFact.) Besides
//! postings with term frequencies and tantivy's field norms (the same lossy one-byte length
//! code as Lucene's `SmallFloat.intToByte4`, which BM25 uses), each document stores its internal
//! number (`ord`) and the exact token count of each text field (`len_<field>`), so collection
//! statistics stay exact over live documents after deletes.

pub mod bm25;
mod reader;
mod statistics;
mod writer;

pub use reader::{FieldStats, LexicalReader};
pub use statistics::LexicalStatistics;
pub use writer::LexicalWriter;

use ferret_text::AnalyzerKind;
use serde::{Deserialize, Serialize};

use crate::representation::{Entry, Kind, OpenContext, Opened, Reader};
use crate::IndexError;
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST, STRING,
};
use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

/// The lexical representation's parameters in the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LexicalParams {
    pub analyzer: AnalyzerKind,
    pub fields: FieldMode,
}

impl LexicalParams {
    pub(crate) fn entry(self) -> Entry {
        Entry {
            kind: KIND.name.to_string(),
            name: String::new(),
            model: None,
            params: serde_json::to_value(self).expect("lexical parameters serialise"),
            files: Vec::new(),
        }
    }
}

/// The lexical kind: built by the writer alongside the docstore (its commit is the index's
/// switch), so it registers a reader only. tantivy lists its own files.
pub const KIND: Kind = Kind {
    name: "lexical",
    how_to_add: "`ferret index --corpus FILE --index DIR` builds one",
    open,
    build: None,
};

fn open(ctx: &OpenContext<'_>, entry: &Entry) -> Result<Box<dyn Reader>, IndexError> {
    let p: LexicalParams = entry.params(ctx.dir)?;
    let dir = ctx.dir.join("lexical");
    let index = tantivy::Index::open_in_dir(&dir)?;
    let reader = LexicalReader::open(&index, &dir, p.fields, p.analyzer, ctx.slots)?;
    Ok(Box::new(Opened {
        entry: entry.clone(),
        reader,
    }))
}

/// How title and text are indexed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FieldMode {
    /// Title and text in one field, `contents` (Pyserini's "flat" BEIR indexes).
    Flat,
    /// Separate `title` and `text` fields, weighted at query time (Pyserini's "multifield").
    Multi,
}

impl std::str::FromStr for FieldMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "flat" => Ok(FieldMode::Flat),
            "multi" | "multifield" => Ok(FieldMode::Multi),
            other => Err(format!("unknown field mode '{other}' (known: flat, multi)")),
        }
    }
}

impl FieldMode {
    /// Names of the text fields in this mode.
    pub fn field_names(self) -> &'static [&'static str] {
        match self {
            FieldMode::Flat => &["contents"],
            FieldMode::Multi => &["title", "text"],
        }
    }
}

/// The tantivy schema and its field handles.
#[derive(Clone)]
pub(crate) struct LexicalSchema {
    pub schema: Schema,
    pub id: Field,
    pub ord: Field,
    /// (text field, exact length field) per field name of the mode, in order.
    pub text: Vec<(Field, Field)>,
}

impl LexicalSchema {
    pub fn build(mode: FieldMode) -> Self {
        let mut b = Schema::builder();
        let id = b.add_text_field("id", STRING);
        let ord = b.add_u64_field("ord", FAST);
        let indexing = TextFieldIndexing::default()
            .set_tokenizer(TERMS_TOKENIZER)
            .set_fieldnorms(true)
            .set_index_option(IndexRecordOption::WithFreqs);
        let text = mode
            .field_names()
            .iter()
            .map(|name| {
                let f = b.add_text_field(
                    name,
                    TextOptions::default().set_indexing_options(indexing.clone()),
                );
                let len = b.add_u64_field(&format!("len_{name}"), FAST);
                (f, len)
            })
            .collect();
        LexicalSchema {
            schema: b.build(),
            id,
            ord,
            text,
        }
    }

    /// Resolves the handles in an existing index's schema, checking it is ferret's.
    pub fn from_schema(schema: Schema, mode: FieldMode) -> Result<Self, String> {
        let get = |name: &str| {
            schema
                .get_field(name)
                .map_err(|_| format!("lexical index has no field '{name}'"))
        };
        let id = get("id")?;
        let ord = get("ord")?;
        let text = mode
            .field_names()
            .iter()
            .map(|name| Ok((get(name)?, get(&format!("len_{name}"))?)))
            .collect::<Result<Vec<_>, String>>()?;
        Ok(LexicalSchema {
            schema,
            id,
            ord,
            text,
        })
    }
}

/// The name [`TermListTokenizer`] is registered under in every tantivy index ferret writes.
pub(crate) const TERMS_TOKENIZER: &str = "ferret_terms";

/// Separates the terms of a field value handed to tantivy. No analyzer emits it inside a term:
/// control characters are never part of a StandardTokenizer word, and jieba keeps only tokens
/// with a letter or digit, made of ideographs and ASCII word characters.
pub(crate) const TERM_SEPARATOR: char = '\0';

/// Splits a field value made with [`push_term`] back into its terms, in order. Offsets are the
/// terms' places in the joined string; positions count terms (the index keeps no positions).
#[derive(Clone, Default)]
pub(crate) struct TermListTokenizer {
    token: Token,
}

pub(crate) struct TermListStream<'a> {
    text: &'a str,
    /// Byte offset of the next term.
    next: usize,
    token: &'a mut Token,
}

impl Tokenizer for TermListTokenizer {
    type TokenStream<'a> = TermListStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> TermListStream<'a> {
        self.token.reset();
        TermListStream {
            text,
            next: 0,
            token: &mut self.token,
        }
    }
}

impl TokenStream for TermListStream<'_> {
    fn advance(&mut self) -> bool {
        if self.next >= self.text.len() {
            return false;
        }
        let rest = &self.text[self.next..];
        // A byte search: the separator is ASCII, and `str::find(char)` costs twice as much.
        let len = rest.bytes().position(|b| b == TERM_SEPARATOR as u8);
        let term = &rest[..len.unwrap_or(rest.len())];
        self.token.text.clear();
        self.token.text.push_str(term);
        self.token.offset_from = self.next;
        self.token.offset_to = self.next + term.len();
        self.token.position = self.token.position.wrapping_add(1);
        self.next += term.len() + TERM_SEPARATOR.len_utf8();
        true
    }

    fn token(&self) -> &Token {
        self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        self.token
    }
}

/// Appends `term` to a field value for [`TermListTokenizer`].
pub(crate) fn push_term(value: &mut String, term: &str) {
    debug_assert!(!term.contains(TERM_SEPARATOR) && !term.is_empty());
    if !value.is_empty() {
        value.push(TERM_SEPARATOR);
    }
    value.push_str(term);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferret_text::{Analyzer, AnalyzerKind};

    fn split(value: &str) -> Vec<(String, usize, usize)> {
        let mut tokenizer = TermListTokenizer::default();
        let mut stream = tokenizer.token_stream(value);
        let mut out = Vec::new();
        while stream.advance() {
            let t = stream.token();
            out.push((t.text.clone(), t.offset_from, t.offset_to));
        }
        out
    }

    #[test]
    fn term_lists_round_trip() {
        let mut value = String::new();
        for term in ["cat", "ü", "1,000.5"] {
            push_term(&mut value, term);
        }
        assert_eq!(
            split(&value),
            [
                ("cat".to_string(), 0, 3),
                ("ü".to_string(), 4, 6),
                ("1,000.5".to_string(), 7, 14)
            ]
        );
        assert!(split("").is_empty());
    }

    #[test]
    fn no_analyzer_emits_the_separator() {
        let text = "a\0b 北京\0大学 x\u{0}\u{0}y \0 Cat\0's";
        for kind in [AnalyzerKind::En, AnalyzerKind::None, AnalyzerKind::Zh] {
            for term in Analyzer::new(kind).terms(text) {
                assert!(
                    !term.contains(TERM_SEPARATOR) && !term.is_empty(),
                    "{kind}: {term:?}"
                );
            }
        }
    }
}
