//! Lucene's StandardTokenizer: Unicode UAX #29 word boundaries, keeping the segments Lucene
//! makes tokens of — those holding a letter or ideograph, a decimal digit, or an emoji — split
//! into pieces of at most 255 characters (Lucene's default maximum token length).
//!
//! Superscripts and other non-decimal numbers (², ₂, ½) are not tokens in Lucene, and symbols
//! such as © or ↔ are (its EMOJI type); checked on all of SciFact against Anserini.

use unicode_properties::{GeneralCategory, UnicodeEmoji, UnicodeGeneralCategory};
use unicode_segmentation::UnicodeSegmentation;

const MAX_TOKEN_CHARS: usize = 255;

/// (byte offset, word) for each token of `text`.
pub fn words(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split_word_bound_indices()
        .filter(|(_, w)| w.chars().any(starts_token))
        .flat_map(|(start, w)| split_long(start, w))
}

/// Whether a segment holding `c` is a token: a letter (ideographs and kana included), a
/// decimal digit, or an emoji other than the ASCII keycap bases (# * 0-9).
fn starts_token(c: char) -> bool {
    c.is_alphabetic()
        || c.general_category() == GeneralCategory::DecimalNumber
        || (!c.is_ascii() && c.is_emoji_char())
}

fn split_long(start: usize, word: &str) -> Vec<(usize, &str)> {
    if word.len() <= MAX_TOKEN_CHARS {
        return vec![(start, word)];
    }
    let mut pieces = Vec::new();
    let mut rest = word;
    let mut offset = start;
    while !rest.is_empty() {
        let cut = rest
            .char_indices()
            .nth(MAX_TOKEN_CHARS)
            .map_or(rest.len(), |(i, _)| i);
        pieces.push((offset, &rest[..cut]));
        offset += cut;
        rest = &rest[cut..];
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_lucenes_word_types() {
        let got: Vec<&str> = words("5 mg/m² CO₂ © 2010 ½ ↔ x").map(|(_, w)| w).collect();
        assert_eq!(got, ["5", "mg", "m", "CO", "©", "2010", "↔", "x"]);
    }

    #[test]
    fn long_tokens_are_split_at_255_characters() {
        let long = "x".repeat(600);
        let lens: Vec<usize> = words(&long).map(|(_, w)| w.len()).collect();
        assert_eq!(lens, [255, 255, 90]);
    }
}
