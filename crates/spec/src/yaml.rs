//! A YAML document as a tree of nodes that remember where they were written.
//!
//! `saphyr-parser` turns the source into events marked with line and column; this module assembles
//! them into [`Node`]s and resolves plain scalars with the YAML 1.2 core schema (`null`/`~`, `true`,
//! `false`, integers, floats, `.inf`, `.nan`; everything else, and every quoted scalar, is a string).
//! Anchors and aliases are resolved by copying the anchored node. The validator walks this tree, so
//! every problem it finds can point at the exact key or value.

use std::collections::HashMap;

use saphyr_parser::{Event, Marker, Parser, ScalarStyle, Span, Tag};

/// Where a node was written: 1-based line and column, and the byte range in the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Pos {
    pub line: usize,
    pub column: usize,
    pub offset: usize,
    pub len: usize,
}

/// A YAML node with its position.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub value: Value,
    pub pos: Pos,
}

/// The resolved value of a node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// A string scalar, with its text.
    Str(String),
    Seq(Vec<Node>),
    /// Key/value pairs in document order (duplicates kept; the validator reports them).
    Map(Vec<(Node, Node)>),
}

/// A problem that stops parsing: the source is not well-formed YAML for our purposes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SyntaxError {
    pub pos: Pos,
    pub message: String,
    /// The innermost `[` or `{` still open where the error was found: usually the actual mistake.
    pub open_bracket: Option<(Pos, char)>,
}

impl Node {
    /// What kind of value this is, for messages: "a string", "an integer", ...
    pub fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// A short rendering of a scalar for messages (`yes`, `1.5`); `None` for collections.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Value::Null => Some("null".into()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(format_float(*f)),
            Value::Str(s) => Some(s.clone()),
            Value::Seq(_) | Value::Map(_) => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }
}

/// Formats a float the way YAML would read it back (`0.1`, `1e-7`, `.inf`).
pub(crate) fn format_float(f: f64) -> String {
    if f.is_nan() {
        ".nan".into()
    } else if f.is_infinite() {
        if f > 0.0 { ".inf".into() } else { "-.inf".into() }
    } else {
        f.to_string()
    }
}

/// Parses one YAML document. An empty document (or only comments) gives `Ok(None)`.
pub(crate) fn parse(source: &str) -> Result<Option<Node>, SyntaxError> {
    let index = SourceIndex::new(source);
    let mut parser = Parser::new_from_str(source);
    let mut builder = Builder {
        index: &index,
        stack: Vec::new(),
        anchors: HashMap::new(),
        copied: 0,
        root: None,
        documents: 0,
    };
    while let Some(event) = parser.next_event() {
        let result = match event {
            Ok((event, span)) => builder.event(event, span),
            Err(e) => Err(SyntaxError {
                pos: index.pos(*e.marker(), *e.marker()),
                message: e.info().to_string(),
                open_bracket: None,
            }),
        };
        if let Err(mut e) = result {
            e.open_bracket = builder.open_bracket(source);
            return Err(e);
        }
    }
    Ok(builder.root)
}

/// Converts the parser's character positions into byte offsets and 1-based columns.
struct SourceIndex {
    /// Byte offset of each character, plus the length of the source at the end.
    char_to_byte: Vec<usize>,
}

impl SourceIndex {
    fn new(source: &str) -> Self {
        let mut char_to_byte: Vec<usize> = source.char_indices().map(|(b, _)| b).collect();
        char_to_byte.push(source.len());
        Self { char_to_byte }
    }

    fn byte(&self, char_index: usize) -> usize {
        let last = self.char_to_byte.len() - 1;
        self.char_to_byte[char_index.min(last)]
    }

    fn pos(&self, start: Marker, end: Marker) -> Pos {
        let offset = self.byte(start.index());
        let end = self.byte(end.index()).max(offset);
        Pos {
            line: start.line().max(1),
            column: start.col() + 1,
            offset,
            len: end - offset,
        }
    }
}

enum Frame {
    Seq {
        start: Pos,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        start: Pos,
        anchor: usize,
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
    },
}

struct Builder<'a> {
    index: &'a SourceIndex,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    /// Nodes copied by aliases so far.
    copied: usize,
    root: Option<Node>,
    documents: usize,
}

impl Builder<'_> {
    /// The innermost flow collection (`[` or `{`) being read.
    fn open_bracket(&self, source: &str) -> Option<(Pos, char)> {
        self.stack.iter().rev().find_map(|frame| {
            let (Frame::Seq { start, .. } | Frame::Map { start, .. }) = frame;
            let c = source[start.offset..].chars().next()?;
            matches!(c, '[' | '{').then_some((Pos { len: 1, ..*start }, c))
        })
    }

    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), SyntaxError> {
        let pos = self.index.pos(span.start, span.end);
        match event {
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(SyntaxError {
                        pos,
                        message: "a second YAML document (`---`); deploy.yaml holds exactly one".into(),
                        open_bracket: None,
                    });
                }
            }
            Event::Alias(id) => {
                let Some(node) = self.anchors.get(&id) else {
                    return Err(SyntaxError {
                        pos,
                        message: "alias to an unknown anchor".into(),
                        open_bracket: None,
                    });
                };
                // Aliases copy; bound the copies so nested aliases cannot blow up memory.
                self.copied += node_count(node);
                if self.copied > MAX_ALIAS_NODES {
                    return Err(SyntaxError {
                        pos,
                        message: format!("aliases expand to more than {MAX_ALIAS_NODES} values"),
                        open_bracket: None,
                    });
                }
                let node = node.clone();
                self.push(node)?;
            }
            Event::Scalar(text, style, anchor, tag) => {
                let value = resolve_scalar(&text, style, tag.as_deref());
                let node = Node { value, pos };
                if anchor != 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.push(node)?;
            }
            Event::SequenceStart(anchor, _) => {
                self.stack.push(Frame::Seq {
                    start: pos,
                    anchor,
                    items: Vec::new(),
                });
            }
            Event::MappingStart(anchor, _) => {
                self.stack.push(Frame::Map {
                    start: pos,
                    anchor,
                    entries: Vec::new(),
                    key: None,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let node = match self.stack.pop() {
                    Some(Frame::Seq { start, anchor, items }) => (
                        Node {
                            value: Value::Seq(items),
                            pos: start,
                        },
                        anchor,
                    ),
                    Some(Frame::Map {
                        start,
                        anchor,
                        entries,
                        ..
                    }) => (
                        Node {
                            value: Value::Map(entries),
                            pos: start,
                        },
                        anchor,
                    ),
                    None => return Ok(()),
                };
                if node.1 != 0 {
                    self.anchors.insert(node.1, node.0.clone());
                }
                self.push(node.0)?;
            }
        }
        Ok(())
    }

    /// Attaches a finished node to its parent (or makes it the document root).
    fn push(&mut self, node: Node) -> Result<(), SyntaxError> {
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => {
                    if matches!(node.value, Value::Seq(_) | Value::Map(_)) {
                        return Err(SyntaxError {
                            pos: node.pos,
                            message: "a list or mapping used as a key; keys must be plain names".into(),
                            open_bracket: None,
                        });
                    }
                    *key = Some(node);
                }
                Some(k) => entries.push((k, node)),
            },
        }
        Ok(())
    }
}

/// The most nodes aliases may copy: far beyond any real deploy.yaml, far below a memory problem.
const MAX_ALIAS_NODES: usize = 10_000;

fn node_count(node: &Node) -> usize {
    1 + match &node.value {
        Value::Seq(items) => items.iter().map(node_count).sum(),
        Value::Map(entries) => entries.iter().map(|(k, v)| node_count(k) + node_count(v)).sum(),
        _ => 0,
    }
}

/// Resolves a scalar with the YAML 1.2 core schema. Quoted scalars and `!!str` are strings.
fn resolve_scalar(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Value {
    let core_tag = tag.filter(|t| t.is_yaml_core_schema()).map(|t| t.suffix.as_str());
    if style != ScalarStyle::Plain || core_tag == Some("str") {
        return Value::Str(text.to_string());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Value::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    if let Some(v) = parse_int(text) {
        return v;
    }
    if is_float(text)
        && let Ok(f) = text.parse::<f64>()
    {
        return Value::Float(f);
    }
    Value::Str(text.to_string())
}

fn parse_int(text: &str) -> Option<Value> {
    let (digits, radix) = if let Some(hex) = text.strip_prefix("0x") {
        (hex, 16)
    } else if let Some(oct) = text.strip_prefix("0o") {
        (oct, 8)
    } else {
        let body = text.strip_prefix(['-', '+']).unwrap_or(text);
        if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        return Some(match text.parse::<i64>() {
            Ok(i) => Value::Int(i),
            // Too large for i64: still a number, and the range checks will say so.
            Err(_) => Value::Float(text.parse::<f64>().ok()?),
        });
    };
    if digits.is_empty() {
        return None;
    }
    i64::from_str_radix(digits, radix).ok().map(Value::Int)
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
fn is_float(text: &str) -> bool {
    let b = text.strip_prefix(['-', '+']).unwrap_or(text).as_bytes();
    let mut i = 0;
    let int_digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    i += int_digits;
    let mut frac_digits = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        frac_digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        i += frac_digits;
    }
    if int_digits == 0 && frac_digits == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'-' | b'+')) {
            i += 1;
        }
        let exp = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if exp == 0 {
            return false;
        }
        i += exp;
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(src: &str) -> Node {
        parse(src).unwrap().unwrap()
    }

    fn entries(node: &Node) -> &[(Node, Node)] {
        match &node.value {
            Value::Map(e) => e,
            other => panic!("not a map: {other:?}"),
        }
    }

    #[test]
    fn scalars_resolve_with_the_yaml_1_2_core_schema() {
        let n = root("a: 1\nb: 0.5\nc: true\nd: yes\ne: ~\nf: '1'\ng: 1e3\nh: .inf\ni: 0x1F\nj: 1.2.3\nk:\n");
        let values: Vec<_> = entries(&n).iter().map(|(_, v)| v.value.clone()).collect();
        assert_eq!(
            values,
            vec![
                Value::Int(1),
                Value::Float(0.5),
                Value::Bool(true),
                Value::Str("yes".into()),
                Value::Null,
                Value::Str("1".into()),
                Value::Float(1000.0),
                Value::Float(f64::INFINITY),
                Value::Int(31),
                Value::Str("1.2.3".into()),
                Value::Null,
            ]
        );
    }

    #[test]
    fn positions_are_one_based_lines_and_columns() {
        let n = root("version: 1\ntraining:\n  instance_type: ml.m5.large\n");
        let (k, v) = &entries(&n)[1];
        assert_eq!((k.pos.line, k.pos.column), (2, 1));
        let (k2, v2) = &entries(v)[0];
        assert_eq!((k2.pos.line, k2.pos.column), (3, 3));
        assert_eq!((v2.pos.line, v2.pos.column), (3, 18));
        assert_eq!(v2.pos.len, "ml.m5.large".len());
    }

    #[test]
    fn columns_count_characters_and_offsets_count_bytes() {
        let src = "tags: {é: x, k: v}\n";
        let n = root(src);
        let (_, tags) = &entries(&n)[0];
        let (k, _) = &entries(tags)[1];
        assert_eq!(k.pos.column, 14);
        assert_eq!(&src[k.pos.offset..k.pos.offset + k.pos.len], "k");
    }

    #[test]
    fn aliases_copy_the_anchored_node() {
        let n = root("a: &x {b: 1}\nc: *x\n");
        assert_eq!(entries(&n)[0].1.value, entries(&n)[1].1.value);
    }

    #[test]
    fn nested_aliases_cannot_blow_up() {
        let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = i - 1;
            src.push_str(&format!("a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"));
        }
        let err = parse(&src).unwrap_err();
        assert!(err.message.contains("aliases expand"), "{err:?}");
    }

    #[test]
    fn empty_documents_have_no_root() {
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("# only a comment\n").unwrap(), None);
    }

    #[test]
    fn syntax_errors_carry_a_position() {
        let err = parse("a: b\n c: d\n").unwrap_err();
        assert_eq!(err.pos.line, 2);
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        let (open, c) = err.open_bracket.expect("the open bracket is found");
        assert_eq!((open.line, open.column, c), (1, 4, '['));
    }

    #[test]
    fn a_second_document_is_an_error() {
        let err = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(err.pos.line, 2);
    }
}
