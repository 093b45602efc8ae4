//! Lucene's StandardTokenizer: Unicode UAX #29 word boundaries, keeping the segments Lucene
//! makes tokens of — those holding a letter or ideograph, a decimal digit, or an emoji — split
//! into pieces of at most 255 characters (Lucene's default maximum token length).
//!
//! Superscripts and other non-decimal numbers (², ₂, ½) are not tokens in Lucene, and symbols
//! such as © or ↔ are (its EMOJI type); checked on all of SciFact against Anserini.
//!
//! Speed: `unicode-segmentation` has a fast path for ASCII strings only. Most English text is
//! ASCII with a few non-ASCII characters (a µ, an é), so the text is cut into regions at
//! places where UAX #29 always breaks whatever the context — after a run of ASCII white space
//! that an ASCII character follows (white space is no letter, digit or mid-word punctuation,
//! and only Extend, Format or ZWJ, all non-ASCII, would join it to what follows) — and each
//! region is segmented on its own: ASCII regions on the fast path, the others with the full
//! rules. A test checks this gives the tokens of segmenting the whole text at once on every
//! document of the shared corpora.

use unicode_properties::{GeneralCategory, UnicodeEmoji, UnicodeGeneralCategory};
use unicode_segmentation::UnicodeSegmentation;

const MAX_TOKEN_CHARS: usize = 255;

/// Calls `f(byte offset, word)` for each token of `text`, in order.
pub fn for_each_word<'t>(text: &'t str, f: &mut impl FnMut(usize, &'t str)) {
    let bytes = text.as_bytes();
    let mut start = 0;
    while start < bytes.len() {
        let Some(first_non_ascii) = bytes[start..].iter().position(|b| !b.is_ascii()) else {
            ascii_region(&text[start..], start, f);
            return;
        };
        let first_non_ascii = start + first_non_ascii;
        let split = (start + 1..first_non_ascii)
            .rev()
            .find(|&i| safe_split(bytes, i))
            .unwrap_or(start);
        if split > start {
            ascii_region(&text[start..split], start, f);
        }
        let end = (first_non_ascii + 1..bytes.len())
            .find(|&i| safe_split(bytes, i))
            .unwrap_or(bytes.len());
        unicode_region(&text[split..end], split, f);
        start = end;
    }
}

/// Whether UAX #29 breaks before byte `i` whatever comes before or after: `i` follows ASCII
/// white space and starts an ASCII character that is not white space.
fn safe_split(bytes: &[u8], i: usize) -> bool {
    is_space(bytes[i - 1]) && bytes[i].is_ascii() && !is_space(bytes[i])
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0B | 0x0C)
}

fn ascii_region<'t>(region: &'t str, offset: usize, f: &mut impl FnMut(usize, &'t str)) {
    // For ASCII, unicode_word_indices keeps exactly the segments with a letter or a digit.
    for (start, word) in region.unicode_word_indices() {
        split_long(offset + start, word, f);
    }
}

fn unicode_region<'t>(region: &'t str, offset: usize, f: &mut impl FnMut(usize, &'t str)) {
    for (start, word) in region.split_word_bound_indices() {
        if word.chars().any(starts_token) {
            split_long(offset + start, word, f);
        }
    }
}

/// Whether a segment holding `c` is a token: a letter (ideographs and kana included), a
/// decimal digit, or an emoji other than the ASCII keycap bases (# * 0-9).
fn starts_token(c: char) -> bool {
    c.is_alphabetic()
        || c.general_category() == GeneralCategory::DecimalNumber
        || (!c.is_ascii() && c.is_emoji_char())
}

fn split_long<'t>(start: usize, word: &'t str, f: &mut impl FnMut(usize, &'t str)) {
    if word.len() <= MAX_TOKEN_CHARS {
        return f(start, word);
    }
    let mut rest = word;
    let mut offset = start;
    while !rest.is_empty() {
        let cut = rest
            .char_indices()
            .nth(MAX_TOKEN_CHARS)
            .map_or(rest.len(), |(i, _)| i);
        f(offset, &rest[..cut]);
        offset += cut;
        rest = &rest[cut..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;

    fn words(text: &str) -> Vec<(usize, &str)> {
        let mut out = Vec::new();
        for_each_word(text, &mut |start, word| out.push((start, word)));
        out
    }

    /// The tokens of segmenting the whole text at once, with the full rules.
    fn whole_text_words(text: &str) -> Vec<(usize, &str)> {
        let mut out = Vec::new();
        for (start, word) in text.split_word_bound_indices() {
            if word.chars().any(starts_token) {
                split_long(start, word, &mut |s, w| out.push((s, w)));
            }
        }
        out
    }

    fn tokens(text: &str) -> Vec<&str> {
        words(text).into_iter().map(|(_, w)| w).collect()
    }

    #[test]
    fn tokens_are_lucenes_word_types() {
        assert_eq!(
            tokens("5 mg/m² CO₂ © 2010 ½ ↔ x"),
            ["5", "mg", "m", "CO", "©", "2010", "↔", "x"]
        );
    }

    #[test]
    fn long_tokens_are_split_at_255_characters() {
        let long = "x".repeat(600);
        let lens: Vec<usize> = words(&long).iter().map(|(_, w)| w.len()).collect();
        assert_eq!(lens, [255, 255, 90]);
        let long = format!("é{}", "x".repeat(300));
        let lens: Vec<usize> = words(&long).iter().map(|(_, w)| w.len()).collect();
        assert_eq!(lens, [256, 46]);
    }

    #[test]
    fn regions_give_the_tokens_of_the_whole_text() {
        let texts = [
            "U.S. naïve \u{301}x e\u{301}a 3,5 µg\tend",
            "a \u{200d}b \u{ad}c\r\n\u{301} 1.5\u{a0}2 can't ü'b \u{1F1E9}\u{1F1EA}x",
            "\u{5d0}\"\u{5d1} 1.\u{660} \u{30a2}\u{30a2} a:b a_b __ x\u{b}y",
            "ends with é",
            "é",
            "",
        ];
        for text in texts {
            assert_eq!(words(text), whole_text_words(text), "{text:?}");
        }
    }

    /// Every title and text of the shared corpora (SciFact, Cranfield, CISI, CMRC 2018):
    /// segmenting by regions gives the tokens of segmenting each text at once.
    #[test]
    fn regions_give_the_tokens_of_the_whole_text_on_the_shared_corpora() {
        let data = std::env::var_os("FERRET_DATA").map_or_else(
            || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
            std::path::PathBuf::from,
        );
        let mut texts = 0;
        for name in ["beir-scifact", "cranfield", "cisi", "cmrc2018-zh-retrieval"] {
            let path = data.join(name).join("corpus.jsonl.gz");
            let file = std::fs::File::open(&path).unwrap_or_else(|e| {
                panic!(
                    "{}: {e} — set FERRET_DATA to the shared data folder",
                    path.display()
                )
            });
            for line in std::io::BufReader::new(flate2::read::GzDecoder::new(file)).lines() {
                let doc: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
                for field in ["title", "text"] {
                    let text = doc[field].as_str().unwrap_or_default();
                    assert_eq!(words(text), whole_text_words(text), "{name}: {text:?}");
                    texts += 1;
                }
            }
        }
        assert!(texts > 18_000, "only {texts} texts read");
    }
}
