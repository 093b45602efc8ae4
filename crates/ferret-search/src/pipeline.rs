//! The pipeline expression language (the part the foundation needs; fusion and more operators
//! join it with the pipeline issue).
//!
//! ```text
//! pipeline := term ( ">>" term )*           a >> b: b consumes a's ranking as candidates
//! term     := atom ( "%" INTEGER )*          rank cut-off
//! atom     := NAME [ "(" [ arg ( "," arg )* ] ")" ] | "(" pipeline ")"
//! arg      := NAME "=" value
//! value    := NUMBER | NAME | STRING        STRING is '...' or "..."
//! ```
//! Whitespace is free. Example: `bm25(k1=0.9, b=0.4) % 1000`.

use serde::{Deserialize, Serialize};

use crate::SearchError;

/// A parsed pipeline. Every node keeps its position in the text for error messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Expr {
    Stage {
        name: String,
        #[serde(default)]
        args: Vec<Arg>,
        #[serde(skip)]
        position: usize,
    },
    Cutoff {
        input: Box<Expr>,
        k: usize,
    },
    Then {
        first: Box<Expr>,
        then: Box<Expr>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arg {
    pub name: String,
    pub value: Value,
    #[serde(skip)]
    pub position: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Number(f64),
    Text(String),
}

impl std::fmt::Display for Expr {
    /// The canonical text form; parsing it gives the same tree.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expr::Stage { name, args, .. } => {
                f.write_str(name)?;
                if !args.is_empty() {
                    f.write_str("(")?;
                    for (i, a) in args.iter().enumerate() {
                        if i > 0 {
                            f.write_str(", ")?;
                        }
                        match &a.value {
                            Value::Number(n) => write!(f, "{}={}", a.name, n)?,
                            Value::Text(t) => write!(f, "{}={:?}", a.name, t)?,
                        }
                    }
                    f.write_str(")")?;
                }
                Ok(())
            }
            Expr::Cutoff { input, k } => match **input {
                Expr::Then { .. } => write!(f, "({input}) % {k}"),
                _ => write!(f, "{input} % {k}"),
            },
            Expr::Then { first, then } => match **then {
                Expr::Then { .. } => write!(f, "{first} >> ({then})"),
                _ => write!(f, "{first} >> {then}"),
            },
        }
    }
}

/// Parses pipeline text. Errors carry the position and the text, for a caret display.
pub fn parse(text: &str) -> Result<Expr, SearchError> {
    let mut p = Parser { s: text, i: 0 };
    let result = (|| {
        p.skip_ws();
        if p.i >= text.len() {
            return Err(SearchError::at(0, "empty pipeline; try 'bm25'"));
        }
        let e = p.pipeline()?;
        p.skip_ws();
        if p.i < text.len() {
            return Err(SearchError::at(
                p.i,
                format!(
                    "unexpected '{}'; expected '>>', '%' or the end",
                    p.peek_char()
                ),
            ));
        }
        Ok(e)
    })();
    result.map_err(|e| e.with_source_text(text))
}

struct Parser<'a> {
    s: &'a str,
    i: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.s[self.i..]
    }

    fn peek_char(&self) -> char {
        self.rest().chars().next().unwrap_or(' ')
    }

    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start();
        self.i = self.s.len() - trimmed.len();
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_ws();
        if self.rest().starts_with(token) {
            self.i += token.len();
            true
        } else {
            false
        }
    }

    fn pipeline(&mut self) -> Result<Expr, SearchError> {
        let mut e = self.term()?;
        while self.eat(">>") {
            let then = self.term()?;
            e = Expr::Then {
                first: Box::new(e),
                then: Box::new(then),
            };
        }
        Ok(e)
    }

    fn term(&mut self) -> Result<Expr, SearchError> {
        let mut e = self.atom()?;
        while self.eat("%") {
            self.skip_ws();
            let at = self.i;
            let digits: String = self
                .rest()
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            self.i += digits.len();
            let k: usize = digits
                .parse()
                .map_err(|_| SearchError::at(at, "expected a whole number after '%'"))?;
            if k == 0 {
                return Err(SearchError::at(
                    at,
                    "the cut-off after '%' must be at least 1",
                ));
            }
            e = Expr::Cutoff {
                input: Box::new(e),
                k,
            };
        }
        Ok(e)
    }

    fn atom(&mut self) -> Result<Expr, SearchError> {
        self.skip_ws();
        if self.eat("(") {
            let e = self.pipeline()?;
            if !self.eat(")") {
                return Err(SearchError::at(self.i, "expected ')'"));
            }
            return Ok(e);
        }
        let position = self.i;
        let name = self.name();
        if name.is_empty() {
            return Err(SearchError::at(
                self.i,
                format!("expected a stage name, found '{}'", self.peek_char()),
            ));
        }
        let mut args = Vec::new();
        if self.eat("(") && !self.eat(")") {
            loop {
                args.push(self.arg()?);
                if self.eat(")") {
                    break;
                }
                if !self.eat(",") {
                    return Err(SearchError::at(self.i, "expected ',' or ')'"));
                }
            }
        }
        Ok(Expr::Stage {
            name,
            args,
            position,
        })
    }

    fn name(&mut self) -> String {
        self.skip_ws();
        let n: String = self
            .rest()
            .chars()
            .take_while(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
            .collect();
        self.i += n.len();
        n
    }

    fn arg(&mut self) -> Result<Arg, SearchError> {
        self.skip_ws();
        let position = self.i;
        let name = self.name();
        if name.is_empty() {
            return Err(SearchError::at(self.i, "expected an argument name"));
        }
        if !self.eat("=") {
            return Err(SearchError::at(
                self.i,
                format!("expected '=' after argument '{name}' (arguments are named: name=value)"),
            ));
        }
        self.skip_ws();
        let value_at = self.i;
        let value = match self.peek_char() {
            q @ ('\'' | '"') => {
                let body = &self.rest()[1..];
                let end = body
                    .find(q)
                    .ok_or_else(|| SearchError::at(value_at, "unterminated string"))?;
                let v = body[..end].to_string();
                self.i += end + 2;
                Value::Text(v)
            }
            _ => {
                let raw = self.name();
                if raw.is_empty() {
                    return Err(SearchError::at(
                        value_at,
                        format!("expected a value for '{name}'"),
                    ));
                }
                match raw.parse::<f64>() {
                    Ok(n) => Value::Number(n),
                    Err(_) => Value::Text(raw),
                }
            }
        };
        Ok(Arg {
            name,
            value,
            position,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stages_cutoffs_and_sequences() {
        let e = parse("bm25(k1=1.2, b=0.75) % 1000 >> bm25(title=2) % 10").unwrap();
        assert_eq!(
            e.to_string(),
            "bm25(k1=1.2, b=0.75) % 1000 >> bm25(title=2) % 10"
        );
        let again = parse(&e.to_string()).unwrap();
        assert_eq!(again.to_string(), e.to_string());
        assert!(matches!(parse(" bm25 ").unwrap(), Expr::Stage { ref name, .. } if name == "bm25"));
    }

    #[test]
    fn json_form_round_trips() {
        let e = parse("bm25(k1=1.2, name='x') % 5").unwrap();
        let json = serde_json::to_string(&e).unwrap();
        let back: Expr = serde_json::from_str(&json).unwrap();
        assert_eq!(back.to_string(), e.to_string());
    }

    #[test]
    fn errors_point_at_the_problem() {
        let err = parse("bm25(k1=0.9 b=0.4)").unwrap_err().to_string();
        assert!(err.contains("position 13: expected ',' or ')'"), "{err}");
        assert!(
            err.contains("\n  bm25(k1=0.9 b=0.4)\n              ^"),
            "{err}"
        );
        assert!(parse("bm25 % x")
            .unwrap_err()
            .to_string()
            .contains("whole number"));
        assert!(parse("bm25 %").is_err());
        assert!(parse("")
            .unwrap_err()
            .to_string()
            .contains("empty pipeline"));
        assert!(parse("bm25 >>")
            .unwrap_err()
            .to_string()
            .contains("expected a stage name"));
        assert!(parse("bm25(k1)")
            .unwrap_err()
            .to_string()
            .contains("expected '='"));
        assert!(parse("(bm25 % 10")
            .unwrap_err()
            .to_string()
            .contains("expected ')'"));
        assert!(parse("bm25 bm25")
            .unwrap_err()
            .to_string()
            .contains("unexpected 'b'"));
    }
}
