//! The REST target's templates (minijinja) and paths (JSONPath, RFC 9535,
//! serde_json_path), compiled when the config is read so that a syntax
//! error is a config problem naming the key, the line and the column.

use serde_json::Value;
use serde_json_path::JsonPath;
use std::sync::Arc;

/// Every template of one target, by name (the config key that holds it).
#[derive(Clone)]
pub struct Templates {
    env: Arc<minijinja::Environment<'static>>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates").field("count", &self.env.templates().count()).finish()
    }
}

/// Collects templates while a config is read.
pub struct Builder {
    env: minijinja::Environment<'static>,
}

impl Default for Builder {
    fn default() -> Self {
        let mut env = minijinja::Environment::new();
        env.add_filter("strip_prefix", crate::mapping::strip_prefix);
        // Nothing is HTML here: values go into JSON through `tojson`.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        Builder { env }
    }
}

/// A template or JSONPath that does not work, with its cause.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// A template that does not compile: where, and what.
    #[error("{at}")]
    Syntax {
        at: String,
        #[source]
        source: minijinja::Error,
    },
    #[error("template {name}: {source}")]
    Render {
        name: String,
        #[source]
        source: minijinja::Error,
    },
    /// A body template whose output is not JSON (the output cut short).
    #[error("{name} did not make JSON ({source}): {text}")]
    NotJson {
        name: String,
        text: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("not a JSONPath (RFC 9535): {0}")]
    Path(#[source] serde_json_path::ParseError),
}

impl Builder {
    /// Compile `source` as template `name`; a syntax error says where.
    pub fn add(&mut self, name: &str, source: &str) -> Result<(), TemplateError> {
        self.env.add_template_owned(name.to_owned(), source.to_owned()).map_err(|e| TemplateError::Syntax { at: at(&e, source), source: e })
    }

    pub fn build(self) -> Templates {
        Templates { env: Arc::new(self.env) }
    }
}

/// `line L, column C: what` for an error inside `source`.
fn at(e: &minijinja::Error, source: &str) -> String {
    let what = e.detail().map_or_else(|| e.kind().to_string(), |d| format!("{}: {d}", e.kind()));
    match (e.line(), e.range()) {
        (Some(line), Some(range)) => {
            let start = source[..range.start.min(source.len())].rfind('\n').map_or(0, |i| i + 1);
            format!("template error at line {line}, column {}: {what}", range.start.saturating_sub(start) + 1)
        }
        (Some(line), None) => format!("template error at line {line}: {what}"),
        _ => format!("template error: {what}"),
    }
}

impl Templates {
    /// Render template `name` with `ctx`.
    pub fn render(&self, name: &str, ctx: &Value) -> Result<String, TemplateError> {
        let render = |source| TemplateError::Render { name: name.to_owned(), source };
        self.env.get_template(name).map_err(render)?.render(ctx).map_err(render)
    }

    /// A template's source text ("" when there is none).
    pub fn source(&self, name: &str) -> String {
        self.env.get_template(name).map(|t| t.source().to_owned()).unwrap_or_default()
    }
}

/// A compiled JSONPath and its text.
#[derive(Clone, Debug)]
pub struct Path {
    pub text: String,
    path: JsonPath,
}

impl Path {
    pub fn parse(text: &str) -> Result<Path, TemplateError> {
        JsonPath::parse(text).map(|path| Path { text: text.to_owned(), path }).map_err(TemplateError::Path)
    }

    /// Every node it selects.
    pub fn all<'v>(&self, v: &'v Value) -> Vec<&'v Value> {
        self.path.query(v).all()
    }

    /// The first node, as text (numbers and booleans spelled out; null and
    /// nothing are `None`).
    pub fn text(&self, v: &Value) -> Option<String> {
        match self.path.query(v).all().first()? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            Value::Array(a) => a.first().and_then(|x| x.as_str()).map(str::to_owned),
            other => Some(other.to_string()),
        }
    }
}
