//! ferret-text: analyzers that turn text into index terms.
//!
//! * `en`: Anserini's default English analysis, token for token: Lucene's StandardTokenizer
//!   (Unicode UAX #29 word boundaries), English possessive removal, lower-casing, Lucene's
//!   English stop set, and Lucene's Porter stemmer. BM25 numbers match Anserini because the
//!   terms match.
//! * `none`: StandardTokenizer and lower-casing only (no stop words, no stemming). On Chinese
//!   text every Han character becomes its own token, so it doubles as the character-unigram
//!   analyzer (`zh-char` is accepted as its name for that use).
//! * `zh`: jieba word segmentation (HMM on), lower-cased, punctuation dropped.

mod porter;
mod standard;
mod stopwords;

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

pub use porter::PorterStemmer;
pub use stopwords::is_english_stop_word;

/// The analyzers ferret knows, by the names used on the command line and in manifests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnalyzerKind {
    En,
    None,
    Zh,
}

#[derive(Debug, thiserror::Error)]
#[error("unknown analyzer '{0}' (known: en, none, zh, zh-char)")]
pub struct UnknownAnalyzer(String);

impl FromStr for AnalyzerKind {
    type Err = UnknownAnalyzer;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "en" | "english" => Ok(AnalyzerKind::En),
            "none" | "zh-char" | "unigram" => Ok(AnalyzerKind::None),
            "zh" | "jieba" => Ok(AnalyzerKind::Zh),
            other => Err(UnknownAnalyzer(other.to_string())),
        }
    }
}

impl fmt::Display for AnalyzerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AnalyzerKind::En => "en",
            AnalyzerKind::None => "none",
            AnalyzerKind::Zh => "zh",
        })
    }
}

/// One output term with the byte span of the text it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token<'a> {
    pub text: &'a str,
    pub start: usize,
    pub end: usize,
    /// Position in the token stream, counting removed stop words (as Lucene does).
    pub position: usize,
}

/// An analyzer with its reusable buffers. Cheap to create; not shared between threads.
pub struct Analyzer {
    kind: AnalyzerKind,
    stemmer: PorterStemmer,
    /// Stems of the words seen so far: word frequencies are Zipfian, so most tokens are
    /// looked up here instead of stemmed again (stemming was a fifth of `en` analysis time).
    stems: FxHashMap<Box<str>, Box<str>>,
    lower: String,
}

/// Entries the stem cache holds before it starts over (a few MB).
const STEM_CACHE_ENTRIES: usize = 1 << 17;

impl Analyzer {
    pub fn new(kind: AnalyzerKind) -> Self {
        Analyzer {
            kind,
            stemmer: PorterStemmer::default(),
            stems: FxHashMap::default(),
            lower: String::new(),
        }
    }

    pub fn kind(&self) -> AnalyzerKind {
        self.kind
    }

    /// Calls `sink` for each term of `text`, in order.
    pub fn analyze(&mut self, text: &str, sink: &mut dyn FnMut(Token<'_>)) {
        match self.kind {
            AnalyzerKind::En | AnalyzerKind::None => self.analyze_standard(text, sink),
            AnalyzerKind::Zh => self.analyze_jieba(text, sink),
        }
    }

    /// Convenience: the terms of `text` as owned strings.
    pub fn terms(&mut self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        self.analyze(text, &mut |t| out.push(t.text.to_string()));
        out
    }

    fn analyze_standard(&mut self, text: &str, sink: &mut dyn FnMut(Token<'_>)) {
        let english = self.kind == AnalyzerKind::En;
        let Analyzer {
            stemmer,
            stems,
            lower,
            ..
        } = self;
        let mut next_position = 0;
        standard::for_each_word(text, &mut |start, word| {
            let position = next_position;
            next_position += 1;
            let word = if english {
                strip_possessive(word)
            } else {
                word
            };
            lowercase_into(word, lower);
            let end = start + word.len();
            let mut emit = |text: &str| {
                sink(Token {
                    text,
                    start,
                    end,
                    position,
                })
            };
            if !english {
                return emit(lower);
            }
            if stopwords::is_english_stop_word(lower) {
                return;
            }
            if let Some(stem) = stems.get(lower.as_str()) {
                return emit(stem);
            }
            if stems.len() >= STEM_CACHE_ENTRIES {
                stems.clear();
            }
            let mut stem = String::new();
            stemmer.stem_into(lower, &mut stem);
            emit(&stem);
            stems.insert(lower.as_str().into(), stem.into_boxed_str());
        });
    }

    fn analyze_jieba(&mut self, text: &str, sink: &mut dyn FnMut(Token<'_>)) {
        static JIEBA: OnceLock<jieba_rs::Jieba> = OnceLock::new();
        let jieba = JIEBA.get_or_init(jieba_rs::Jieba::new);
        let mut position = 0;
        for token in jieba.cut(text, true) {
            if !token.word.chars().any(char::is_alphanumeric) {
                continue; // punctuation and spaces
            }
            lowercase_into(token.word, &mut self.lower);
            sink(Token {
                text: &self.lower,
                start: token.byte_start,
                end: token.byte_end,
                position,
            });
            position += 1;
        }
    }
}

/// Lucene's EnglishPossessiveFilter: drops a trailing `'s`, `’s` or `＇s` (either case of s).
fn strip_possessive(word: &str) -> &str {
    if !word.ends_with(['s', 'S']) {
        return word;
    }
    for apostrophe in ['\'', '\u{2019}', '\u{FF07}'] {
        for s in ['s', 'S'] {
            let mut suffix = [0u8; 8];
            let a = apostrophe.encode_utf8(&mut suffix).len();
            let b = s.encode_utf8(&mut suffix[a..]).len();
            let suffix = std::str::from_utf8(&suffix[..a + b]).expect("built from chars");
            if let Some(stripped) = word.strip_suffix(suffix) {
                return stripped;
            }
        }
    }
    word
}

fn lowercase_into(word: &str, out: &mut String) {
    out.clear();
    if word.is_ascii() {
        out.push_str(word);
        out.make_ascii_lowercase();
    } else {
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(kind: &str, text: &str) -> Vec<String> {
        Analyzer::new(kind.parse().unwrap()).terms(text)
    }

    #[test]
    fn english_matches_lucene_english_analyzer() {
        assert_eq!(
            terms(
                "en",
                "The Cat's 0-dimensional biomaterials show inductive properties."
            ),
            [
                "cat",
                "0",
                "dimension",
                "biomateri",
                "show",
                "induct",
                "properti"
            ]
        );
        assert_eq!(
            terms("en", "U.S.A. exports 1,000.5 tons; it's JOHN’S e-mail"),
            ["u.s.a", "export", "1,000.5", "ton", "john", "e", "mail"]
        );
    }

    #[test]
    fn cached_stems_equal_fresh_ones_past_the_cache_size() {
        let words: Vec<String> = (0..STEM_CACHE_ENTRIES + 1000)
            .map(|i| format!("relational{}ations", i % 997 + i / 997 * 1000))
            .chain(["caresses", "ponies", "hopping", "relational"].map(String::from))
            .collect();
        let text = words.join(" ");
        let mut analyzer = Analyzer::new(AnalyzerKind::En);
        // Twice: the second pass reads stems from a cache that was cleared once on the way.
        for _ in 0..2 {
            let got = analyzer.terms(&text);
            let mut stemmer = PorterStemmer::default();
            let want: Vec<String> = words
                .iter()
                .map(|w| {
                    let mut s = String::new();
                    stemmer.stem_into(w, &mut s);
                    s
                })
                .collect();
            assert_eq!(got, want);
        }
        assert!(analyzer.stems.len() <= STEM_CACHE_ENTRIES);
    }

    #[test]
    fn positions_count_removed_stop_words() {
        let mut a = Analyzer::new(AnalyzerKind::En);
        let mut got = Vec::new();
        a.analyze("the quick fox", &mut |t| {
            got.push((t.text.to_string(), t.position, t.start))
        });
        assert_eq!(
            got,
            [("quick".to_string(), 1, 4), ("fox".to_string(), 2, 10)]
        );
    }

    #[test]
    fn none_keeps_stop_words_and_splits_han_characters() {
        assert_eq!(terms("none", "The Cats"), ["the", "cats"]);
        assert_eq!(
            terms("zh-char", "北京大学ABC"),
            ["北", "京", "大", "学", "abc"]
        );
    }

    #[test]
    fn chinese_uses_word_segmentation() {
        let t = terms("zh", "我来到北京清华大学。");
        assert!(
            t.contains(&"清华大学".to_string()) || t.contains(&"清华".to_string()),
            "{t:?}"
        );
        assert!(!t.iter().any(|w| w == "。"));
    }

    #[test]
    fn unknown_analyzer_is_an_error() {
        assert!("klingon".parse::<AnalyzerKind>().is_err());
    }
}
