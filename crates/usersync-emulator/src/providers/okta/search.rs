//! Okta's `search`/`filter` expression language (SCIM-like): `attr op "value"`, `attr pr`, `and`,
//! `or`, parentheses. Operators are case-insensitive, property names case-sensitive, string values
//! compared case-insensitively (`eq`, `sw`, `co`; `gt`/`ge`/`lt`/`le` on timestamps and strings).

use serde_json::Value;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Equal.
    Eq,
    /// Starts with.
    Sw,
    /// Contains.
    Co,
    /// Present (not null).
    Pr,
    /// Greater than.
    Gt,
    /// Greater or equal.
    Ge,
    /// Less than.
    Lt,
    /// Less or equal.
    Le,
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `attr op value` (value `None` for `pr`).
    Cmp(String, Op, Option<Value>),
    /// Both.
    And(Box<Expr>, Box<Expr>),
    /// Either.
    Or(Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Open,
    Close,
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut it = s.chars().peekable();
    while let Some(&c) = it.peek() {
        match c {
            c if c.is_whitespace() => {
                it.next();
            }
            '(' => {
                it.next();
                out.push(Tok::Open);
            }
            ')' => {
                it.next();
                out.push(Tok::Close);
            }
            '"' => {
                it.next();
                let mut v = String::new();
                loop {
                    match it.next() {
                        None => return Err("unterminated string in search expression".into()),
                        Some('\\') => match it.next() {
                            Some(e) => v.push(e),
                            None => return Err("dangling escape in search expression".into()),
                        },
                        Some('"') => break,
                        Some(ch) => v.push(ch),
                    }
                }
                out.push(Tok::Str(v));
            }
            _ => {
                let mut w = String::new();
                while let Some(&ch) = it.peek() {
                    if ch.is_whitespace() || ch == '(' || ch == ')' || ch == '"' {
                        break;
                    }
                    w.push(ch);
                    it.next();
                }
                out.push(Tok::Word(w));
            }
        }
    }
    Ok(out)
}

struct P {
    toks: Vec<Tok>,
    pos: usize,
}

impl P {
    fn peek_word(&self, w: &str) -> bool {
        matches!(self.toks.get(self.pos), Some(Tok::Word(x)) if x.eq_ignore_ascii_case(w))
    }
    fn or(&mut self) -> Result<Expr, String> {
        let mut l = self.and()?;
        while self.peek_word("or") {
            self.pos += 1;
            let r = self.and()?;
            l = Expr::Or(Box::new(l), Box::new(r));
        }
        Ok(l)
    }
    fn and(&mut self) -> Result<Expr, String> {
        let mut l = self.unary()?;
        while self.peek_word("and") {
            self.pos += 1;
            let r = self.unary()?;
            l = Expr::And(Box::new(l), Box::new(r));
        }
        Ok(l)
    }
    fn unary(&mut self) -> Result<Expr, String> {
        match self.toks.get(self.pos).cloned() {
            Some(Tok::Open) => {
                self.pos += 1;
                let e = self.or()?;
                if self.toks.get(self.pos) != Some(&Tok::Close) {
                    return Err("missing `)` in search expression".into());
                }
                self.pos += 1;
                Ok(e)
            }
            Some(Tok::Word(attr)) => {
                self.pos += 1;
                let op = match self.toks.get(self.pos) {
                    Some(Tok::Word(o)) => match o.to_ascii_lowercase().as_str() {
                        "eq" => Op::Eq,
                        "sw" => Op::Sw,
                        "co" => Op::Co,
                        "pr" => Op::Pr,
                        "gt" => Op::Gt,
                        "ge" => Op::Ge,
                        "lt" => Op::Lt,
                        "le" => Op::Le,
                        other => return Err(format!("unsupported operator `{other}`")),
                    },
                    _ => return Err(format!("missing operator after `{attr}`")),
                };
                self.pos += 1;
                if op == Op::Pr {
                    return Ok(Expr::Cmp(attr, op, None));
                }
                let v = match self.toks.get(self.pos) {
                    Some(Tok::Str(s)) => Value::String(s.clone()),
                    Some(Tok::Word(w)) if w == "true" || w == "false" => Value::Bool(w == "true"),
                    Some(Tok::Word(w)) if w.parse::<f64>().is_ok() => {
                        serde_json::from_str(w).map_err(|_| format!("bad number `{w}`"))?
                    }
                    _ => return Err(format!("missing value after `{attr}`")),
                };
                self.pos += 1;
                Ok(Expr::Cmp(attr, op, Some(v)))
            }
            _ => Err("expected an attribute or `(`".into()),
        }
    }
}

/// Parse an expression; the error says what is wrong.
pub fn parse(s: &str) -> Result<Expr, String> {
    let mut p = P {
        toks: lex(s)?,
        pos: 0,
    };
    if p.toks.is_empty() {
        return Err("empty search expression".into());
    }
    let e = p.or()?;
    if p.pos != p.toks.len() {
        return Err("unexpected text after the search expression".into());
    }
    Ok(e)
}

fn norm(s: &str) -> String {
    // Timestamps: drop fractional seconds so `...:00Z` and `...:00.000Z` compare equal.
    let s = s.to_lowercase();
    match (
        s.find('.'),
        s.ends_with('z'),
        s.len() >= 20 && s.as_bytes().get(10) == Some(&b't'),
    ) {
        (Some(dot), true, true) => format!("{}z", &s[..dot]),
        _ => s,
    }
}

impl Expr {
    /// Every `(attribute, operator)` in the expression.
    pub fn comparisons(&self) -> Vec<(String, Op)> {
        match self {
            Expr::Cmp(a, o, _) => vec![(a.clone(), *o)],
            Expr::And(l, r) | Expr::Or(l, r) => {
                let mut v = l.comparisons();
                v.extend(r.comparisons());
                v
            }
        }
    }

    /// Evaluate against an attribute getter.
    pub fn eval(&self, get: &dyn Fn(&str) -> Option<Value>) -> bool {
        match self {
            Expr::And(l, r) => l.eval(get) && r.eval(get),
            Expr::Or(l, r) => l.eval(get) || r.eval(get),
            Expr::Cmp(attr, op, want) => {
                let have = get(attr);
                let (Some(have), Some(want)) = (have, want.as_ref()) else {
                    return *op == Op::Pr && get(attr).is_some_and(|v| !v.is_null());
                };
                match (&have, want) {
                    (Value::String(h), Value::String(w)) => {
                        let (h, w) = (norm(h), norm(w));
                        match op {
                            Op::Eq => h == w,
                            Op::Sw => h.starts_with(&w),
                            Op::Co => h.contains(&w),
                            Op::Gt => h > w,
                            Op::Ge => h >= w,
                            Op::Lt => h < w,
                            Op::Le => h <= w,
                            Op::Pr => true,
                        }
                    }
                    (h, w) => matches!(op, Op::Eq) && h == w,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn get(p: &str) -> Option<Value> {
        match p {
            "status" => Some(json!("ACTIVE")),
            "profile.login" => Some(json!("Isaac.Brock@example.com")),
            "lastUpdated" => Some(json!("2024-05-01T10:00:00.000Z")),
            "profile.managerId" => Some(Value::Null),
            _ => None,
        }
    }

    #[test]
    fn evaluates_documented_examples() {
        let t = |s: &str| parse(s).expect(s).eval(&get);
        assert!(t("status pr"));
        assert!(t(r#"status eq "active""#));
        assert!(t(r#"profile.login sw "isaac.brock""#));
        assert!(t(r#"lastUpdated gt "2024-01-01T00:00:00.000Z""#));
        assert!(t(r#"lastUpdated ge "2024-05-01T10:00:00Z""#));
        assert!(t(
            r#"(status lt "STAGED" or status gt "STAGED") and profile.login co "brock""#
        ));
        assert!(!t(r#"status eq "STAGED""#));
        assert!(!t("profile.managerId pr"));
        assert!(!t("profile.city pr"));
        assert!(parse("status").is_err());
        assert!(parse(r#"status ne "ACTIVE""#).is_err());
        assert!(parse(r#"(status eq "A""#).is_err());
    }
}
