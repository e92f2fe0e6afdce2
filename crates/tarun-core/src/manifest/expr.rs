//! Score and constraint expressions of `select` nodes: `retain-acc - 1.5 * forget-acc`,
//! `retain-acc > 75`.
//!
//! Names are metric names, which contain hyphens: a `-` directly between two letters belongs to
//! the name, any other `-` is a minus. Numbers, `+ - * /`, parentheses and unary minus; a
//! constraint is two expressions joined by `<`, `<=`, `>`, `>=`.
//!
//! Parsed when the manifest loads, where each name is checked against the metrics the `select`
//! node's candidates write (`super::scores`), and again when the node runs, to evaluate them.

use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Num(f64),
    Name(String),
    Neg(Box<Expr>),
    Bin(char, Box<Expr>, Box<Expr>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Constraint {
    pub left: Expr,
    pub op: String,
    pub right: Expr,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(f64),
    Name(String),
    Op(String),
}

fn tokenize(src: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = vec![];
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() || c == '.' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_digit()
                    || chars[i] == '.'
                    || chars[i] == 'e'
                    || (chars[i] == '-' || chars[i] == '+') && chars[i - 1] == 'e')
            {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            out.push(Tok::Num(
                text.parse().map_err(|_| format!("bad number `{text}`"))?,
            ));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() {
                let d = chars[i];
                let hyphen_in_name = d == '-'
                    && chars.get(i + 1).is_some_and(|n| n.is_ascii_alphabetic())
                    && chars[i - 1].is_ascii_alphanumeric();
                if d.is_ascii_alphanumeric() || d == '_' || hyphen_in_name {
                    i += 1;
                } else {
                    break;
                }
            }
            out.push(Tok::Name(chars[start..i].iter().collect()));
        } else if "<>".contains(c) && chars.get(i + 1) == Some(&'=') {
            out.push(Tok::Op(format!("{c}=")));
            i += 2;
        } else if "+-*/()<>".contains(c) {
            out.push(Tok::Op(c.to_string()));
            i += 1;
        } else {
            return Err(format!("unexpected `{c}` in `{src}`"));
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek_op(&self) -> Option<&str> {
        match self.toks.get(self.pos) {
            Some(Tok::Op(o)) => Some(o),
            _ => None,
        }
    }

    fn binary(
        &mut self,
        ops: &str,
        next: fn(&mut Self) -> Result<Expr, String>,
    ) -> Result<Expr, String> {
        let mut left = next(self)?;
        while let Some(op) = self.peek_op().filter(|o| o.len() == 1 && ops.contains(*o)) {
            let op = op.chars().next().expect("one char");
            self.pos += 1;
            left = Expr::Bin(op, Box::new(left), Box::new(next(self)?));
        }
        Ok(left)
    }

    fn sum(&mut self) -> Result<Expr, String> {
        self.binary("+-", Self::product)
    }

    fn product(&mut self) -> Result<Expr, String> {
        self.binary("*/", Self::unary)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        match self.toks.get(self.pos).cloned() {
            Some(Tok::Op(o)) if o == "-" => {
                self.pos += 1;
                Ok(Expr::Neg(Box::new(self.unary()?)))
            }
            Some(Tok::Op(o)) if o == "(" => {
                self.pos += 1;
                let e = self.sum()?;
                if self.peek_op() != Some(")") {
                    return Err("missing `)`".into());
                }
                self.pos += 1;
                Ok(e)
            }
            Some(Tok::Num(n)) => {
                self.pos += 1;
                Ok(Expr::Num(n))
            }
            Some(Tok::Name(n)) => {
                self.pos += 1;
                Ok(Expr::Name(n))
            }
            other => Err(format!("expected a number, a name or `(`, found {other:?}")),
        }
    }
}

pub fn parse_expr(src: &str) -> Result<Expr, String> {
    let mut p = Parser {
        toks: tokenize(src)?,
        pos: 0,
    };
    let e = p.sum()?;
    if p.pos != p.toks.len() {
        return Err(format!("unexpected {:?} in `{src}`", p.toks[p.pos]));
    }
    Ok(e)
}

pub fn parse_constraint(src: &str) -> Result<Constraint, String> {
    let mut p = Parser {
        toks: tokenize(src)?,
        pos: 0,
    };
    let left = p.sum()?;
    let op = match p.peek_op() {
        Some(o @ ("<" | "<=" | ">" | ">=")) => o.to_owned(),
        _ => return Err(format!("`{src}` is not a comparison (use <, <=, > or >=)")),
    };
    p.pos += 1;
    let right = p.sum()?;
    if p.pos != p.toks.len() {
        return Err(format!("unexpected {:?} in `{src}`", p.toks[p.pos]));
    }
    Ok(Constraint { left, op, right })
}

impl Expr {
    /// The names the expression reads, in order of appearance, repeats included.
    pub fn names(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_names(&mut out);
        out
    }

    fn collect_names<'e>(&'e self, out: &mut Vec<&'e str>) {
        match self {
            Expr::Num(_) => {}
            Expr::Name(n) => out.push(n),
            Expr::Neg(e) => e.collect_names(out),
            Expr::Bin(_, a, b) => {
                a.collect_names(out);
                b.collect_names(out);
            }
        }
    }

    pub fn eval(&self, vars: &BTreeMap<String, f64>) -> Result<f64, String> {
        Ok(match self {
            Expr::Num(n) => *n,
            Expr::Name(n) => *vars.get(n).ok_or_else(|| {
                let known: Vec<&str> = vars.keys().map(String::as_str).collect();
                format!("unknown metric `{n}` (known: {})", known.join(", "))
            })?,
            Expr::Neg(e) => -e.eval(vars)?,
            Expr::Bin(op, a, b) => {
                let (a, b) = (a.eval(vars)?, b.eval(vars)?);
                match op {
                    '+' => a + b,
                    '-' => a - b,
                    '*' => a * b,
                    _ => a / b,
                }
            }
        })
    }
}

impl Constraint {
    /// The names both sides read, in order of appearance.
    pub fn names(&self) -> Vec<&str> {
        let mut out = self.left.names();
        out.extend(self.right.names());
        out
    }

    pub fn holds(&self, vars: &BTreeMap<String, f64>) -> Result<bool, String> {
        let (a, b) = (self.left.eval(vars)?, self.right.eval(vars)?);
        Ok(match self.op.as_str() {
            "<" => a < b,
            "<=" => a <= b,
            ">" => a > b,
            _ => a >= b,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<String, f64> {
        BTreeMap::from([("retain-acc".into(), 80.0), ("forget-acc".into(), 10.0)])
    }

    #[test]
    fn hyphenated_names_and_minus() {
        let e = parse_expr("retain-acc - 1.5 * forget-acc").unwrap();
        assert_eq!(e.eval(&vars()).unwrap(), 65.0);
        let e = parse_expr("retain-acc-1.5*forget-acc").unwrap();
        assert_eq!(e.eval(&vars()).unwrap(), 65.0);
        assert_eq!(
            parse_expr("-(forget-acc + 2) / 4")
                .unwrap()
                .eval(&vars())
                .unwrap(),
            -3.0
        );
        assert_eq!(parse_expr("1e2 - 2").unwrap().eval(&vars()).unwrap(), 98.0);
    }

    #[test]
    fn constraints() {
        assert!(
            parse_constraint("retain-acc > 75")
                .unwrap()
                .holds(&vars())
                .unwrap()
        );
        assert!(
            !parse_constraint("forget-acc >= 20")
                .unwrap()
                .holds(&vars())
                .unwrap()
        );
        assert!(parse_constraint("retain-acc").is_err());
        assert!(parse_expr("retain-acc +").is_err());
        let err = parse_expr("nope * 2").unwrap().eval(&vars()).unwrap_err();
        assert!(err.contains("unknown metric `nope`"), "{err}");
    }

    #[test]
    fn names_in_order() {
        let e = parse_expr("-(kl-forget + 2) / zrf - kl-forget").unwrap();
        assert_eq!(e.names(), ["kl-forget", "zrf", "kl-forget"]);
        let c = parse_constraint("retain-acc >= 0.5 * accuracy").unwrap();
        assert_eq!(c.names(), ["retain-acc", "accuracy"]);
    }
}
