//! Field paths of rule conditions, in the subset of jsonpath-rw's syntax
//! (what ironic-inspector parses `field` with) that rules use:
//!
//! - `$` (the root, optional), `a.b`, `'quoted key'` / `"quoted key"`,
//! - `*` (every value of an object), `..name` (`name` at any depth),
//! - `[3]`, `[-1]`, `[*]`, `[1:3]` (a slice of a list).
//!
//! No crate fits: the JSONPath crates implement RFC 9535 (`$.a[*]`, `$`
//! required, no `..name` as jsonpath-rw reads it, different quoting), and
//! a path that ironic-inspector accepts must keep meaning the same thing.
//! jsonpath-rw's `where`, `|`, `` `this` `` and filters are refused at
//! creation with a clear error rather than read differently.

use serde_json::Value;

/// The longest path accepted, and the most steps.
const MAX_LEN: usize = 1024;
const MAX_STEPS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Field(String),
    AnyField,
    Descend(String),
    Index(i64),
    Slice(Option<i64>, Option<i64>),
}

/// A parsed path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    steps: Vec<Step>,
}

/// Why a path does not parse; the message names the position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PathError(pub String);

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '@' || c == '-'
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }

    fn err(&self, what: &str) -> PathError {
        PathError(format!("{what} at position {}", self.pos))
    }

    fn ident(&mut self) -> Result<String, PathError> {
        match self.peek() {
            Some(q @ ('\'' | '"')) => {
                let rest = &self.s[self.pos + 1..];
                let end = rest.find(q).ok_or_else(|| self.err("unterminated quoted name"))?;
                let name = rest[..end].to_owned();
                self.pos += end + 2;
                Ok(name)
            }
            _ => {
                let len: usize = self.s[self.pos..]
                    .chars()
                    .take_while(|c| is_ident(*c))
                    .map(char::len_utf8)
                    .sum();
                if len == 0 {
                    return Err(self.err("expected a field name"));
                }
                let name = self.s[self.pos..self.pos + len].to_owned();
                self.pos += len;
                Ok(name)
            }
        }
    }

    fn int(&mut self) -> Result<Option<i64>, PathError> {
        let rest = &self.s[self.pos..];
        let len = rest
            .char_indices()
            .take_while(|(i, c)| c.is_ascii_digit() || (*i == 0 && *c == '-'))
            .count();
        if len == 0 {
            return Ok(None);
        }
        let n = rest[..len].parse::<i64>().map_err(|_| self.err("bad index"))?;
        self.pos += len;
        Ok(Some(n))
    }

    fn bracket(&mut self) -> Result<Step, PathError> {
        self.pos += 1; // '['
        let step = if self.peek() == Some('*') {
            self.pos += 1;
            Step::Slice(None, None)
        } else {
            let start = self.int()?;
            if self.peek() == Some(':') {
                self.pos += 1;
                Step::Slice(start, self.int()?)
            } else {
                Step::Index(start.ok_or_else(|| self.err("expected an index, `*` or a slice"))?)
            }
        };
        if self.peek() != Some(']') {
            return Err(self.err("expected `]`"));
        }
        self.pos += 1;
        Ok(step)
    }

    /// One step after a `.` (or at the start).
    fn member(&mut self) -> Result<Step, PathError> {
        if self.peek() == Some('*') {
            self.pos += 1;
            Ok(Step::AnyField)
        } else {
            Ok(Step::Field(self.ident()?))
        }
    }
}

impl Path {
    pub fn parse(s: &str) -> Result<Path, PathError> {
        if s.len() > MAX_LEN {
            return Err(PathError(format!("longer than {MAX_LEN} bytes")));
        }
        let s = s.trim();
        let mut p = Parser { s, pos: 0 };
        let mut steps = Vec::new();
        if p.peek() == Some('$') {
            p.pos += 1;
        } else if p.peek() == Some('[') {
            steps.push(p.bracket()?);
        } else {
            steps.push(p.member()?);
        }
        while let Some(c) = p.peek() {
            let step = match c {
                '.' if s[p.pos..].starts_with("..") => {
                    p.pos += 2;
                    Step::Descend(p.ident()?)
                }
                '.' => {
                    p.pos += 1;
                    p.member()?
                }
                '[' => p.bracket()?,
                _ => return Err(p.err(&format!("unexpected {c:?}"))),
            };
            steps.push(step);
            if steps.len() > MAX_STEPS {
                return Err(PathError(format!("more than {MAX_STEPS} steps")));
            }
        }
        Ok(Path { steps })
    }

    /// Every value the path reaches in `root`, in document order.
    pub fn find<'v>(&self, root: &'v Value) -> Vec<&'v Value> {
        let mut cur = vec![root];
        for step in &self.steps {
            let mut next = Vec::new();
            for v in cur {
                apply(step, v, &mut next);
            }
            cur = next;
        }
        cur
    }
}

fn index(len: usize, i: i64) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let i = if i < 0 { len.checked_add(i)? } else { i };
    (0..len).contains(&i).then(|| usize::try_from(i).ok()).flatten()
}

fn apply<'v>(step: &Step, v: &'v Value, out: &mut Vec<&'v Value>) {
    match step {
        Step::Field(name) => out.extend(v.as_object().and_then(|m| m.get(name))),
        Step::AnyField => {
            if let Some(m) = v.as_object() {
                out.extend(m.values());
            }
        }
        Step::Descend(name) => descend(name, v, out, 0),
        Step::Index(i) => {
            if let Some(a) = v.as_array() {
                out.extend(index(a.len(), *i).and_then(|i| a.get(i)));
            }
        }
        Step::Slice(start, end) => match v {
            Value::Array(a) => {
                let len = i64::try_from(a.len()).unwrap_or(i64::MAX);
                let clamp = |x: i64| if x < 0 { (len + x).max(0) } else { x.min(len) };
                let s = start.map_or(0, clamp);
                let e = end.map_or(len, clamp);
                if s < e {
                    let (s, e) = (usize::try_from(s).unwrap_or(0), usize::try_from(e).unwrap_or(0));
                    out.extend(a[s..e].iter());
                }
            }
            // jsonpath-rw treats a single non-empty value as a list of one.
            Value::Null => {}
            other if start.is_none() && end.is_none() => out.push(other),
            _ => {}
        },
    }
}

/// `..name`: `name` in `v` and in everything below it. Depth is bounded
/// by serde_json's own nesting limit (128) on parsed input.
fn descend<'v>(name: &str, v: &'v Value, out: &mut Vec<&'v Value>, depth: usize) {
    if depth > 256 {
        return;
    }
    match v {
        Value::Object(m) => {
            out.extend(m.get(name));
            for child in m.values() {
                descend(name, child, out, depth + 1);
            }
        }
        Value::Array(a) => {
            for child in a {
                descend(name, child, out, depth + 1);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn find(path: &str, v: &Value) -> Vec<Value> {
        Path::parse(path)
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .find(v)
            .into_iter()
            .cloned()
            .collect()
    }

    #[test]
    fn inspector_paths() {
        let d = json!({"memory_mb": 1024, "inventory": {"interfaces": [
            {"name": "eth0", "ipv4_address": "10.0.0.1"}, {"name": "eth1", "ipv4_address": null}],
            "disks": [{"size": 1}, {"size": 2}, {"size": 3}]}, "a b": {"c": 1}});
        assert_eq!(find("memory_mb", &d), [json!(1024)]);
        assert_eq!(find("$.memory_mb", &d), [json!(1024)]);
        assert_eq!(
            find("inventory.interfaces[*].name", &d),
            [json!("eth0"), json!("eth1")]
        );
        assert_eq!(find("inventory.interfaces[1].name", &d), [json!("eth1")]);
        assert_eq!(find("inventory.disks[-1].size", &d), [json!(3)]);
        assert_eq!(find("inventory.disks[1:].size", &d), [json!(2), json!(3)]);
        assert_eq!(find("inventory.disks[:1].size", &d), [json!(1)]);
        assert_eq!(find("inventory..name", &d), [json!("eth0"), json!("eth1")]);
        assert_eq!(find("'a b'.c", &d), [json!(1)]);
        assert_eq!(find("inventory.*", &d).len(), 2);
        assert!(find("inventory.nothing", &d).is_empty());
        assert!(find("inventory.disks[7]", &d).is_empty());
        assert!(find("memory_mb.x", &d).is_empty());
        // A dict under [*] is one value, as jsonpath-rw has it.
        assert_eq!(find("inventory.interfaces[0][*].name", &d), [json!("eth0")]);
    }

    #[test]
    fn bad_paths_are_refused() {
        for p in [
            "",
            "a..",
            "a[",
            "a[x]",
            "a.b where c",
            "a|b",
            "a.'b",
            "[1",
            ".",
            "a]",
        ] {
            assert!(Path::parse(p).is_err(), "{p:?} parsed");
        }
        assert!(Path::parse(&"a.".repeat(100)).is_err());
    }
}
