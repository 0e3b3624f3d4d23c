//! Edge conditions in Chatter's small language, parsed once at validation into a tree the
//! executor evaluates against a run's state:
//! `has_tool_calls`, `no_tool_calls`, `tool_calls > N` (also `>=`, `<`, `<=`, `==`, `!=`),
//! `has_errors`, `variable X equals Y`, `loop_<node id>_continue`, joined with `and` / `or`
//! (`and` binds tighter) and grouped with parentheses.
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Condition {
    HasToolCalls,
    NoToolCalls,
    ToolCalls { cmp: Cmp, n: u64 },
    HasErrors,
    VariableEquals { name: String, value: String },
    LoopContinue { node: String },
    And { all: Vec<Condition> },
    Or { any: Vec<Condition> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cmp {
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
}

impl Cmp {
    pub fn holds(self, a: u64, b: u64) -> bool {
        match self {
            Cmp::Gt => a > b,
            Cmp::Ge => a >= b,
            Cmp::Lt => a < b,
            Cmp::Le => a <= b,
            Cmp::Eq => a == b,
            Cmp::Ne => a != b,
        }
    }
}

/// What a condition reads from the run.
pub trait Facts {
    fn tool_calls(&self) -> u64;
    fn has_errors(&self) -> bool;
    /// The variable's value as text (strings bare, other JSON as JSON), if set.
    fn variable(&self, name: &str) -> Option<String>;
    /// Whether the loop node `node` goes round again.
    fn loop_continues(&self, node: &str) -> bool;
}

impl Condition {
    pub fn eval(&self, f: &dyn Facts) -> bool {
        match self {
            Condition::HasToolCalls => f.tool_calls() > 0,
            Condition::NoToolCalls => f.tool_calls() == 0,
            Condition::ToolCalls { cmp, n } => cmp.holds(f.tool_calls(), *n),
            Condition::HasErrors => f.has_errors(),
            Condition::VariableEquals { name, value } => {
                f.variable(name).as_deref() == Some(value.as_str())
            }
            Condition::LoopContinue { node } => f.loop_continues(node),
            Condition::And { all } => all.iter().all(|c| c.eval(f)),
            Condition::Or { any } => any.iter().any(|c| c.eval(f)),
        }
    }

    /// The loop nodes this condition names.
    pub fn loops(&self) -> Vec<&str> {
        match self {
            Condition::LoopContinue { node } => vec![node.as_str()],
            Condition::And { all: c } | Condition::Or { any: c } => {
                c.iter().flat_map(|c| c.loops()).collect()
            }
            _ => vec![],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at character {at} of {text:?}")]
pub struct ParseError {
    pub text: String,
    pub at: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Quoted(String),
    Op(Cmp),
    Open,
    Close,
}

fn lex(text: &str) -> Result<Vec<(usize, Tok)>, ParseError> {
    let err = |at: usize, message: &str| ParseError {
        text: text.to_string(),
        at,
        message: message.to_string(),
    };
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' | ')' => {
                out.push((at, if c == '(' { Tok::Open } else { Tok::Close }));
                i += 1;
            }
            '>' | '<' | '=' | '!' => {
                let two = chars.get(i + 1).map(|x| x.1) == Some('=');
                let op = match (c, two) {
                    ('>', true) => Cmp::Ge,
                    ('>', false) => Cmp::Gt,
                    ('<', true) => Cmp::Le,
                    ('<', false) => Cmp::Lt,
                    ('=', true) => Cmp::Eq,
                    ('!', true) => Cmp::Ne,
                    _ => return Err(err(at, "expected a comparison (> >= < <= == !=)")),
                };
                out.push((at, Tok::Op(op)));
                i += if two { 2 } else { 1 };
            }
            '"' | '\'' => {
                let close = chars[i + 1..]
                    .iter()
                    .position(|x| x.1 == c)
                    .ok_or_else(|| err(at, "unclosed quote"))?;
                out.push((
                    at,
                    Tok::Quoted(chars[i + 1..i + 1 + close].iter().map(|x| x.1).collect()),
                ));
                i += close + 2;
            }
            _ => {
                let start = i;
                while i < chars.len()
                    && !chars[i].1.is_whitespace()
                    && !"()<>=!\"'".contains(chars[i].1)
                {
                    i += 1;
                }
                out.push((at, Tok::Word(chars[start..i].iter().map(|x| x.1).collect())));
            }
        }
    }
    Ok(out)
}

struct Parser<'a> {
    text: &'a str,
    toks: Vec<(usize, Tok)>,
    pos: usize,
}

impl Parser<'_> {
    fn err(&self, message: impl Into<String>) -> ParseError {
        ParseError {
            text: self.text.to_string(),
            at: self.toks.get(self.pos).map_or(self.text.len(), |t| t.0),
            message: message.into(),
        }
    }

    fn peek_word(&self) -> Option<&str> {
        match self.toks.get(self.pos) {
            Some((_, Tok::Word(w))) => Some(w.as_str()),
            _ => None,
        }
    }

    fn or(&mut self) -> Result<Condition, ParseError> {
        let mut any = vec![self.and()?];
        while self
            .peek_word()
            .is_some_and(|w| w.eq_ignore_ascii_case("or"))
        {
            self.pos += 1;
            any.push(self.and()?);
        }
        Ok(if any.len() == 1 {
            any.remove(0)
        } else {
            Condition::Or { any }
        })
    }

    fn and(&mut self) -> Result<Condition, ParseError> {
        let mut all = vec![self.atom()?];
        while self
            .peek_word()
            .is_some_and(|w| w.eq_ignore_ascii_case("and"))
        {
            self.pos += 1;
            all.push(self.atom()?);
        }
        Ok(if all.len() == 1 {
            all.remove(0)
        } else {
            Condition::And { all }
        })
    }

    fn value(&mut self) -> Result<String, ParseError> {
        match self.toks.get(self.pos).cloned() {
            Some((_, Tok::Word(w) | Tok::Quoted(w))) => {
                self.pos += 1;
                Ok(w)
            }
            _ => Err(self.err("expected a value")),
        }
    }

    fn atom(&mut self) -> Result<Condition, ParseError> {
        let Some((_, tok)) = self.toks.get(self.pos).cloned() else {
            return Err(self.err("expected a condition"));
        };
        self.pos += 1;
        let word = match tok {
            Tok::Open => {
                let inner = self.or()?;
                return match self.toks.get(self.pos) {
                    Some((_, Tok::Close)) => {
                        self.pos += 1;
                        Ok(inner)
                    }
                    _ => Err(self.err("expected )")),
                };
            }
            Tok::Word(w) => w,
            _ => {
                self.pos -= 1;
                return Err(self.err("expected a condition"));
            }
        };
        match word.to_ascii_lowercase().as_str() {
            "has_tool_calls" => Ok(Condition::HasToolCalls),
            "no_tool_calls" => Ok(Condition::NoToolCalls),
            "has_errors" => Ok(Condition::HasErrors),
            "tool_calls" => {
                let cmp = match self.toks.get(self.pos) {
                    Some((_, Tok::Op(op))) => *op,
                    _ => return Err(self.err("expected a comparison after tool_calls")),
                };
                self.pos += 1;
                let n = self.value()?;
                let n = n.parse().map_err(|_| {
                    self.pos -= 1;
                    self.err(format!("expected a whole number, found {n:?}"))
                })?;
                Ok(Condition::ToolCalls { cmp, n })
            }
            "variable" => {
                let name = self.value()?;
                match self.peek_word() {
                    Some(w) if w.eq_ignore_ascii_case("equals") => self.pos += 1,
                    _ => return Err(self.err(format!("expected `equals` after variable {name}"))),
                }
                let value = self.value()?;
                Ok(Condition::VariableEquals { name, value })
            }
            w if w.starts_with("loop_") && w.ends_with("_continue") && w.len() > 14 => {
                Ok(Condition::LoopContinue {
                    node: word[5..word.len() - 9].to_string(),
                })
            }
            _ => {
                self.pos -= 1;
                Err(self.err(format!(
                    "unknown condition {word:?} (known: has_tool_calls, no_tool_calls, \
                     tool_calls > N, has_errors, variable X equals Y, loop_<id>_continue)"
                )))
            }
        }
    }
}

/// Parse a condition; the empty string is an error (an edge without one has no condition).
pub fn parse(text: &str) -> Result<Condition, ParseError> {
    let mut p = Parser {
        text,
        toks: lex(text)?,
        pos: 0,
    };
    let c = p.or()?;
    if p.pos < p.toks.len() {
        return Err(p.err("expected `and`, `or` or the end"));
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_chatters_conditions() {
        assert_eq!(parse("has_tool_calls").unwrap(), Condition::HasToolCalls);
        assert_eq!(
            parse("tool_calls >= 2").unwrap(),
            Condition::ToolCalls { cmp: Cmp::Ge, n: 2 }
        );
        assert_eq!(
            parse("variable mode equals \"fast lane\"").unwrap(),
            Condition::VariableEquals {
                name: "mode".into(),
                value: "fast lane".into()
            }
        );
        assert_eq!(
            parse("loop_retry_1_continue").unwrap(),
            Condition::LoopContinue {
                node: "retry_1".into()
            }
        );
        // `and` binds tighter than `or`.
        assert_eq!(
            parse("has_errors or no_tool_calls and tool_calls < 3").unwrap(),
            Condition::Or {
                any: vec![
                    Condition::HasErrors,
                    Condition::And {
                        all: vec![
                            Condition::NoToolCalls,
                            Condition::ToolCalls { cmp: Cmp::Lt, n: 3 }
                        ]
                    }
                ]
            }
        );
        assert!(matches!(
            parse("(has_errors or has_tool_calls) and no_tool_calls").unwrap(),
            Condition::And { .. }
        ));
    }

    #[test]
    fn errors_say_where() {
        for (text, want) in [
            ("", "expected a condition"),
            ("tool_calls > many", "whole number"),
            ("tool_calls 3", "comparison"),
            ("has_tool_calls and", "expected a condition"),
            ("has_tool_calls nor has_errors", "expected `and`, `or`"),
            ("variable x is 3", "equals"),
            ("has_toolcalls", "unknown condition"),
            ("(has_errors", "expected )"),
            ("variable x equals 'open", "unclosed quote"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.to_string().contains(want), "{text:?}: {e}");
        }
    }
}
