//! What is wrong with a deploy.yaml, and where: one [`Diagnostic`] per problem, all of them collected
//! into [`Diagnostics`].
//!
//! The plain rendering (`Display`) is the compiler-style line editors and CI logs understand:
//!
//! ```text
//! deploy.yaml:12:5: unknown key `instanse_type` in `training`
//!   help: did you mean `instance_type`?
//! ```
//!
//! Both types also implement [`miette::Diagnostic`] (with the source attached and the offending span
//! labelled), so a binary that enables miette's `fancy` feature can draw the source snippet.

use std::fmt;
use std::sync::Arc;

use miette::{LabeledSpan, NamedSource, SourceCode};
use serde::Serialize;

/// A 1-based line and column (columns count characters, not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

/// The class of a problem; the message says the details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The file could not be read.
    Io,
    /// The file is not well-formed YAML.
    Syntax,
    /// A key the schema does not know.
    UnknownKey,
    /// A key written twice in the same mapping.
    DuplicateKey,
    /// A required key is absent (or null).
    MissingKey,
    /// A value of the wrong YAML type (a string where a number belongs, ...).
    WrongType,
    /// A value of the right type that breaks a constraint (range, name rules, format).
    InvalidValue,
    /// A local data path that does not exist or holds no readable data.
    MissingFile,
    /// Two settings that cannot hold together.
    Conflict,
    /// The file is past a limit that bounds reading it: its size, its nesting depth, or what its
    /// aliases copy (see [`crate::MAX_FILE_BYTES`], [`crate::MAX_NESTING`], [`crate::MAX_ALIAS_BYTES`]).
    Limit,
}

/// A secondary location that explains a diagnostic ("`min` is set here").
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Note {
    pub location: Location,
    pub message: String,
    #[serde(skip)]
    pub(crate) span: (usize, usize),
}

/// One problem in a deploy.yaml.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnostic {
    pub kind: Kind,
    /// The file as the user named it (`deploy.yaml`, `examples/deploy.yaml`).
    pub file: String,
    /// Where the problem is; `None` only when the file itself could not be read (missing, unreadable,
    /// a directory or a device).
    pub location: Option<Location>,
    /// The dotted key the problem concerns (`training.instance_type`), when there is one.
    pub key: Option<String>,
    /// What is wrong, in one line.
    pub message: String,
    /// How to fix it ("did you mean `instance_type`?").
    pub help: Option<String>,
    /// Other places that take part (the other side of a conflict, the first of two duplicate keys).
    pub notes: Vec<Note>,
    /// Byte offset and length of the offending text, for labelled snippets.
    #[serde(skip)]
    pub(crate) span: Option<(usize, usize)>,
    #[serde(skip)]
    pub(crate) source: Option<Arc<NamedSource<String>>>,
}

impl Diagnostic {
    /// The 1-based line, if the problem has a position.
    pub fn line(&self) -> Option<usize> {
        self.location.map(|l| l.line)
    }

    /// The 1-based column, if the problem has a position.
    pub fn column(&self) -> Option<usize> {
        self.location.map(|l| l.column)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            Some(Location { line, column }) => write!(f, "{}:{line}:{column}: {}", self.file, self.message)?,
            None => write!(f, "{}: {}", self.file, self.message)?,
        }
        for note in &self.notes {
            let Location { line, column } = note.location;
            write!(f, "\n  note: {}:{line}:{column}: {}", self.file, note.message)?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostic {}

impl miette::Diagnostic for Diagnostic {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        let code = match self.kind {
            Kind::Io => "deploy_yaml::io",
            Kind::Syntax => "deploy_yaml::syntax",
            Kind::UnknownKey => "deploy_yaml::unknown_key",
            Kind::DuplicateKey => "deploy_yaml::duplicate_key",
            Kind::MissingKey => "deploy_yaml::missing_key",
            Kind::WrongType => "deploy_yaml::wrong_type",
            Kind::InvalidValue => "deploy_yaml::invalid_value",
            Kind::MissingFile => "deploy_yaml::missing_file",
            Kind::Conflict => "deploy_yaml::conflict",
            Kind::Limit => "deploy_yaml::limit",
        };
        Some(Box::new(code))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source.as_deref().map(|s| s as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let (offset, len) = self.span?;
        let primary = LabeledSpan::new_primary_with_span(Some("here".into()), (offset, len));
        let notes = self
            .notes
            .iter()
            .map(|n| LabeledSpan::new_with_span(Some(n.message.clone()), n.span));
        Some(Box::new(std::iter::once(primary).chain(notes)))
    }
}

/// Every problem found in one deploy.yaml, in document order. This is the error of [`crate::load`] and
/// [`crate::parse`]; it is never empty.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnostics {
    file: String,
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub(crate) fn new(file: String, mut items: Vec<Diagnostic>) -> Self {
        // Document order; problems without a position (unreadable file) first. The sort is stable,
        // so problems found at the same spot keep the order they were found in.
        items.sort_by_key(|d| d.location);
        Self { file, items }
    }

    /// The file the diagnostics are about, as the user named it.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The problems, in document order.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.items.iter()
    }

    /// How many problems there are (at least one).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Always false: a `Diagnostics` holds at least one problem.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Moves the problems out.
    pub fn into_vec(self) -> Vec<Diagnostic> {
        self.items
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

impl fmt::Display for Diagnostics {
    /// Every diagnostic, one after the other, each ending with a newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.items {
            writeln!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

impl miette::Diagnostic for Diagnostics {
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        let n = self.items.len();
        let problems = if n == 1 { "problem" } else { "problems" };
        Some(Box::new(format!("{} has {n} {problems}", self.file)))
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        Some(Box::new(self.items.iter().map(|d| d as &dyn miette::Diagnostic)))
    }
}
