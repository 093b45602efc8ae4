//! The lexical representation: an inverted index on tantivy.
//!
//! ferret analyzes text itself ([`ferret_text`]) and hands tantivy pre-tokenized terms, so the
//! same analyzer serves indexing and queries and tantivy needs no tokenizer registry. Besides
//! postings with term frequencies and tantivy's field norms (the same lossy one-byte length
//! code as Lucene's `SmallFloat.intToByte4`, which BM25 uses), each document stores its internal
//! number (`ord`) and the exact token count of each text field (`len_<field>`), so collection
//! statistics stay exact over live documents after deletes.

pub mod bm25;
mod reader;
mod writer;

pub use reader::{FieldStats, LexicalReader};
pub use writer::LexicalWriter;

use serde::{Deserialize, Serialize};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST, STRING,
};

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
            .set_tokenizer("raw")
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
