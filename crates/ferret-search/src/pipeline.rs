//! The pipeline expression language: a text form for the command line and a JSON form (the
//! serde form of [`Expr`]) for HTTP, both giving the same tree.
//!
//! ```text
//! program  := ( "let" NAME "=" pipeline ";" )* pipeline
//! pipeline := term ( ">>" term )*            a >> b: b consumes a's ranking
//! term     := atom ( "%" INTEGER )*          rank cut-off (k >= 1)
//! atom     := NAME [ "(" [ item ( "," item )* ] ")" ]
//!           | "(" pipeline ")"
//!           | "$" NAME                       a pipeline defined with let
//! item     := NAME "=" value                 a named argument
//!           | pipeline                       an input (fusion stages take several)
//! value    := NUMBER | NAME | STRING | "[" NUMBER ( "," NUMBER )* "]"
//! ```
//! STRING is '...' or "...". Whitespace is free. Examples:
//!
//! ```text
//! bm25(k1=0.9, b=0.4) % 1000 >> rm3(fb_docs=10, fb_terms=10)
//! let lex = bm25 % 1000; let sem = dense % 1000; rrf($lex, $sem, k=60)
//! ```
//! `let` definitions are expanded where they are used, so the tree (and the JSON form) holds
//! no variables.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::SearchError;

/// A parsed pipeline. Every node keeps its position in the text for error messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Expr {
    Stage {
        name: String,
        /// Input pipelines, for stages that combine several (fusion).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        inputs: Vec<Expr>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
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
#[serde(deny_unknown_fields)]
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
    List(Vec<f64>),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Number(n) => write!(f, "{n}"),
            Value::Text(t) => {
                let bare = !t.is_empty()
                    && t.parse::<f64>().is_err()
                    && t.chars().all(is_name_char)
                    && !t.starts_with(['-', '.', '/']);
                if bare {
                    f.write_str(t)
                } else if t.contains('\'') {
                    write!(f, "\"{t}\"")
                } else {
                    write!(f, "'{t}'")
                }
            }
            Value::List(items) => {
                f.write_str("[")?;
                for (i, n) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{n}")?;
                }
                f.write_str("]")
            }
        }
    }
}

impl std::fmt::Display for Expr {
    /// The canonical text form; parsing it gives the same tree.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expr::Stage {
                name, inputs, args, ..
            } => {
                f.write_str(name)?;
                if !inputs.is_empty() || !args.is_empty() {
                    f.write_str("(")?;
                    let mut first = true;
                    for input in inputs {
                        if !first {
                            f.write_str(", ")?;
                        }
                        first = false;
                        write!(f, "{input}")?;
                    }
                    for a in args {
                        if !first {
                            f.write_str(", ")?;
                        }
                        first = false;
                        write!(f, "{}={}", a.name, a.value)?;
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

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/')
}

/// Whether `text` is a pipeline in JSON form.
pub fn is_json(text: &str) -> bool {
    text.trim_start().starts_with('{')
}

/// Parses a pipeline in either form: JSON (the serde form of [`Expr`]) when it starts with
/// `{`, the text language otherwise.
pub fn parse_any(text: &str) -> Result<Expr, SearchError> {
    if is_json(text) {
        serde_json::from_str(text).map_err(|e| SearchError::Invalid(format!("pipeline JSON: {e}")))
    } else {
        parse(text)
    }
}

/// Parses pipeline text. Errors carry the position and the text, for a caret display.
pub fn parse(text: &str) -> Result<Expr, SearchError> {
    let mut p = Parser {
        s: text,
        i: 0,
        defs: HashMap::new(),
        depth: 0,
    };
    let result = (|| {
        p.skip_ws();
        if p.i >= text.len() {
            return Err(SearchError::at(0, "empty pipeline; try 'bm25'"));
        }
        p.definitions()?;
        p.skip_ws();
        if p.i >= text.len() {
            return Err(SearchError::at(
                p.i,
                "expected the pipeline after the definitions",
            ));
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

/// How deeply parentheses and inputs may nest: a bound that keeps hostile input from
/// exhausting the stack.
const MAX_NESTING: usize = 64;

struct Parser<'a> {
    s: &'a str,
    i: usize,
    defs: HashMap<String, Expr>,
    depth: usize,
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

    /// `let NAME = pipeline;` definitions at the start of the text.
    fn definitions(&mut self) -> Result<(), SearchError> {
        loop {
            self.skip_ws();
            let rest = self.rest();
            if !(rest.starts_with("let") && rest[3..].starts_with(char::is_whitespace)) {
                return Ok(());
            }
            self.i += 3;
            self.skip_ws();
            let at = self.i;
            let name = self.name();
            if name.is_empty() {
                return Err(SearchError::at(at, "expected a name after 'let'"));
            }
            if !self.eat("=") {
                return Err(SearchError::at(
                    self.i,
                    format!("expected '=' after 'let {name}'"),
                ));
            }
            let e = self.pipeline()?;
            if !self.eat(";") {
                return Err(SearchError::at(
                    self.i,
                    format!("expected ';' after the definition of '{name}'"),
                ));
            }
            if self.defs.insert(name.clone(), e).is_some() {
                return Err(SearchError::at(at, format!("'{name}' is defined twice")));
            }
        }
    }

    fn pipeline(&mut self) -> Result<Expr, SearchError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(SearchError::at(
                self.i,
                format!("pipeline nested more than {MAX_NESTING} levels deep"),
            ));
        }
        let result = self.sequence();
        self.depth -= 1;
        result
    }

    fn sequence(&mut self) -> Result<Expr, SearchError> {
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
        if self.eat("$") {
            let at = self.i;
            let name = self.name();
            return match self.defs.get(&name) {
                Some(e) => Ok(e.clone()),
                None => {
                    let known: Vec<&str> = self.defs.keys().map(String::as_str).collect();
                    Err(SearchError::at(
                        at,
                        if known.is_empty() {
                            format!("'${name}' is not defined (define it first: let {name} = ...;)")
                        } else {
                            format!("'${name}' is not defined (defined: {})", known.join(", "))
                        },
                    ))
                }
            };
        }
        let position = self.i;
        let name = self.name();
        if name.is_empty() {
            return Err(SearchError::at(
                self.i,
                format!("expected a stage name, found '{}'", self.peek_char()),
            ));
        }
        if name == "let" {
            return Err(SearchError::at(
                position,
                "'let' is not a stage: definitions (let name = pipeline;) come first",
            ));
        }
        let mut inputs = Vec::new();
        let mut args = Vec::new();
        if self.eat("(") && !self.eat(")") {
            loop {
                if self.at_argument() {
                    args.push(self.arg()?);
                } else {
                    if !args.is_empty() {
                        return Err(SearchError::at(
                            self.i,
                            "input pipelines come before the named arguments",
                        ));
                    }
                    inputs.push(self.pipeline()?);
                }
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
            inputs,
            args,
            position,
        })
    }

    /// Whether the next item in a stage's parentheses is `name=value` (else it is an input).
    fn at_argument(&mut self) -> bool {
        let start = self.i;
        let name = self.name();
        let result = !name.is_empty() && {
            self.skip_ws();
            self.rest().starts_with('=')
        };
        self.i = start;
        result
    }

    fn name(&mut self) -> String {
        self.skip_ws();
        let n: String = self
            .rest()
            .chars()
            .take_while(|&c| is_name_char(c))
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
            '[' => {
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_ws();
                    let at = self.i;
                    let raw = self.name();
                    match raw.parse::<f64>() {
                        Ok(n) if n.is_finite() => items.push(n),
                        _ => return Err(SearchError::at(at, "expected a number in the list")),
                    }
                    if self.eat("]") {
                        break;
                    }
                    if !self.eat(",") {
                        return Err(SearchError::at(self.i, "expected ',' or ']'"));
                    }
                }
                Value::List(items)
            }
            _ => {
                let raw = self.name();
                if raw.is_empty() {
                    return Err(SearchError::at(
                        value_at,
                        format!("expected a value for '{name}'"),
                    ));
                }
                // Words such as `inf` or `NaN` that Rust would read as numbers stay words.
                match raw.parse::<f64>() {
                    Ok(n) if n.is_finite() => Value::Number(n),
                    _ => Value::Text(raw),
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
    fn parses_inputs_lists_and_definitions() {
        let e = parse(
            "let lex = bm25 % 1000; let sem = dense % 1000;\n rrf($lex, $sem >> vprf(depth=3), k=60, weights=[1, 0.5])",
        )
        .unwrap();
        assert_eq!(
            e.to_string(),
            "rrf(bm25 % 1000, dense % 1000 >> vprf(depth=3), k=60, weights=[1, 0.5])"
        );
        let Expr::Stage { inputs, args, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(inputs.len(), 2);
        assert_eq!(args[1].value, Value::List(vec![1.0, 0.5]));
        // A bare name inside parentheses is an input pipeline, not an argument.
        let Expr::Stage { inputs, .. } = parse("interp(bm25, dense)").unwrap() else {
            panic!()
        };
        assert_eq!(inputs.len(), 2);
    }

    #[test]
    fn json_form_round_trips() {
        for text in [
            "bm25(k1=1.2, name='x') % 5",
            "interp(bm25 % 1000 >> rm3, dense % 1000, alpha=0.3, norm=zscore) % 10",
            "combsum(bm25, dense, weights=[0.2, 0.8], norm='min max')",
        ] {
            let e = parse(text).unwrap();
            let json = serde_json::to_string(&e).unwrap();
            let back: Expr = serde_json::from_str(&json).unwrap();
            assert_eq!(back.to_string(), e.to_string());
            assert_eq!(parse(&back.to_string()).unwrap().to_string(), e.to_string());
        }
        let hand_written = r#"{"op": "cutoff", "k": 10, "input": {"op": "stage", "name": "rrf",
            "inputs": [{"op": "stage", "name": "bm25"}, {"op": "stage", "name": "dense"}],
            "args": [{"name": "k", "value": 60}]}}"#;
        let e: Expr = serde_json::from_str(hand_written).unwrap();
        assert_eq!(e.to_string(), "rrf(bm25, dense, k=60) % 10");
        assert!(
            serde_json::from_str::<Expr>(r#"{"op": "stage", "name": "bm25", "argz": []}"#).is_err()
        );
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
        assert!(parse("bm25(k1=)")
            .unwrap_err()
            .to_string()
            .contains("expected a value for 'k1'"));
        assert!(parse("rrf(k=60, bm25)")
            .unwrap_err()
            .to_string()
            .contains("input pipelines come before the named arguments"));
        assert!(parse("rrf($a)")
            .unwrap_err()
            .to_string()
            .contains("'$a' is not defined"));
        assert!(parse("let a = bm25 bm25")
            .unwrap_err()
            .to_string()
            .contains("expected ';'"));
        assert!(parse("let a = bm25;")
            .unwrap_err()
            .to_string()
            .contains("expected the pipeline after the definitions"));
        assert!(parse("x(w=[1, y])")
            .unwrap_err()
            .to_string()
            .contains("expected a number in the list"));
        assert!(parse("let>>1")
            .unwrap_err()
            .to_string()
            .contains("'let' is not a stage"));
        assert!(parse("bm25 >> let(x=1)").is_err());
        let Expr::Stage { args, .. } = parse("x(a=inf, b=NaN)").unwrap() else {
            panic!()
        };
        assert_eq!(args[0].value, Value::Text("inf".into()));
        let deep = format!("{}bm25{}", "(".repeat(100), ")".repeat(100));
        assert!(parse(&deep)
            .unwrap_err()
            .to_string()
            .contains("nested more than"));
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
