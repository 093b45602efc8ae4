//! Lucene's StandardTokenizer: Unicode UAX #29 word boundaries, keeping the segments that
//! hold a letter, digit or ideograph, split into pieces of at most 255 characters
//! (Lucene's default maximum token length).

use unicode_segmentation::UnicodeSegmentation;

const MAX_TOKEN_CHARS: usize = 255;

/// (byte offset, word) for each token of `text`.
pub fn words(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split_word_bound_indices()
        .filter(|(_, w)| w.chars().any(char::is_alphanumeric))
        .flat_map(|(start, w)| split_long(start, w))
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
    fn long_tokens_are_split_at_255_characters() {
        let long = "x".repeat(600);
        let lens: Vec<usize> = words(&long).map(|(_, w)| w.len()).collect();
        assert_eq!(lens, [255, 255, 90]);
    }
}
