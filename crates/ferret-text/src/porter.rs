//! The Porter stemmer exactly as Lucene's `PorterStemmer` (used by Anserini's default English
//! analyzer) implements it: Martin Porter's original 1980 algorithm in its "Release 3" C form,
//! including Lucene's departures (words of one or two letters are left alone; `y` at the start
//! is a consonant). Written by hand because no maintained Rust crate implements *this* variant
//! (rust-stemmers has Snowball's Porter2, which stems differently and would change BM25
//! numbers).
//!
//! Steps are named as in the paper: 1ab (plurals, -ed, -ing), 1c (y→i), 2, 3, 4, 5.

/// A reusable stemmer; keeps its buffer between words.
#[derive(Default)]
pub struct PorterStemmer {
    b: Vec<char>,
    /// Index of the last character of the current word.
    k: usize,
    /// End of the stem found by the last successful `ends`.
    j: usize,
}

impl PorterStemmer {
    /// Stems `word` (already lower-cased) into `out`.
    pub fn stem_into(&mut self, word: &str, out: &mut String) {
        out.clear();
        self.b.clear();
        self.b.extend(word.chars());
        if self.b.len() > 2 {
            self.k = self.b.len() - 1;
            self.step1ab();
            self.step1c();
            self.step2();
            self.step3();
            self.step4();
            self.step5();
            self.b.truncate(self.k + 1);
        }
        out.extend(self.b.iter());
    }

    fn cons(&self, i: usize) -> bool {
        match self.b[i] {
            'a' | 'e' | 'i' | 'o' | 'u' => false,
            'y' => i == 0 || !self.cons(i - 1),
            _ => true,
        }
    }

    /// m(): the number of consonant-vowel sequences in b[0..=j] (the stem's "measure").
    fn m(&self) -> usize {
        let (j, mut n, mut i) = (self.j as isize, 0, 0isize);
        loop {
            if i > j {
                return n;
            }
            if !self.cons(i as usize) {
                break;
            }
            i += 1;
        }
        i += 1;
        loop {
            loop {
                if i > j {
                    return n;
                }
                if self.cons(i as usize) {
                    break;
                }
                i += 1;
            }
            i += 1;
            n += 1;
            loop {
                if i > j {
                    return n;
                }
                if !self.cons(i as usize) {
                    break;
                }
                i += 1;
            }
            i += 1;
        }
    }

    fn vowel_in_stem(&self) -> bool {
        (0..=self.j).any(|i| !self.cons(i))
    }

    fn double_c(&self, j: usize) -> bool {
        j >= 1 && self.b[j] == self.b[j - 1] && self.cons(j)
    }

    /// cvc(i): b[i-2..=i] is consonant-vowel-consonant and the last is not w, x or y.
    fn cvc(&self, i: usize) -> bool {
        if i < 2 || !self.cons(i) || self.cons(i - 1) || !self.cons(i - 2) {
            return false;
        }
        !matches!(self.b[i], 'w' | 'x' | 'y')
    }

    /// Whether b[..=k] ends with `s`; if so sets j to the index before the suffix.
    /// Lucene keeps j as a signed index; a suffix spanning the whole word leaves j "before 0",
    /// which we represent by refusing the match where a later `m()` would read j = -1
    /// (only "ion" in step 4 could, and it checks b[j] first).
    fn ends(&mut self, s: &str) -> bool {
        let l = s.chars().count();
        if l > self.k + 1 {
            return false;
        }
        let o = self.k + 1 - l;
        if !self.b[o..=self.k].iter().copied().eq(s.chars()) {
            return false;
        }
        self.j = o.wrapping_sub(1);
        true
    }

    fn j_valid(&self) -> bool {
        self.j != usize::MAX
    }

    fn set_to(&mut self, s: &str) {
        let o = self.j.wrapping_add(1);
        self.b.truncate(o);
        self.b.extend(s.chars());
        self.k = self.b.len() - 1;
    }

    /// r(s): replace the suffix by `s` when the stem's measure is positive.
    fn r(&mut self, s: &str) {
        if self.j_valid() && self.m() > 0 {
            self.set_to(s);
        }
    }

    /// Step 1ab: plurals, -eed, -ed, -ing (caresses→caress, ponies→poni, agreed→agree,
    /// hopping→hop, filing→file).
    fn step1ab(&mut self) {
        if self.b[self.k] == 's' {
            if self.ends("sses") {
                self.k -= 2;
            } else if self.ends("ies") {
                self.set_to("i");
            } else if self.b[self.k - 1] != 's' {
                self.k -= 1;
            }
        }
        if self.ends("eed") {
            if self.j_valid() && self.m() > 0 {
                self.k -= 1;
            }
        } else if (self.ends("ed") || self.ends("ing")) && self.j_valid() && self.vowel_in_stem() {
            self.k = self.j;
            if self.ends("at") {
                self.set_to("ate");
            } else if self.ends("bl") {
                self.set_to("ble");
            } else if self.ends("iz") {
                self.set_to("ize");
            } else if self.double_c(self.k) {
                let ch = self.b[self.k];
                if !matches!(ch, 'l' | 's' | 'z') {
                    self.k -= 1;
                }
            } else {
                self.j = self.k;
                if self.m() == 1 && self.cvc(self.k) {
                    self.set_to("e");
                }
            }
        }
    }

    /// Step 1c: terminal y → i when the stem has a vowel.
    fn step1c(&mut self) {
        if self.ends("y") && self.j_valid() && self.vowel_in_stem() {
            self.b[self.k] = 'i';
        }
    }

    /// Step 2: double suffixes to single ones (-ization → -ize, -ational → -ate, ...).
    fn step2(&mut self) {
        if self.k == 0 {
            return;
        }
        const RULES: &[(char, &[(&str, &str)])] = &[
            ('a', &[("ational", "ate"), ("tional", "tion")]),
            ('c', &[("enci", "ence"), ("anci", "ance")]),
            ('e', &[("izer", "ize")]),
            (
                'l',
                &[
                    ("bli", "ble"),
                    ("alli", "al"),
                    ("entli", "ent"),
                    ("eli", "e"),
                    ("ousli", "ous"),
                ],
            ),
            (
                'o',
                &[("ization", "ize"), ("ation", "ate"), ("ator", "ate")],
            ),
            (
                's',
                &[
                    ("alism", "al"),
                    ("iveness", "ive"),
                    ("fulness", "ful"),
                    ("ousness", "ous"),
                ],
            ),
            ('t', &[("aliti", "al"), ("iviti", "ive"), ("biliti", "ble")]),
            ('g', &[("logi", "log")]),
        ];
        self.apply_rules(self.b[self.k - 1], RULES);
    }

    /// Step 3: -ic-, -full, -ness etc.
    fn step3(&mut self) {
        const RULES: &[(char, &[(&str, &str)])] = &[
            ('e', &[("icate", "ic"), ("ative", ""), ("alize", "al")]),
            ('i', &[("iciti", "ic")]),
            ('l', &[("ical", "ic"), ("ful", "")]),
            ('s', &[("ness", "")]),
        ];
        self.apply_rules(self.b[self.k], RULES);
    }

    /// The first suffix of the group selected by `key` that matches is replaced (if m() > 0);
    /// later suffixes of the group are not tried, as in Lucene's `break`s.
    fn apply_rules(&mut self, key: char, rules: &[(char, &[(&str, &str)])]) {
        if let Some((_, group)) = rules.iter().find(|(c, _)| *c == key) {
            for (suffix, replacement) in group.iter() {
                if self.ends(suffix) {
                    self.r(replacement);
                    return;
                }
            }
        }
    }

    /// Step 4: remove -ant, -ence, ... when the measure of the stem is > 1.
    fn step4(&mut self) {
        if self.k == 0 {
            return;
        }
        let matched = match self.b[self.k - 1] {
            'a' => self.ends("al"),
            'c' => self.ends("ance") || self.ends("ence"),
            'e' => self.ends("er"),
            'i' => self.ends("ic"),
            'l' => self.ends("able") || self.ends("ible"),
            'n' => self.ends("ant") || self.ends("ement") || self.ends("ment") || self.ends("ent"),
            'o' => {
                (self.ends("ion") && self.j_valid() && matches!(self.b[self.j], 's' | 't'))
                    || self.ends("ou")
            }
            's' => self.ends("ism"),
            't' => self.ends("ate") || self.ends("iti"),
            'u' => self.ends("ous"),
            'v' => self.ends("ive"),
            'z' => self.ends("ize"),
            _ => false,
        };
        if matched && self.j_valid() && self.m() > 1 {
            self.k = self.j;
        }
    }

    /// Step 5: remove a final -e if m() > 1 (or m() = 1 and not cvc), and -ll → -l if m() > 1.
    fn step5(&mut self) {
        self.j = self.k;
        if self.b[self.k] == 'e' {
            let a = self.m();
            if a > 1 || (a == 1 && !self.k.checked_sub(1).is_some_and(|i| self.cvc(i))) {
                self.k -= 1;
            }
        }
        if self.b[self.k] == 'l' && self.double_c(self.k) && self.m() > 1 {
            self.k -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stem(w: &str) -> String {
        let mut s = PorterStemmer::default();
        let mut out = String::new();
        s.stem_into(w, &mut out);
        out
    }

    #[test]
    fn examples_from_porters_paper() {
        for (w, want) in [
            ("caresses", "caress"),
            ("ponies", "poni"),
            ("ties", "ti"),
            ("caress", "caress"),
            ("cats", "cat"),
            ("feed", "feed"),
            ("agreed", "agre"),
            ("plastered", "plaster"),
            ("bled", "bled"),
            ("motoring", "motor"),
            ("sing", "sing"),
            ("conflated", "conflat"),
            ("troubled", "troubl"),
            ("sized", "size"),
            ("hopping", "hop"),
            ("tanned", "tan"),
            ("falling", "fall"),
            ("hissing", "hiss"),
            ("fizzed", "fizz"),
            ("failing", "fail"),
            ("filing", "file"),
            ("happy", "happi"),
            ("sky", "sky"),
            ("relational", "relat"),
            ("conditional", "condit"),
            ("rational", "ration"),
            ("valenci", "valenc"),
            ("digitizer", "digit"),
            ("conformabli", "conform"),
            ("radicalli", "radic"),
            ("differentli", "differ"),
            ("vileli", "vile"),
            ("analogousli", "analog"),
            ("vietnamization", "vietnam"),
            ("predication", "predic"),
            ("operator", "oper"),
            ("feudalism", "feudal"),
            ("decisiveness", "decis"),
            ("hopefulness", "hope"),
            ("callousness", "callous"),
            ("formaliti", "formal"),
            ("sensitiviti", "sensit"),
            ("sensibiliti", "sensibl"),
            ("triplicate", "triplic"),
            ("formative", "form"),
            ("formalize", "formal"),
            ("electriciti", "electr"),
            ("electrical", "electr"),
            ("hopeful", "hope"),
            ("goodness", "good"),
            ("revival", "reviv"),
            ("allowance", "allow"),
            ("inference", "infer"),
            ("airliner", "airlin"),
            ("gyroscopic", "gyroscop"),
            ("adjustable", "adjust"),
            ("defensible", "defens"),
            ("irritant", "irrit"),
            ("replacement", "replac"),
            ("adjustment", "adjust"),
            ("dependent", "depend"),
            ("adoption", "adopt"),
            ("homologou", "homolog"),
            ("communism", "commun"),
            ("activate", "activ"),
            ("angulariti", "angular"),
            ("homologous", "homolog"),
            ("effective", "effect"),
            ("bowdlerize", "bowdler"),
            ("probate", "probat"),
            ("rate", "rate"),
            ("cease", "ceas"),
            ("controll", "control"),
            ("roll", "roll"),
        ] {
            assert_eq!(stem(w), want, "{w}");
        }
    }

    #[test]
    fn short_words_and_edge_cases() {
        assert_eq!(stem("is"), "is");
        assert_eq!(stem("as"), "as");
        assert_eq!(stem("ion"), "ion");
        assert_eq!(stem("eed"), "eed");
        assert_eq!(stem("ied"), "i");
        assert_eq!(stem("ying"), "ying");
        assert_eq!(stem("generalizations"), "gener");
        assert_eq!(stem("oscillators"), "oscil");
        assert_eq!(stem("naïve"), "naïv");
    }
}
