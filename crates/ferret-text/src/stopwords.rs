//! Lucene's English stop set (`EnglishAnalyzer.ENGLISH_STOP_WORDS_SET`), used by Anserini.

pub fn is_english_stop_word(word: &str) -> bool {
    // A match compiles to length and byte comparisons: cheaper than a set lookup per token.
    matches!(
        word,
        "a" | "an"
            | "and"
            | "are"
            | "as"
            | "at"
            | "be"
            | "but"
            | "by"
            | "for"
            | "if"
            | "in"
            | "into"
            | "is"
            | "it"
            | "no"
            | "not"
            | "of"
            | "on"
            | "or"
            | "such"
            | "that"
            | "the"
            | "their"
            | "then"
            | "there"
            | "these"
            | "they"
            | "this"
            | "to"
            | "was"
            | "will"
            | "with"
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn has_lucenes_33_words() {
        let text = "a an and are as at be but by for if in into is it no not of on or such that the their then there these they this to was will with";
        assert_eq!(
            text.split(' ')
                .filter(|w| super::is_english_stop_word(w))
                .count(),
            33
        );
        assert!(!super::is_english_stop_word("cell"));
    }
}
