//! A YAML document as a tree of nodes that remember where they were written.
//!
//! `saphyr-parser` turns the source into events marked with line and column; this module assembles
//! them into [`Node`]s and resolves plain scalars with the YAML 1.2 core schema (`null`/`~`, `true`,
//! `false`, integers, floats, `.inf`, `.nan`; everything else, and every quoted scalar, is a string).
//! Anchors and aliases are resolved by copying the anchored node, within [`MAX_ALIAS_BYTES`] in all;
//! lists and mappings nest at most [`MAX_NESTING`] deep. The validator walks this tree, so every
//! problem it finds can point at the exact key or value.

use std::collections::HashMap;

use saphyr_parser::{Event, Marker, Parser, ScalarStyle, Span, Tag};

use crate::limits::{MAX_ALIAS_BYTES, MAX_NESTING, human_bytes};

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

/// A problem that stops parsing: the source is not well-formed YAML for our purposes, or it is past a
/// limit that bounds reading it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ParseError {
    pub pos: Pos,
    pub message: String,
    pub cause: Cause,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cause {
    /// Not well-formed YAML (the scanner or parser says why). The innermost `[` or `{` still open
    /// where the error was found is usually the actual mistake.
    Malformed { open_bracket: Option<(Pos, char)> },
    /// Well-formed YAML that deploy.yaml cannot hold: a second document, a list or mapping as a
    /// key, an alias inside the value it names; `help` says what to write instead.
    Unsupported { help: String },
    /// Well-formed, but nested deeper than [`MAX_NESTING`] or copying more than [`MAX_ALIAS_BYTES`]
    /// through anchors and aliases; `help` says what to do.
    Limit { help: String },
}

impl ParseError {
    fn unsupported(pos: Pos, message: impl Into<String>, help: &str) -> Self {
        Self {
            pos,
            message: message.into(),
            cause: Cause::Unsupported { help: help.into() },
        }
    }

    fn limit(pos: Pos, message: String, help: &str) -> Self {
        Self {
            pos,
            message,
            cause: Cause::Limit { help: help.into() },
        }
    }
}

/// The help line for a malformed file, from the parser's message where it names a usual mistake.
pub(crate) fn malformed_help(message: &str) -> &'static str {
    const HELPS: &[(&str, &str)] = &[
        (
            "tabs disallowed",
            "indent with spaces: YAML does not allow tabs in indentation",
        ),
        (
            "unknown escape character",
            "in double quotes `\\` starts an escape such as `\\n`: write `\\\\` for a backslash, or use \
             single quotes",
        ),
        (
            "unknown anchor",
            "define the anchor (`&name value`) before the alias (`*name`) that uses it, or write the \
             value out",
        ),
        (
            "quoted scalar",
            "a quote is probably never closed: end the value with the quote it starts with",
        ),
        (
            "expect ':'",
            "each line of a mapping is `key: value`, with a space after the `:`; check this line and \
             the one before",
        ),
    ];
    HELPS.iter().find(|(needle, _)| message.contains(needle)).map_or(
        "check the indentation, quoting and brackets near here",
        |(_, help)| help,
    )
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
///
/// Nesting and the copies made for anchors and aliases are checked event by event, before the node
/// they concern exists, so no input can make this use more than [`MAX_NESTING`] levels of stack (in
/// the validator and in `Drop`) or more than [`MAX_ALIAS_BYTES`] for copies.
pub(crate) fn parse(source: &str) -> Result<Option<Node>, ParseError> {
    let index = SourceIndex::new(source);
    let mut parser = Parser::new_from_str(source);
    let mut builder = Builder {
        index: &index,
        source,
        stack: Vec::new(),
        anchors: HashMap::new(),
        copied: 0,
        root: None,
        documents: 0,
    };
    while let Some(event) = parser.next_event() {
        let result = match event {
            Ok((event, span)) => builder.event(event, span),
            Err(e) => {
                let pos = index.pos(*e.marker(), *e.marker());
                Err(if e.info() == SCANNER_FLOW_LIMIT_MESSAGE {
                    // On one line, the scanner reads up to 1024 characters ahead of the events, so
                    // `[[[[…` reaches its own limit before the builder sees level 65.
                    let message = format!(
                        "lists and mappings nest more than {MAX_NESTING} deep (the `[` and `{{` here are \
                         {SCANNER_FLOW_LIMIT} deep)"
                    );
                    ParseError::limit(pos, message, NESTING_HELP)
                } else {
                    ParseError {
                        pos,
                        message: e.info().to_string(),
                        cause: Cause::Malformed {
                            open_bracket: builder.open_bracket(),
                        },
                    }
                })
            }
        };
        result?;
    }
    Ok(builder.root)
}

/// How deep saphyr-parser's scanner nests `[` and `{` (its level is a `u8`), and what it says past it.
const SCANNER_FLOW_LIMIT: usize = u8::MAX as usize;
const SCANNER_FLOW_LIMIT_MESSAGE: &str = "recursion limit exceeded";

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

/// What a built node weighs: the bytes a copy of it takes (each node's size plus its scalars' text)
/// and how many levels of lists and mappings it holds (0 for a scalar).
#[derive(Debug, Clone, Copy, Default)]
struct Extent {
    bytes: usize,
    height: usize,
}

impl Extent {
    fn scalar(text: &str) -> Self {
        Self {
            bytes: NODE_BYTES.saturating_add(text.len()),
            height: 0,
        }
    }

    /// Adds a child's extent to the extent of a collection's children.
    fn include(&mut self, child: Extent) {
        self.bytes = self.bytes.saturating_add(child.bytes);
        self.height = self.height.max(child.height);
    }

    /// The extent of a collection whose children together have this extent.
    fn collection(children: Extent) -> Self {
        Self {
            bytes: NODE_BYTES.saturating_add(children.bytes),
            height: children.height + 1,
        }
    }
}

/// The heap cost counted for each node a copy makes.
const NODE_BYTES: usize = std::mem::size_of::<Node>();

/// A list or mapping being read.
struct Frame {
    start: Pos,
    anchor: usize,
    /// The children read so far, together.
    children: Extent,
    body: Body,
}

enum Body {
    Seq(Vec<Node>),
    Map {
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
    },
}

struct Builder<'a> {
    index: &'a SourceIndex,
    source: &'a str,
    stack: Vec<Frame>,
    anchors: HashMap<usize, (Node, Extent)>,
    /// Bytes copied for anchors and aliases so far.
    copied: usize,
    root: Option<Node>,
    documents: usize,
}

const NESTING_HELP: &str = "deploy.yaml nests three levels (`training.hyperparameters.<key>`): look \
                            for a `[` or `{` that is never closed, or indentation that keeps growing";
const ALIAS_HELP: &str =
    "write the value out instead of aliasing it; deploy.yaml has no use for large or repeated aliases";

impl Builder<'_> {
    /// The innermost flow collection (`[` or `{`) being read.
    fn open_bracket(&self) -> Option<(Pos, char)> {
        self.stack.iter().rev().find_map(|frame| {
            let c = self.source[frame.start.offset..].chars().next()?;
            matches!(c, '[' | '{').then_some((
                Pos {
                    len: 1,
                    ..frame.start
                },
                c,
            ))
        })
    }

    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), ParseError> {
        let pos = self.index.pos(span.start, span.end);
        match event {
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(ParseError::unsupported(
                        pos,
                        "a second YAML document (`---`); deploy.yaml holds exactly one",
                        "remove this `---` and what follows it, or merge the two documents into one",
                    ));
                }
            }
            Event::Alias(id) => {
                let name = self.source.get(pos.offset..pos.offset + pos.len).unwrap_or("*");
                // The parser resolves every alias to an anchor it has seen; one not kept yet is
                // still open: the alias is inside the value it names.
                let Some(extent) = self.anchors.get(&id).map(|(_, extent)| *extent) else {
                    return Err(ParseError::unsupported(
                        pos,
                        format!("alias `{name}` is inside the value it names"),
                        "a value cannot contain itself: write the inner value out",
                    ));
                };
                if self.stack.len() + extent.height > MAX_NESTING {
                    let message =
                        format!("alias `{name}` nests lists and mappings more than {MAX_NESTING} deep here");
                    return Err(ParseError::limit(pos, message, ALIAS_HELP));
                }
                if !self.copy(extent) {
                    let message = format!(
                        "anchors and aliases copy more than {} in all; `{name}` copies {} more",
                        human_bytes(MAX_ALIAS_BYTES),
                        human_bytes(extent.bytes)
                    );
                    return Err(ParseError::limit(pos, message, ALIAS_HELP));
                }
                // Copied only now that the copy is known to fit.
                let node = self.anchors[&id].0.clone();
                self.push(node, extent)?;
            }
            Event::Scalar(text, style, anchor, tag) => {
                let extent = Extent::scalar(&text);
                let value = resolve_scalar(&text, style, tag.as_deref());
                let node = Node { value, pos };
                self.anchor(anchor, &node, extent)?;
                self.push(node, extent)?;
            }
            Event::SequenceStart(anchor, _) => self.open(pos, anchor, Body::Seq(Vec::new()))?,
            Event::MappingStart(anchor, _) => self.open(
                pos,
                anchor,
                Body::Map {
                    entries: Vec::new(),
                    key: None,
                },
            )?,
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = self.stack.pop() else {
                    return Ok(());
                };
                let extent = Extent::collection(frame.children);
                let value = match frame.body {
                    Body::Seq(items) => Value::Seq(items),
                    Body::Map { entries, .. } => Value::Map(entries),
                };
                let node = Node {
                    value,
                    pos: frame.start,
                };
                self.anchor(frame.anchor, &node, extent)?;
                self.push(node, extent)?;
            }
        }
        Ok(())
    }

    /// Starts a list or mapping, unless that nests too deep.
    fn open(&mut self, start: Pos, anchor: usize, body: Body) -> Result<(), ParseError> {
        if self.stack.len() == MAX_NESTING {
            let message = format!("lists and mappings nest more than {MAX_NESTING} deep here");
            return Err(ParseError::limit(start, message, NESTING_HELP));
        }
        self.stack.push(Frame {
            start,
            anchor,
            children: Extent::default(),
            body,
        });
        Ok(())
    }

    /// Counts a copy against [`MAX_ALIAS_BYTES`]; false when it does not fit.
    fn copy(&mut self, extent: Extent) -> bool {
        self.copied = self.copied.saturating_add(extent.bytes);
        self.copied <= MAX_ALIAS_BYTES
    }

    /// Keeps a copy of an anchored node (`anchor` 0 means none) for the aliases to come.
    fn anchor(&mut self, anchor: usize, node: &Node, extent: Extent) -> Result<(), ParseError> {
        if anchor == 0 {
            return Ok(());
        }
        if !self.copy(extent) {
            let message = format!(
                "anchors and aliases copy more than {} in all; keeping this anchored value for its \
                 aliases takes {} more",
                human_bytes(MAX_ALIAS_BYTES),
                human_bytes(extent.bytes)
            );
            return Err(ParseError::limit(node.pos, message, ALIAS_HELP));
        }
        self.anchors.insert(anchor, (node.clone(), extent));
        Ok(())
    }

    /// Attaches a finished node to its parent (or makes it the document root).
    fn push(&mut self, node: Node, extent: Extent) -> Result<(), ParseError> {
        let Some(frame) = self.stack.last_mut() else {
            self.root = Some(node);
            return Ok(());
        };
        frame.children.include(extent);
        match &mut frame.body {
            Body::Seq(items) => items.push(node),
            Body::Map { entries, key } => match key.take() {
                None => {
                    if matches!(node.value, Value::Seq(_) | Value::Map(_)) {
                        return Err(ParseError::unsupported(
                            node.pos,
                            "a list or mapping used as a key; keys must be plain names",
                            "write one `key: value` line per key, e.g. `train: data/train.csv`",
                        ));
                    }
                    *key = Some(node);
                }
                Some(k) => entries.push((k, node)),
            },
        }
        Ok(())
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
        assert!(
            err.message
                .starts_with("anchors and aliases copy more than 1 MiB in all"),
            "{err:?}"
        );
        assert!(matches!(err.cause, Cause::Limit { .. }));
    }

    /// Regression: the alias cap counted nodes, so one large scalar aliased many times (a few nodes,
    /// gigabytes of copies) passed. It counts bytes now, and stops at the alias that crosses it.
    #[test]
    fn a_large_scalar_aliased_many_times_stops_at_the_first_alias_past_the_limit() {
        let big = "x".repeat(MAX_ALIAS_BYTES / 5);
        let src = format!("a: &big {big}\nb: [*big, *big, *big, *big, *big, *big]\n");
        let err = parse(&src).unwrap_err();
        // The anchor's copy and three aliases fit; the fourth alias does not.
        assert_eq!((err.pos.line, err.pos.column), (2, 23), "{err:?}");
        assert_eq!(
            err.message,
            "anchors and aliases copy more than 1 MiB in all; `*big` copies 205 KiB more"
        );
    }

    #[test]
    fn small_aliases_are_well_within_the_limit() {
        let mut src = String::from("a: &x {b: 1, c: [d, e]}\nlist:\n");
        for _ in 0..1000 {
            src.push_str("  - *x\n");
        }
        let n = root(&src);
        let Value::Seq(items) = &entries(&n)[1].1.value else {
            panic!("a list")
        };
        assert_eq!(items.len(), 1000);
    }

    #[test]
    fn an_alias_inside_the_value_it_names_is_refused() {
        let err = parse("a: &x [1, *x]\n").unwrap_err();
        assert_eq!(err.message, "alias `*x` is inside the value it names");
        assert_eq!((err.pos.line, err.pos.column), (1, 11));
    }

    fn nesting_error(src: &str) -> ParseError {
        let err = parse(src).unwrap_err();
        let expected = format!("lists and mappings nest more than {MAX_NESTING} deep");
        assert!(err.message.starts_with(&expected), "{err:?}");
        assert!(matches!(err.cause, Cause::Limit { .. }), "{err:?}");
        err
    }

    /// Regression: nesting was unbounded, and the tree, the validator and `Drop` recurse per level.
    /// 100,000 levels of each kind of collection stop early, on the event stream (at level 65), or in
    /// the scanner for brackets on one line (it reads ahead; its limit is 255).
    #[test]
    fn deep_nesting_stops_at_the_limit_for_every_kind_of_collection() {
        let levels = 100_000;
        for open in ["[", "{", "[{a: "] {
            let err = nesting_error(&open.repeat(levels));
            assert_eq!(err.pos.line, 1);
            assert!(
                err.message.ends_with("(the `[` and `{` here are 255 deep)"),
                "{err:?}"
            );
        }
        // Below the scanner's limit, the event stream stops at level 65.
        for open in ["[", "{"] {
            let err = nesting_error(&open.repeat(SCANNER_FLOW_LIMIT - 1));
            assert_eq!((err.pos.line, err.pos.column), (1, MAX_NESTING + 1));
            assert!(err.message.ends_with(" deep here"), "{err:?}");
        }
        let err = nesting_error(&format!("{}x\n", "- ".repeat(levels)));
        assert_eq!((err.pos.line, err.pos.column), (1, 2 * MAX_NESTING + 1));
        // Block mappings indent one more column per level: the 65th mapping starts on line 65.
        let block: String = (0..1_000).map(|i| format!("{}k{i}:\n", " ".repeat(i))).collect();
        let err = nesting_error(&block);
        assert_eq!((err.pos.line, err.pos.column), (MAX_NESTING + 1, MAX_NESTING + 1));
    }

    #[test]
    fn nesting_up_to_the_limit_is_read() {
        let depth = MAX_NESTING;
        let src = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let mut node = root(&src);
        let mut levels = 0;
        while let Value::Seq(mut items) = node.value {
            levels += 1;
            match items.pop() {
                Some(inner) => node = inner,
                None => break,
            }
        }
        assert_eq!(levels, depth);
    }

    #[test]
    fn aliases_cannot_nest_past_the_limit() {
        let half = MAX_NESTING / 2 + 1;
        let src = format!(
            "a: &deep {}{}\nb: {}*deep{}\n",
            "[".repeat(half),
            "]".repeat(half),
            "[".repeat(half),
            "]".repeat(half)
        );
        let err = parse(&src).unwrap_err();
        assert_eq!(err.pos.line, 2);
        assert_eq!(
            err.message,
            format!("alias `*deep` nests lists and mappings more than {MAX_NESTING} deep here")
        );
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
        let Cause::Malformed { open_bracket } = err.cause else {
            panic!("malformed: {err:?}")
        };
        let (open, c) = open_bracket.expect("the open bracket is found");
        assert_eq!((open.line, open.column, c), (1, 4, '['));
    }

    #[test]
    fn a_second_document_is_an_error() {
        let err = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(err.pos.line, 2);
    }
}
