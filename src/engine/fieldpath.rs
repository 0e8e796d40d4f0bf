//! Field paths: `spec.forProvider.tags`, `status.conditions[0].type`,
//! `metadata.annotations['dbclaim.io/external-name']`.
//!
//! The syntax is Crossplane's (and the Kubernetes API conventions'): dotted
//! keys, `[n]` array indices and bracketed keys, where periods have no special
//! meaning inside brackets. A bracketed key may be quoted (`['a.b']`,
//! `["a.b"]`); an unquoted bracket holding only digits is an index, anything
//! else a key (so Crossplane's `data[.config.yml]` works too).
//!
//! Getting distinguishes "not there" (`Ok(None)`: a missing key, an index past
//! the end, or a null on the way) from "the object has another shape"
//! (`Err`), as Crossplane does: an optional patch skips the former and fails
//! on the latter, because a type mismatch is a composition bug that will not
//! fix itself.

use std::fmt;

use serde_json::{Map, Value};

use super::value::kind_of;

/// The largest array index a path may name. Crossplane caps it at 1024 too;
/// without a cap `items[4000000000]` would allocate an enormous array.
pub const MAX_INDEX: usize = 1024;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Segment {
    Field(String),
    Index(usize),
}

/// A parsed, non-empty field path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FieldPath {
    segments: Vec<Segment>,
}

/// Why a field path string does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("field path is empty")]
    Empty,
    #[error("field path {path:?} is not valid at position {pos}: {what}")]
    Syntax {
        path: String,
        pos: usize,
        what: String,
    },
    #[error("field path {path:?} uses index {index}, above the maximum of {MAX_INDEX}")]
    IndexTooLarge { path: String, index: String },
}

/// Why a get or set failed on an object of another shape.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error("{at} is {found}, not an object")]
    NotAnObject { at: String, found: &'static str },
    #[error("{at} is {found}, not an array")]
    NotAnArray { at: String, found: &'static str },
}

impl FieldPath {
    pub fn parse(path: &str) -> Result<Self, PathError> {
        Parser { path, pos: 0 }.parse()
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// A path made of the given segments; `None` when empty.
    pub fn from_segments(segments: Vec<Segment>) -> Option<Self> {
        if segments.is_empty() {
            None
        } else {
            Some(Self { segments })
        }
    }

    /// The value at this path; `Ok(None)` when it is not there.
    pub fn get<'v>(&self, root: &'v Value) -> Result<Option<&'v Value>, AccessError> {
        let mut cur = root;
        for (i, seg) in self.segments.iter().enumerate() {
            let next = match (seg, cur) {
                (_, Value::Null) => return Ok(None),
                (Segment::Field(k), Value::Object(m)) => m.get(k),
                (Segment::Index(n), Value::Array(a)) => a.get(*n),
                (Segment::Field(_), other) => {
                    return Err(AccessError::NotAnObject {
                        at: self.prefix(i),
                        found: kind_of(other),
                    });
                }
                (Segment::Index(_), other) => {
                    return Err(AccessError::NotAnArray {
                        at: self.prefix(i),
                        found: kind_of(other),
                    });
                }
            };
            match next {
                Some(v) => cur = v,
                None => return Ok(None),
            }
        }
        // A null leaf counts as absent: Kubernetes drops nulls on write, so
        // "set to null" and "unset" are the same thing to every reader.
        Ok(if cur.is_null() { None } else { Some(cur) })
    }

    /// Sets the value at this path, creating intermediate objects and arrays
    /// (arrays grow with nulls up to the index) as Crossplane does. A null on
    /// the way is replaced by the container the next segment needs; any other
    /// value of the wrong shape is an error rather than silently overwritten.
    pub fn set(&self, root: &mut Value, value: Value) -> Result<(), AccessError> {
        let last = self.segments.len() - 1;
        let mut cur = root;
        for (i, seg) in self.segments.iter().enumerate() {
            if cur.is_null() {
                *cur = match seg {
                    Segment::Field(_) => Value::Object(Map::new()),
                    Segment::Index(_) => Value::Array(Vec::new()),
                };
            }
            let slot = match (seg, cur) {
                (Segment::Field(k), Value::Object(m)) => m.entry(k.clone()).or_insert(Value::Null),
                (Segment::Index(n), Value::Array(a)) => {
                    if a.len() <= *n {
                        a.resize(*n + 1, Value::Null);
                    }
                    &mut a[*n]
                }
                (Segment::Field(_), other) => {
                    return Err(AccessError::NotAnObject {
                        at: self.prefix(i),
                        found: kind_of(other),
                    });
                }
                (Segment::Index(_), other) => {
                    return Err(AccessError::NotAnArray {
                        at: self.prefix(i),
                        found: kind_of(other),
                    });
                }
            };
            if i == last {
                *slot = value;
                return Ok(());
            }
            cur = slot;
        }
        Ok(())
    }

    /// Removes the value at this path if it is there; shapes that do not
    /// match mean there is nothing to remove.
    pub fn remove(&self, root: &mut Value) {
        let (last, parents) = match self.segments.split_last() {
            Some(x) => x,
            None => return,
        };
        let mut cur = root;
        for seg in parents {
            let next = match (seg, cur) {
                (Segment::Field(k), Value::Object(m)) => m.get_mut(k),
                (Segment::Index(n), Value::Array(a)) => a.get_mut(*n),
                _ => None,
            };
            match next {
                Some(v) => cur = v,
                None => return,
            }
        }
        match (last, cur) {
            (Segment::Field(k), Value::Object(m)) => {
                m.remove(k);
            }
            (Segment::Index(n), Value::Array(a)) if *n < a.len() => {
                a.remove(*n);
            }
            _ => {}
        }
    }

    /// The first `n` segments as text, for messages ("the object" for none).
    fn prefix(&self, n: usize) -> String {
        if n == 0 {
            return "the object".to_string();
        }
        Self {
            segments: self.segments[..n].to_vec(),
        }
        .to_string()
    }
}

impl fmt::Display for FieldPath {
    /// The canonical text of the path: keys that would not survive the dotted
    /// form (periods, brackets, empty) are written as `['key']`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.segments.iter().enumerate() {
            match seg {
                Segment::Index(n) => write!(f, "[{n}]")?,
                // A parsed key never holds both `']` and `"]`: whichever
                // quote closed it did not appear followed by `]` inside.
                Segment::Field(k) if needs_brackets(k) => {
                    if k.contains("']") {
                        write!(f, "[\"{k}\"]")?
                    } else {
                        write!(f, "['{k}']")?
                    }
                }
                Segment::Field(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?
                }
            }
        }
        Ok(())
    }
}

fn needs_brackets(key: &str) -> bool {
    key.is_empty() || key.contains(['.', '[', ']']) || key.bytes().all(|b| b.is_ascii_digit())
}

impl std::str::FromStr for FieldPath {
    type Err = PathError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

struct Parser<'a> {
    path: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn parse(mut self) -> Result<FieldPath, PathError> {
        if self.path.is_empty() {
            return Err(PathError::Empty);
        }
        let mut segments = Vec::new();
        // What may come next: a key (at the start or after a period), or a
        // period/bracket/end (after a key or a closing bracket).
        let mut want_key = true;
        while self.pos < self.path.len() {
            let rest = &self.path[self.pos..];
            if want_key {
                if rest.starts_with('[') {
                    // `[0]` or `['a']` may start a path; after a period they
                    // may not (`a.[0]`), as in Crossplane.
                    if self.pos > 0 {
                        return Err(self.err(self.pos, "a '[' may not follow a '.'"));
                    }
                    segments.push(self.bracket()?);
                    want_key = false;
                    continue;
                }
                let end = rest.find(['.', '[', ']']).unwrap_or(rest.len());
                if end == 0 {
                    let c = rest.chars().next().unwrap_or('.');
                    return Err(self.err(self.pos, format!("expected a key, found '{c}'")));
                }
                segments.push(Segment::Field(rest[..end].to_string()));
                self.pos += end;
                want_key = false;
            } else if rest.starts_with('.') {
                self.pos += 1;
                if self.pos == self.path.len() {
                    return Err(self.err(self.pos - 1, "the path ends in '.'"));
                }
                want_key = true;
            } else if rest.starts_with('[') {
                segments.push(self.bracket()?);
            } else {
                let c = rest.chars().next().unwrap_or(']');
                return Err(self.err(self.pos, format!("expected '.' or '[', found '{c}'")));
            }
        }
        Ok(FieldPath { segments })
    }

    /// Parses `[...]` at the current position (which holds the '[').
    fn bracket(&mut self) -> Result<Segment, PathError> {
        let open = self.pos;
        let inner = &self.path[open + 1..];
        if let Some(q) = inner.chars().next().filter(|c| *c == '\'' || *c == '"') {
            // Quoted key: everything up to the matching quote, which must be
            // followed by ']'. Periods and brackets inside are part of the key.
            let closing = format!("{q}]");
            let Some(end) = inner[1..].find(&closing) else {
                return Err(self.err(open, format!("unterminated [{q}...{q}]")));
            };
            let key = &inner[1..1 + end];
            self.pos = open + 1 + 1 + end + 2;
            return Ok(Segment::Field(key.to_string()));
        }
        let Some(end) = inner.find(']') else {
            return Err(self.err(open, "unterminated '['"));
        };
        let content = &inner[..end];
        if content.is_empty() {
            return Err(self.err(open, "empty brackets"));
        }
        if let Some(i) = content.find('[') {
            return Err(self.err(open + 1 + i, "unexpected '['"));
        }
        self.pos = open + 1 + end + 1;
        if content.bytes().all(|b| b.is_ascii_digit()) {
            return match content.parse::<usize>() {
                Ok(n) if n <= MAX_INDEX => Ok(Segment::Index(n)),
                _ => Err(PathError::IndexTooLarge {
                    path: self.path.to_string(),
                    index: content.to_string(),
                }),
            };
        }
        Ok(Segment::Field(content.to_string()))
    }

    fn err(&self, pos: usize, what: impl Into<String>) -> PathError {
        PathError::Syntax {
            path: self.path.to_string(),
            pos,
            what: what.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn p(s: &str) -> FieldPath {
        FieldPath::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn f(s: &str) -> Segment {
        Segment::Field(s.to_string())
    }

    #[test]
    fn parses_valid_paths() {
        let cases: Vec<(&str, Vec<Segment>)> = vec![
            ("metadata.name", vec![f("metadata"), f("name")]),
            (
                "spec.containers[0].name",
                vec![f("spec"), f("containers"), Segment::Index(0), f("name")],
            ),
            ("data[.config.yml]", vec![f("data"), f(".config.yml")]),
            (
                "metadata.annotations['dbclaim.io/x']",
                vec![f("metadata"), f("annotations"), f("dbclaim.io/x")],
            ),
            (
                "metadata.labels[\"a.b\"]",
                vec![f("metadata"), f("labels"), f("a.b")],
            ),
            (
                "spec.items[0][8]",
                vec![f("spec"), f("items"), Segment::Index(0), Segment::Index(8)],
            ),
            ("apiVersion", vec![f("apiVersion")]),
            ("[42]", vec![Segment::Index(42)]),
            ("['a']", vec![f("a")]),
            ("a['0']", vec![f("a"), f("0")]),
            ("a['x]y'].b", vec![f("a"), f("x]y"), f("b")]),
            ("a[b].c", vec![f("a"), f("b"), f("c")]),
            ("a[1024]", vec![f("a"), Segment::Index(1024)]),
        ];
        for (s, want) in cases {
            assert_eq!(p(s).segments(), want.as_slice(), "{s}");
        }
    }

    #[test]
    fn rejects_invalid_paths() {
        for s in [
            "",
            ".metadata",
            "metadata..name",
            "metadata.name.",
            "spec.containers[]",
            "spec.containers.[0]",
            "a[0",
            "a]b",
            "a['b]",
            "a[0]b",
            "a[[0]]",
            "a[1025]",
            "a[99999999999999999999999]",
        ] {
            assert!(FieldPath::parse(s).is_err(), "{s:?} should not parse");
        }
        assert_eq!(FieldPath::parse(""), Err(PathError::Empty));
        assert!(matches!(
            FieldPath::parse("a[2000]"),
            Err(PathError::IndexTooLarge { .. })
        ));
        let msg = FieldPath::parse("a..b").unwrap_err().to_string();
        assert!(msg.contains("position 2"), "{msg}");
    }

    #[test]
    fn displays_canonically() {
        for (s, want) in [
            ("a.b", "a.b"),
            ("a['b.c'].d", "a['b.c'].d"),
            ("a[\"it']s\"]", "a[\"it']s\"]"),
            ("a[\"it's\"]", "a.it's"),
            ("a[0].b", "a[0].b"),
            ("a['0']", "a['0']"),
            ("[1].a", "[1].a"),
            ("data[.config.yml]", "data['.config.yml']"),
        ] {
            assert_eq!(p(s).to_string(), want, "{s}");
            assert_eq!(p(want), p(s), "{want} round-trips");
        }
    }

    #[test]
    fn gets_values() {
        let v = json!({
            "metadata": {"labels": {"a.b/c": "x"}, "name": "n"},
            "list": [1, {"k": "v"}],
            "nil": null,
            "s": "str"
        });
        assert_eq!(p("metadata.name").get(&v), Ok(Some(&json!("n"))));
        assert_eq!(p("metadata.labels['a.b/c']").get(&v), Ok(Some(&json!("x"))));
        assert_eq!(p("list[1].k").get(&v), Ok(Some(&json!("v"))));
        assert_eq!(p("list[0]").get(&v), Ok(Some(&json!(1))));
        assert_eq!(p("list[2]").get(&v), Ok(None));
        assert_eq!(p("metadata.missing.deeper").get(&v), Ok(None));
        assert_eq!(p("nil.deeper").get(&v), Ok(None));
        assert_eq!(p("nil").get(&v), Ok(None));
        assert_eq!(
            p("s.x").get(&v),
            Err(AccessError::NotAnObject {
                at: "s".into(),
                found: "a string"
            })
        );
        assert_eq!(
            p("metadata[0]").get(&v),
            Err(AccessError::NotAnArray {
                at: "metadata".into(),
                found: "an object"
            })
        );
        assert_eq!(
            p("s.x").get(&v).unwrap_err().to_string(),
            "s is a string, not an object"
        );
    }

    #[test]
    fn sets_values_creating_intermediates() {
        let mut v = json!({});
        p("spec.forProvider.tags['team.io/name']")
            .set(&mut v, json!("a"))
            .unwrap();
        p("spec.list[2].name").set(&mut v, json!("x")).unwrap();
        p("spec.matrix[1][1]").set(&mut v, json!(5)).unwrap();
        assert_eq!(
            v,
            json!({"spec": {
                "forProvider": {"tags": {"team.io/name": "a"}},
                "list": [null, null, {"name": "x"}],
                "matrix": [null, [null, 5]]
            }})
        );
        // Existing values are replaced; arrays grow.
        p("spec.list[0]").set(&mut v, json!({"a": 1})).unwrap();
        p("spec.list[4]").set(&mut v, json!(true)).unwrap();
        assert_eq!(
            v["spec"]["list"],
            json!([{"a": 1}, null, {"name": "x"}, null, true])
        );
        // A null on the way becomes a container.
        let mut v = json!({"a": null});
        p("a.b").set(&mut v, json!(1)).unwrap();
        assert_eq!(v, json!({"a": {"b": 1}}));
    }

    #[test]
    fn set_refuses_to_overwrite_another_shape() {
        let mut v = json!({"a": "text", "l": [1]});
        assert_eq!(
            p("a.b").set(&mut v, json!(1)),
            Err(AccessError::NotAnObject {
                at: "a".into(),
                found: "a string"
            })
        );
        assert_eq!(
            p("l.x").set(&mut v, json!(1)),
            Err(AccessError::NotAnObject {
                at: "l".into(),
                found: "an array"
            })
        );
        assert_eq!(
            p("a[0]").set(&mut v, json!(1)),
            Err(AccessError::NotAnArray {
                at: "a".into(),
                found: "a string"
            })
        );
        assert_eq!(v, json!({"a": "text", "l": [1]}));
    }

    #[test]
    fn removes_values() {
        let mut v = json!({"a": {"b": 1, "c": 2}, "l": [1, 2, 3]});
        p("a.b").remove(&mut v);
        p("l[1]").remove(&mut v);
        p("x.y").remove(&mut v);
        p("a.c.d").remove(&mut v);
        assert_eq!(v, json!({"a": {"c": 2}, "l": [1, 3]}));
    }

    proptest! {
        #[test]
        fn arbitrary_strings_never_panic(s in ".{0,40}") {
            if let Ok(path) = FieldPath::parse(&s) {
                // What parses round-trips through its canonical form.
                let again = FieldPath::parse(&path.to_string());
                prop_assert_eq!(again.as_ref(), Ok(&path));
                let mut v = json!({"a": [1, {"b": "c"}], "d": "e"});
                let _ = path.get(&v);
                if path.set(&mut v, json!("x")).is_ok() {
                    prop_assert_eq!(path.get(&v), Ok(Some(&json!("x"))));
                }
                path.remove(&mut v);
            }
        }

        #[test]
        fn set_then_get_on_arbitrary_documents(
            s in "[a-z]{1,3}(\\.[a-z]{1,3}|\\[[0-3]\\]|\\['[a-z.]{1,3}'\\]){0,4}",
            root in crate::engine::transform::tests::arb_json(),
            value in crate::engine::transform::tests::arb_json(),
        ) {
            let path = FieldPath::parse(&s).unwrap();
            let mut doc = root;
            let _ = path.get(&doc);
            match path.set(&mut doc, value.clone()) {
                // What was set reads back (a null reads as absent).
                Ok(()) => prop_assert_eq!(path.get(&doc), Ok(if value.is_null() { None } else { Some(&value) })),
                // A refused set names a prefix of the path.
                Err(AccessError::NotAnObject { at, .. } | AccessError::NotAnArray { at, .. }) => {
                    prop_assert!(at == "the object" || path.to_string().starts_with(&at), "{} / {}", at, path);
                }
            }
        }

        #[test]
        fn path_shaped_strings_never_panic(s in "[a-z.\\[\\]'\"0-9]{0,24}") {
            if let Ok(path) = FieldPath::parse(&s) {
                let again = FieldPath::parse(&path.to_string());
                prop_assert_eq!(again.as_ref(), Ok(&path));
                let mut v = json!({});
                if path.set(&mut v, json!(1)).is_ok() {
                    prop_assert_eq!(path.get(&v), Ok(Some(&json!(1))));
                }
            }
        }
    }
}
