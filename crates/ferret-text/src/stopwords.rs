//! Lucene's English stop set (`EnglishAnalyzer.ENGLISH_STOP_WORDS_SET`), used by Anserini.

const ENGLISH: [&str; 33] = [
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
    "they", "this", "to", "was", "will", "with",
];

pub fn is_english_stop_word(word: &str) -> bool {
    // 33 short words: a linear scan beats hashing here.
    word.len() <= 5 && ENGLISH.contains(&word)
}
