//! `[mapping.users]` and `[mapping.departments]`: a model field set by an
//! expression (minijinja) over the source's own record, with the vendor's
//! field names. No mapping configured: each source's fixed mapping, as
//! before. Expressions are compiled when the config is read, so that a
//! syntax error is a config problem naming the key, line and column; one
//! that fails for a record makes that record `invalid`, naming the field.
//!
//! An expression sees the record's top-level fields as variables, the
//! whole record as `record` (for names that are not identifiers:
//! `record["x-id"]`), and what the fixed mapping made of it as `mapped`
//! (`mapped.email`). Its value becomes the field: text as it is, a number
//! as its digits; nothing (`none`, an undefined field, `""`) leaves the
//! field empty; a list or a map is an error.

use crate::model::{Department, User, UserField};
use minijinja::value::Value as J;
use minijinja::{Environment, Error, ErrorKind};
use serde_json::Value;
use std::sync::Arc;

/// A model field an expression can set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Username,
    Name,
    Email,
    Mobile,
    EmployeeNo,
    Nickname,
    Title,
    /// The manager's source user id.
    Manager,
}

impl Field {
    pub const ALL: [Field; 8] =
        [Field::Username, Field::Name, Field::Email, Field::Mobile, Field::EmployeeNo, Field::Nickname, Field::Title, Field::Manager];

    /// Its key under `[mapping.users]`.
    pub fn key(self) -> &'static str {
        match self {
            Field::Username => "username",
            Field::Name => "name",
            Field::Email => "email",
            Field::Mobile => "mobile",
            Field::EmployeeNo => "employee_no",
            Field::Nickname => "nickname",
            Field::Title => "title",
            Field::Manager => "manager",
        }
    }

    /// The field of the model's `absent` list (`None` for the username).
    fn model(self) -> Option<UserField> {
        match self {
            Field::Username => None,
            Field::Name => Some(UserField::Name),
            Field::Email => Some(UserField::Email),
            Field::Mobile => Some(UserField::Mobile),
            Field::EmployeeNo => Some(UserField::EmployeeNo),
            Field::Nickname => Some(UserField::Nickname),
            Field::Title => Some(UserField::Title),
            Field::Manager => Some(UserField::Manager),
        }
    }

    fn is_set(self, u: &User) -> bool {
        match self {
            Field::Manager => u.manager_id.is_some(),
            _ => self.text(u).is_some(),
        }
    }

    fn set(self, u: &mut User, v: Option<String>) {
        match self {
            Field::Manager => u.manager_id = v.map(crate::model::SourceId),
            _ => *self.slot(u) = v,
        }
    }

    fn text(self, u: &User) -> &Option<String> {
        match self {
            Field::Username => &u.username,
            Field::Name => &u.name,
            Field::Email => &u.email,
            Field::Mobile => &u.mobile,
            Field::EmployeeNo => &u.employee_no,
            Field::Nickname => &u.nickname,
            Field::Title => &u.title,
            Field::Manager => &None,
        }
    }

    fn slot(self, u: &mut User) -> &mut Option<String> {
        match self {
            Field::Username => &mut u.username,
            Field::Name => &mut u.name,
            Field::Email => &mut u.email,
            Field::Mobile => &mut u.mobile,
            Field::EmployeeNo => &mut u.employee_no,
            Field::Nickname => &mut u.nickname,
            Field::Title => &mut u.title,
            // Set through `set`.
            Field::Manager => unreachable!("the manager is set through Field::set"),
        }
    }
}

/// The configured expressions, compiled. `Mapping::default()` maps nothing
/// (each source's fixed mapping stands).
#[derive(Clone, Default)]
pub struct Mapping {
    env: Option<Arc<Environment<'static>>>,
    users: Vec<(Field, String)>,
    /// `[mapping.attributes]`: (name, expression).
    attributes: Vec<(String, String)>,
    department_name: Option<String>,
    /// An expression names `mapped` (the fixed mapping's result is then made for it).
    uses_mapped: bool,
    /// The record fields the user expressions read (`None`: the whole record, through `record`).
    user_fields: Option<std::collections::BTreeSet<String>>,
    /// The same for the department expression.
    department_fields: Option<std::collections::BTreeSet<String>>,
}

impl std::fmt::Debug for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let users: Vec<(&str, &str)> = self.users.iter().map(|(f, s)| (f.key(), s.as_str())).collect();
        f.debug_struct("Mapping")
            .field("users", &users)
            .field("attributes", &self.attributes)
            .field("department_name", &self.department_name)
            .finish()
    }
}

/// Marks "nothing" in a rendered value (text never starts with it).
const NOTHING: &str = "\u{0}";
const USERS: &str = "users.";
/// Every user field's expression in one template, parted by [`SEPARATOR`]:
/// one render per record (a render's own cost is most of an expression's).
const ALL_USER_FIELDS: &str = "users";
const SEPARATOR: char = '\u{1f}';
/// Each user field's template, by `Field as usize`.
const USER_TEMPLATES: [&str; 8] =
    ["users.username", "users.name", "users.email", "users.mobile", "users.employee_no", "users.nickname", "users.title", "users.manager"];
const ATTRIBUTES: &str = "attributes.";
const DEPARTMENT_NAME: &str = "departments.name";

/// What a field's expression made of a value: its text, or an error.
fn value(v: J) -> Result<String, Error> {
    use minijinja::value::ValueKind;
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => Ok(NOTHING.to_owned()),
        // The unit separator parts the fields of one render (`ALL_USER_FIELDS`).
        ValueKind::String => Ok(v.as_str().map(|s| s.replace(SEPARATOR, "")).unwrap_or_default()),
        ValueKind::Number => Ok(v.to_string()),
        ValueKind::Bool => Err(Error::new(ErrorKind::InvalidOperation, "is a boolean, not text")),
        ValueKind::Seq | ValueKind::Iterable => {
            Err(Error::new(ErrorKind::InvalidOperation, "is a list, not text (take one: `| first`, `| join(\",\")`)"))
        }
        _ => Err(Error::new(ErrorKind::InvalidOperation, format!("is {}, not text", v.kind()))),
    }
}

/// `strip_prefix("+86 138…", "+86")` -> `"138…"` (trimmed), the reshaping
/// phone numbers most often need; nothing stays nothing.
pub fn strip_prefix(value: J, prefix: String) -> J {
    match value.as_str() {
        Some(s) => J::from(s.strip_prefix(prefix.as_str()).map_or(s, str::trim_start)),
        None => value,
    }
}

/// `email_local("li.lei@example.com")` -> `"li.lei"`; text without `@`
/// stays as it is; nothing stays nothing.
fn email_local(value: J) -> J {
    match value.as_str() {
        Some(s) => J::from(s.rsplit_once('@').map_or(s, |(local, _)| local)),
        None => value,
    }
}

/// `regex_replace(value, pattern, replacement)`: every match replaced
/// (`$1` names a group), by the `regex` crate's syntax.
fn regex_replace(value: J, pattern: String, replacement: String) -> Result<J, Error> {
    thread_local! {
        static CACHE: std::cell::RefCell<std::collections::HashMap<String, regex::Regex>> = Default::default();
    }
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        // The pattern first, with a value or without: check-config's trial render finds a bad one.
        if !c.contains_key(&pattern) {
            let re = regex::Regex::new(&pattern)
                .map_err(|e| Error::new(ErrorKind::SyntaxError, format!("regex_replace: {pattern:?} is not a regex: {e}")))?;
            c.insert(pattern.clone(), re);
        }
        let Some(s) = value.as_str() else { return Ok(value) };
        Ok(J::from(c[&pattern].replace_all(s, replacement.as_str()).into_owned()))
    })
}

/// `pinyin`: Chinese characters spelt in pinyin without tones, joined
/// (`"张三" | pinyin` -> `"zhangsan"`); `pinyin("initials")` keeps each
/// syllable's first letter (`"zs"`). A character with several readings
/// takes the pinyin crate's first (its most common) reading; what is not
/// a Chinese character is kept as it is.
fn pinyin(value: J, style: Option<String>) -> Result<J, Error> {
    use pinyin::ToPinyin;
    let initials = match style.as_deref() {
        None | Some("full") => false,
        Some("initials") => true,
        Some(other) => {
            return Err(Error::new(ErrorKind::InvalidOperation, format!("pinyin: style {other:?} is not \"full\" or \"initials\"")));
        }
    };
    let Some(s) = value.as_str() else { return Ok(value) };
    let mut out = String::with_capacity(s.len() * 2);
    for c in s.chars() {
        match c.to_pinyin() {
            Some(p) if initials => out.push_str(p.first_letter()),
            Some(p) => out.push_str(p.plain()),
            None => out.push(c),
        }
    }
    Ok(J::from(out))
}

/// A field's expression that does not compile: `line L, column C: what`.
fn at(e: &Error, source: &str) -> String {
    let what = e.detail().map_or_else(|| e.kind().to_string(), |d| format!("{}: {d}", e.kind()));
    // The expression is compiled inside `{{ (` … `) | … }}`: 4 characters before it on line 1.
    let wrapped = wrap(source);
    match (e.line(), e.range()) {
        (Some(line), Some(range)) => {
            let start = wrapped[..range.start.min(wrapped.len())].rfind('\n').map_or(0, |i| i + 1);
            let column = range.start.saturating_sub(start) + 1;
            let column = if line == 1 { column.saturating_sub(4).max(1) } else { column };
            format!("expression error at line {line}, column {column}: {what}")
        }
        (Some(line), None) => format!("expression error at line {line}: {what}"),
        _ => format!("expression error: {what}"),
    }
}

fn wrap(source: &str) -> String {
    format!("{{{{ ({source}) | __value }}}}")
}

/// Collects the expressions while a config is read.
#[allow(missing_debug_implementations)]
pub struct Builder {
    env: Environment<'static>,
    mapping: Mapping,
}

impl Default for Builder {
    fn default() -> Self {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        // A field some records lack, and what is below it, is nothing.
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
        env.add_filter("__value", value);
        env.add_filter("strip_prefix", strip_prefix);
        env.add_filter("email_local", email_local);
        env.add_filter("regex_replace", regex_replace);
        env.add_filter("pinyin", pinyin);
        Builder { env, mapping: Mapping::default() }
    }
}

impl Builder {
    fn add(&mut self, name: String, source: &str) -> Result<(), String> {
        if source.trim().is_empty() {
            return Err("is empty: write an expression, or leave the key out for the source's own mapping".into());
        }
        self.env.add_template_owned(name.clone(), wrap(source)).map_err(|e| at(&e, source))?;
        // A filter, test or function unknown is found only by rendering: once, with no record.
        let tried = self.env.get_template(&name).and_then(|t| t.render(context(Value::Null, J::UNDEFINED)));
        match tried {
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::UnknownFilter | ErrorKind::UnknownTest | ErrorKind::UnknownFunction | ErrorKind::SyntaxError
                ) =>
            {
                Err(at(&e, source))
            }
            _ => Ok(()),
        }
    }

    /// `[mapping.users] <field> = "<expression>"`; a syntax error says where.
    pub fn user(&mut self, field: Field, source: &str) -> Result<(), String> {
        self.add(format!("{USERS}{}", field.key()), source)?;
        self.mapping.users.push((field, source.to_owned()));
        Ok(())
    }

    /// `[mapping.attributes] <name> = "<expression>"`.
    pub fn attribute(&mut self, name: &str, source: &str) -> Result<(), String> {
        self.add(format!("{ATTRIBUTES}{name}"), source)?;
        self.mapping.attributes.push((name.to_owned(), source.to_owned()));
        Ok(())
    }

    /// `[mapping.departments] name = "<expression>"`.
    pub fn department_name(&mut self, source: &str) -> Result<(), String> {
        self.add(DEPARTMENT_NAME.to_owned(), source)?;
        self.mapping.department_name = Some(source.to_owned());
        Ok(())
    }

    pub fn build(mut self) -> Mapping {
        let all: Vec<String> =
            self.mapping.users.iter().map(|(_, s)| s).chain(self.mapping.attributes.iter().map(|(_, s)| s)).map(|s| wrap(s)).collect();
        if !all.is_empty() {
            // Each part compiled alone already: together they compile too.
            let _ = self.env.add_template_owned(ALL_USER_FIELDS, all.join(&SEPARATOR.to_string()));
        }
        let fields = |names: Vec<&str>| -> Option<std::collections::BTreeSet<String>> {
            let mut out = std::collections::BTreeSet::new();
            for name in names {
                let t = self.env.get_template(name).ok()?;
                for v in t.undeclared_variables(false) {
                    match v.as_str() {
                        "record" => return None,
                        "mapped" => {}
                        _ => {
                            out.insert(v);
                        }
                    }
                }
            }
            Some(out)
        };
        let names: Vec<String> = self.mapping.attributes.iter().map(|(n, _)| format!("{ATTRIBUTES}{n}")).collect();
        let users: Vec<&str> =
            self.mapping.users.iter().map(|(f, _)| USER_TEMPLATES[*f as usize]).chain(names.iter().map(String::as_str)).collect();
        let user_fields = fields(users);
        let department_fields =
            if self.mapping.department_name.is_some() { fields(vec![DEPARTMENT_NAME]) } else { Some(Default::default()) };
        let mut m = self.mapping;
        m.user_fields = user_fields;
        m.department_fields = department_fields;
        m.uses_mapped = m
            .users
            .iter()
            .map(|(_, s)| s.as_str())
            .chain(m.attributes.iter().map(|(_, s)| s.as_str()))
            .chain(m.department_name.as_deref())
            .any(|s| s.contains("mapped"));
        if !m.users.is_empty() || !m.attributes.is_empty() || m.department_name.is_some() {
            m.env = Some(Arc::new(self.env));
        }
        m
    }
}

/// A field whose expression failed for one record: which, and why.
#[derive(Debug, PartialEq, Eq)]
pub struct Failed {
    /// `mapping.users.username`
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

fn render(env: &Environment<'static>, name: &str, ctx: &J) -> Result<Option<String>, Failed> {
    let failed =
        |e: Error| Failed { key: format!("mapping.{name}"), message: e.detail().map_or_else(|| e.kind().to_string(), str::to_owned) };
    let out = env.get_template(name).and_then(|t| t.render(ctx)).map_err(failed)?;
    Ok(match out.as_str() {
        "" | NOTHING => None,
        _ => Some(out),
    })
}

impl Mapping {
    /// The fields set by expressions that gave nothing for every user of a
    /// whole fetch: most likely a typo (`emial`), so withheld, not cleared,
    /// and said in a warning. Returns the keys.
    pub fn withhold_all_empty(&self, users: &mut [User]) -> Vec<&'static str> {
        let mut said = Vec::new();
        if users.is_empty() {
            return said;
        }
        for (field, _) in &self.users {
            if users.iter().all(|u| !field.is_set(u)) {
                if let Some(m) = field.model() {
                    users.iter_mut().for_each(|u| u.withhold(m));
                }
                said.push(field.key());
            }
        }
        said
    }

    /// No expression configured: the fixed mappings stand.
    pub fn is_empty(&self) -> bool {
        self.env.is_none()
    }

    /// The record fields the user expressions read: `None` when they read
    /// the whole record (`record[...]`).
    pub fn user_fields(&self) -> Option<&std::collections::BTreeSet<String>> {
        self.user_fields.as_ref()
    }

    /// The record fields the department expression reads (`None`: the whole record).
    pub fn department_fields(&self) -> Option<&std::collections::BTreeSet<String>> {
        self.department_fields.as_ref()
    }

    /// `[mapping.departments] name` is set: a record without a name of its
    /// own may still get one from it.
    pub fn names_departments(&self) -> bool {
        self.department_name.is_some()
    }

    /// `[mapping.attributes]`: the extra attributes' names.
    pub fn attribute_names(&self) -> Vec<String> {
        self.attributes.iter().map(|(n, _)| n.clone()).collect()
    }

    /// The user fields it sets, with their expressions.
    pub fn users(&self) -> impl Iterator<Item = (Field, &str)> {
        self.users.iter().map(|(f, s)| (*f, s.as_str()))
    }

    /// `user`, as the fixed mapping made it from `raw`, with each field
    /// that has an expression set by it. A field set to a value is no
    /// longer absent; one left empty stays absent if it was.
    pub fn user(&self, raw: Value, user: &mut User) -> Result<(), Failed> {
        let Some(env) = &self.env else { return Ok(()) };
        if self.users.is_empty() && self.attributes.is_empty() {
            return Ok(());
        }
        let mapped = if self.uses_mapped { J::from_serialize(&*user) } else { J::UNDEFINED };
        let ctx = context(raw, mapped);
        let values: Vec<Option<String>> = match env.get_template(ALL_USER_FIELDS).and_then(|t| t.render(&ctx)) {
            Ok(all) => all.split(SEPARATOR).map(|v| (!v.is_empty() && v != NOTHING).then(|| v.to_owned())).collect(),
            // Which field failed: each alone, the first to fail names it.
            Err(_) => {
                let mut values = Vec::with_capacity(self.users.len() + self.attributes.len());
                for (field, _) in &self.users {
                    values.push(render(env, USER_TEMPLATES[*field as usize], &ctx)?);
                }
                for (name, _) in &self.attributes {
                    values.push(render(env, &format!("{ATTRIBUTES}{name}"), &ctx)?);
                }
                values
            }
        };
        debug_assert_eq!(values.len(), self.users.len() + self.attributes.len());
        let mut values = values.into_iter();
        for ((field, _), v) in self.users.iter().zip(values.by_ref()) {
            if v.is_some()
                && let Some(m) = field.model()
            {
                user.absent.retain(|a| *a != m);
            }
            field.set(user, v);
        }
        for ((name, _), v) in self.attributes.iter().zip(values) {
            match v {
                Some(v) => user.attributes.insert(name.clone(), v),
                None => user.attributes.remove(name),
            };
        }
        Ok(())
    }

    /// `department`'s name set by `[mapping.departments] name`; an empty
    /// name is an error (a department needs one).
    pub fn department(&self, raw: Value, department: &mut Department) -> Result<(), Failed> {
        let (Some(env), Some(_)) = (&self.env, &self.department_name) else { return Ok(()) };
        let ctx = context(raw, J::from_serialize(&*department));
        match render(env, DEPARTMENT_NAME, &ctx)? {
            Some(name) => department.name = name,
            None => {
                return Err(Failed { key: format!("mapping.{DEPARTMENT_NAME}"), message: "gave no name".into() });
            }
        }
        Ok(())
    }
}

/// A record as an expression sees it: a field is converted to minijinja's
/// value when an expression reads it, not before.
#[derive(Debug)]
struct Record(serde_json::Map<String, Value>);

impl minijinja::value::Object for Record {
    fn repr(self: &Arc<Self>) -> minijinja::value::ObjectRepr {
        minijinja::value::ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &J) -> Option<J> {
        self.0.get(key.as_str()?).map(J::from_serialize)
    }

    fn enumerate(self: &Arc<Self>) -> minijinja::value::Enumerator {
        use minijinja::value::ObjectExt;
        self.mapped_enumerator(|this| Box::new(this.0.keys().map(|k| J::from(k.as_str()))))
    }
}

/// The record's fields as variables, the record as `record`, the fixed
/// mapping's result as `mapped`.
fn context(raw: Value, mapped: J) -> J {
    match raw {
        Value::Object(m) => {
            let record = J::from_object(Record(m));
            let own = minijinja::context! { record => record.clone(), mapped => mapped };
            minijinja::value::merge_maps([own, record])
        }
        other => minijinja::context! { record => J::from_serialize(&other), mapped => mapped },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mapping(users: &[(Field, &str)]) -> Mapping {
        let mut b = Builder::default();
        for (f, s) in users {
            b.user(*f, s).unwrap();
        }
        b.build()
    }

    fn mapped(m: &Mapping, raw: Value) -> Result<User, Failed> {
        let mut u = User { source_id: "1".into(), name: Some("fixed".into()), email: Some("org@x.cn".into()), ..User::default() };
        m.user(raw, &mut u).map(|()| u)
    }

    #[test]
    fn the_fields_read_are_known_unless_the_whole_record_is() {
        let m = mapping(&[(Field::Email, "email or biz_mail"), (Field::Nickname, "mapped.name ~ alias | lower")]);
        let got: Vec<&str> = m.user_fields().unwrap().iter().map(String::as_str).collect();
        assert_eq!(got, ["alias", "biz_mail", "email"]);
        assert!(mapping(&[(Field::Title, "record[\"x-title\"]")]).user_fields().is_none());
    }

    #[test]
    fn each_field_has_its_template() {
        for f in Field::ALL {
            assert_eq!(USER_TEMPLATES[f as usize], format!("{USERS}{}", f.key()));
        }
    }

    #[test]
    fn no_expression_changes_nothing() {
        let m = Builder::default().build();
        assert!(m.is_empty());
        let u = mapped(&m, json!({"name": "other"})).unwrap();
        assert_eq!(u.name.as_deref(), Some("fixed"));
    }

    #[test]
    fn fields_come_from_the_record_by_the_vendors_names() {
        let m = mapping(&[
            (Field::Email, "email"),
            (Field::Username, "email | email_local | lower"),
            (Field::Title, "record[\"x-title\"] | trim"),
            (Field::Nickname, "mapped.name ~ \"!\""),
            (Field::EmployeeNo, "job_number"),
            (Field::Mobile, "missing.below.that"),
        ]);
        let u = mapped(&m, json!({"email": "Li.Lei@x.cn", "x-title": " Boss ", "job_number": 42})).unwrap();
        assert_eq!(u.email.as_deref(), Some("Li.Lei@x.cn"));
        assert_eq!(u.username.as_deref(), Some("li.lei"));
        assert_eq!(u.title.as_deref(), Some("Boss"));
        assert_eq!(u.nickname.as_deref(), Some("fixed!"));
        assert_eq!(u.employee_no.as_deref(), Some("42"), "a number is its digits");
        assert_eq!(u.mobile, None, "an undefined field leaves it empty");
    }

    #[test]
    fn filters() {
        let m = mapping(&[
            (Field::Username, "name | pinyin"),
            (Field::Nickname, "name | pinyin(\"initials\") | upper"),
            (Field::Mobile, "mobile | strip_prefix(\"+86\")"),
            (Field::Title, "title | regex_replace(\"^(\\\\w+)-(\\\\d+)$\", \"$2/$1\")"),
            (Field::EmployeeNo, "path | split(\"/\") | first"),
            (Field::Email, "email | default(\"none@x.cn\")"),
        ]);
        let u = mapped(&m, json!({"name": "张三 Li", "mobile": "+86 13800000000", "title": "dev-7", "path": "a/b"})).unwrap();
        assert_eq!(u.username.as_deref(), Some("zhangsan Li"));
        assert_eq!(u.nickname.as_deref(), Some("ZS LI"));
        assert_eq!(u.mobile.as_deref(), Some("13800000000"));
        assert_eq!(u.title.as_deref(), Some("7/dev"));
        assert_eq!(u.employee_no.as_deref(), Some("a"));
        assert_eq!(u.email.as_deref(), Some("none@x.cn"));
    }

    #[test]
    fn a_character_with_several_readings_takes_the_documented_one() {
        let m = mapping(&[(Field::Username, "name | pinyin")]);
        for (name, want) in [("单", "dan"), ("曾", "ceng"), ("张三", "zhangsan")] {
            assert_eq!(mapped(&m, json!({ "name": name })).unwrap().username.as_deref(), Some(want), "{name}");
        }
    }

    #[test]
    fn a_value_makes_an_absent_field_present_and_nothing_keeps_it_absent() {
        let m = mapping(&[(Field::Email, "email"), (Field::Mobile, "mobile")]);
        let mut u = User { source_id: "1".into(), absent: vec![UserField::Email, UserField::Mobile], ..User::default() };
        m.user(json!({"email": "a@x.cn"}), &mut u).unwrap();
        assert_eq!(u.absent, vec![UserField::Mobile]);
    }

    #[test]
    fn an_expression_failing_for_a_record_names_the_field() {
        let m = mapping(&[(Field::Username, "depts"), (Field::Title, "title | pinyin(\"tones\")")]);
        let e = mapped(&m, json!({"depts": [1, 2], "title": "x"})).unwrap_err();
        assert_eq!(e.key, "mapping.users.username");
        assert!(e.message.contains("is a list"), "{e}");
        let m = mapping(&[(Field::Title, "title | pinyin(\"tones\")")]);
        let e = mapped(&m, json!({"title": "x"})).unwrap_err();
        assert_eq!(e.key, "mapping.users.title");
        assert!(e.message.contains("tones"), "{e}");
    }

    #[test]
    fn a_syntax_error_says_the_line_and_column() {
        let mut b = Builder::default();
        let e = b.user(Field::Username, "email | | lower").unwrap_err();
        assert!(e.starts_with("expression error at line 1, column 9:"), "{e}");
        let e = b.user(Field::Username, "email\n  | lower(").unwrap_err();
        assert!(e.contains("line 2"), "{e}");
        let e = b.user(Field::Username, "email | no_such_filter").unwrap_err();
        assert!(e.contains("no_such_filter") || e.contains("unknown filter"), "{e}");
        assert!(b.user(Field::Username, "  ").unwrap_err().contains("is empty"));
        let e = b.user(Field::Title, "title | regex_replace('(', '')").unwrap_err();
        assert!(e.contains("not a regex"), "{e}");
    }

    #[test]
    fn a_department_name_from_an_expression_and_none_is_an_error() {
        let mut b = Builder::default();
        b.department_name("record.name_en | default(name)").unwrap();
        let m = b.build();
        let mut d = Department { source_id: "d".into(), parent_id: None, name: "研发".into(), order: 0, leader_ids: vec![] };
        m.department(json!({"name": "研发", "name_en": "R&D"}), &mut d).unwrap();
        assert_eq!(d.name, "R&D");
        let e = m.department(json!({}), &mut d).unwrap_err();
        assert_eq!(e.key, "mapping.departments.name");
    }
}
