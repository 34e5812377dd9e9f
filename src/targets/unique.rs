//! Group names on servers that keep them unique (a 409 for a second
//! "Team"). Departments repeat names across the tree, so a department whose
//! name is another department's group takes a name made by
//! `target.unique_name` (default `{name} ({parent})`), then that with a
//! number: `Team (Support)`, `Team (Support) 2` … (a root: `{name} (2)` …,
//! or the template when it has no `{parent}`). The load reads such a
//! displayName back as the department's own name through the same
//! template, so the planner never "renames" it and the name never flaps
//! between runs. Pure.

use crate::model::{TargetDepartment, TargetId};
use crate::reconcile::DeptSpec;
use std::collections::{HashMap, HashSet};

/// The default of `target.unique_name` (SCIM) and `departments.unique_name` (LDAP).
pub const DEFAULT: &str = "{name} ({parent})";

/// A checked `unique_name` template: `{name}` once, `{parent}` at most once,
/// no other placeholder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    /// Literal text before the first placeholder, between them, and after the last.
    prefix: String,
    middle: String,
    suffix: String,
    /// `None`: no `{parent}`; `Some(true)`: `{parent}` comes before `{name}`.
    parent_first: Option<bool>,
}

impl Default for Template {
    fn default() -> Self {
        // DEFAULT, parsed (a test checks they agree).
        Self { prefix: String::new(), middle: " (".into(), suffix: ")".into(), parent_first: Some(false) }
    }
}

/// Why a `unique_name` template cannot work (the template is in each).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("{0:?} has a `{{` without `}}`")]
    Unclosed(String),
    #[error("{0:?} has a `}}` without `{{`")]
    Unopened(String),
    #[error("{0:?} has {{{1}}}: only {{name}} and {{parent}} are known")]
    Unknown(String, String),
    #[error("{0:?} has {{{1}}} twice")]
    Twice(String, String),
    #[error("{0:?} must contain {{name}}")]
    NoName(String),
    #[error("{0:?} is the name itself: it must add something, e.g. {DEFAULT:?}")]
    NameItself(String),
}

impl Template {
    /// Check `text`; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let mut rest = text;
        let mut literals = Vec::new();
        let mut order = Vec::new();
        while let Some(open) = rest.find('{') {
            let close = rest[open..].find('}').map(|c| open + c).ok_or_else(|| TemplateError::Unclosed(text.into()))?;
            let key = &rest[open + 1..close];
            if key != "name" && key != "parent" {
                return Err(TemplateError::Unknown(text.into(), key.into()));
            }
            if order.contains(&key) {
                return Err(TemplateError::Twice(text.into(), key.into()));
            }
            literals.push(&rest[..open]);
            order.push(key);
            rest = &rest[close + 1..];
        }
        literals.push(rest);
        if !order.contains(&"name") {
            return Err(TemplateError::NoName(text.into()));
        }
        if order == ["name"] && literals.iter().all(|l| l.is_empty()) {
            return Err(TemplateError::NameItself(text.into()));
        }
        if literals.iter().any(|l| l.contains('}')) {
            return Err(TemplateError::Unopened(text.into()));
        }
        let (prefix, middle, suffix) = match literals.as_slice() {
            [p, s] => (*p, "", *s),
            [p, m, s] => (*p, *m, *s),
            _ => unreachable!("one or two placeholders"),
        };
        Ok(Self {
            prefix: prefix.into(),
            middle: middle.into(),
            suffix: suffix.into(),
            parent_first: (order.len() == 2).then(|| order[0] == "parent"),
        })
    }

    /// The template filled in.
    pub fn fill(&self, name: &str, parent: &str) -> String {
        let (first, second) = match self.parent_first {
            None => return format!("{}{name}{}", self.prefix, self.suffix),
            Some(false) => (name, parent),
            Some(true) => (parent, name),
        };
        format!("{}{first}{}{second}{}", self.prefix, self.middle, self.suffix)
    }

    /// The names to try, in order, when `name` is taken.
    pub fn names(&self, name: &str, parent: Option<&str>) -> Vec<String> {
        match parent {
            Some(p) => numbered(self.fill(name, p)),
            None if self.parent_first.is_none() => numbered(self.fill(name, "")),
            None => (2..=9).map(|n| format!("{name} ({n})")).collect(),
        }
    }

    /// The department name behind `s` (unnumbered), if `s` is this template
    /// filled with a name and a parent for which `is_parent` holds (or, with
    /// no `{parent}`, a name that is another group's).
    fn name_in<'a>(&self, s: &'a str, is_parent: &dyn Fn(&str) -> bool, taken: &dyn Fn(&str) -> bool) -> Option<&'a str> {
        let inner = s.strip_prefix(self.prefix.as_str())?.strip_suffix(self.suffix.as_str())?;
        let Some(parent_first) = self.parent_first else {
            return (!inner.is_empty() && taken(inner)).then_some(inner);
        };
        // Every place the middle may start, overlapping ones too (`((` in `(((a`).
        let starts = (0..=inner.len()).filter(|&at| inner.is_char_boundary(at) && inner[at..].starts_with(self.middle.as_str()));
        starts.into_iter().find_map(|at| {
            let (a, b) = (&inner[..at], &inner[at + self.middle.len()..]);
            let (name, parent) = if parent_first { (b, a) } else { (a, b) };
            (!name.is_empty() && is_parent(parent)).then_some(name)
        })
    }

    /// The department name behind `shown`, given which names are its
    /// parent's, and whether that name is in it after a parent (not a root's `(2)`).
    fn base<'a>(&self, shown: &'a str, is_parent: &dyn Fn(&str) -> bool, taken: &dyn Fn(&str) -> bool) -> Option<(&'a str, bool)> {
        // A root's `Team (2)`: the plain name is another group's.
        if let Some((head, n)) = shown.strip_suffix(')').and_then(|s| s.rsplit_once(" ("))
            && n.parse::<u32>().is_ok_and(|n| (2..=9).contains(&n))
            && taken(head)
        {
            return Some((head, false));
        }
        self.after_parent(shown, is_parent, taken).map(|b| (b, self.parent_first.is_some()))
    }

    /// [`Self::base`] of a name the template made.
    fn after_parent<'a>(&self, shown: &'a str, is_parent: &dyn Fn(&str) -> bool, taken: &dyn Fn(&str) -> bool) -> Option<&'a str> {
        // `Team (Support) 2` where `Team (Support)` is there: numbered;
        // else the name may end in a number of its own (`Floor 2`).
        let numbered = unnumbered(shown);
        if let Some(u) = numbered.filter(|u| taken(u))
            && let Some(name) = self.name_in(u, is_parent, taken)
        {
            return Some(name);
        }
        self.name_in(shown, is_parent, taken).or_else(|| self.name_in(numbered?, is_parent, taken))
    }
}

/// `base`, then `base 2` … `base 9`.
fn numbered(base: String) -> Vec<String> {
    let rest: Vec<String> = (2..=9).map(|n| format!("{base} {n}")).collect();
    std::iter::once(base).chain(rest).collect()
}

/// `shown` without a trailing ` 2`..` 9`, if it has one.
fn unnumbered(shown: &str) -> Option<&str> {
    match shown.rsplit_once(' ') {
        Some((head, n)) if n.parse::<u32>().is_ok_and(|n| (2..=9).contains(&n)) => Some(head),
        _ => None,
    }
}

/// What a target knows of its groups' names in one run: each group's name
/// as the server shows it, the groups named by the template after their
/// parent (with the department name in it), and each group's parent.
#[derive(Debug, Default)]
pub struct Shown {
    template: Template,
    inner: std::sync::Mutex<Known>,
}

#[derive(Debug, Default)]
struct Known {
    names: HashMap<TargetId, String>,
    /// Named `{name} ({parent})` after the parent it has: id -> its
    /// department (`{name}` and the mark).
    after_parent: HashMap<TargetId, DeptSpec>,
    parents: HashMap<TargetId, TargetId>,
}

impl Shown {
    pub fn new(template: Template) -> Self {
        Self { template, inner: std::sync::Mutex::default() }
    }

    fn known(&self) -> std::sync::MutexGuard<'_, Known> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// At the load: read the names back ([`read_back`]) and remember what the server shows.
    pub fn load(&self, departments: &mut [TargetDepartment]) {
        let parents = departments.iter().filter_map(|d| Some((d.id.clone(), d.parent.clone()?))).collect();
        let (names, after_parent) = read_back(&self.template, departments);
        *self.known() = Known { names, after_parent, parents };
    }

    /// The name group `id` shows (as loaded or written this run).
    pub fn name(&self, id: &TargetId) -> Option<String> {
        self.known().names.get(id).cloned()
    }

    /// Whether a group other than `own` shows `name`.
    pub fn taken(&self, name: &str, own: Option<&TargetId>) -> bool {
        self.known().names.iter().any(|(id, n)| n == name && Some(id) != own)
    }

    /// Group `id` now shows its department's own name.
    pub fn set(&self, id: &TargetId, name: String) {
        let mut k = self.known();
        k.names.insert(id.clone(), name);
        k.after_parent.remove(id);
    }

    /// Group `id` now shows `name`, one of [`Self::names`] for department
    /// `spec` under `parent`.
    pub fn took(&self, id: &TargetId, name: String, spec: &DeptSpec, parent: Option<&TargetId>) {
        let mut k = self.known();
        k.names.insert(id.clone(), name);
        match parent.filter(|_| self.template.parent_first.is_some()) {
            Some(p) => {
                k.parents.insert(id.clone(), p.clone());
                let spec = DeptSpec {
                    external_id: spec.external_id.clone(),
                    name: spec.name.clone(),
                    parent: None,
                    leaders: vec![],
                    leader_accounts: vec![],
                };
                k.after_parent.insert(id.clone(), spec)
            }
            None => k.after_parent.remove(id),
        };
    }

    /// Group `id` now has `parent`.
    pub fn moved(&self, id: &TargetId, parent: Option<&TargetId>) {
        let mut k = self.known();
        match parent {
            Some(p) => k.parents.insert(id.clone(), p.clone()),
            None => k.parents.remove(id),
        };
    }

    /// The names to try for department `name` under `parent`'s group, when its own is taken.
    pub fn names(&self, name: &str, parent: Option<&TargetId>) -> Vec<String> {
        let parent = parent.and_then(|p| self.name(p));
        self.template.names(name, parent.as_deref())
    }

    /// The groups whose name the template made after `parent`'s old name,
    /// with their departments (name and mark): renamed after the parent's
    /// new one, so that the next load reads them back (never a rename a run later).
    pub fn after(&self, parent: &TargetId) -> Vec<(TargetId, DeptSpec)> {
        let k = self.known();
        k.after_parent.iter().filter(|(c, _)| k.parents.get(*c) == Some(parent)).map(|(c, d)| (c.clone(), d.clone())).collect()
    }

    /// Group `id`'s department (name and mark), if its name was made after its parent's.
    pub fn after_parent(&self, id: &TargetId) -> Option<DeptSpec> {
        self.known().after_parent.get(id).cloned()
    }
}

/// Read each of our groups' displayName back as its department's name
/// (`Team (Support)` under `Support` -> `Team`); returns every group's
/// displayName as the server holds it, and the groups named after their
/// (nesting) parent with their department's name.
pub fn read_back(template: &Template, departments: &mut [TargetDepartment]) -> (HashMap<TargetId, String>, HashMap<TargetId, DeptSpec>) {
    let shown: HashMap<TargetId, String> = departments.iter().map(|d| (d.id.clone(), d.name.clone())).collect();
    let mut after_parent = HashMap::new();
    let all: HashSet<String> = departments.iter().map(|d| d.name.clone()).collect();
    for d in departments.iter_mut() {
        if d.external_id.as_deref().is_none_or(str::is_empty) {
            continue; // not ours: its name is its own
        }
        let parent = d.parent.as_ref().and_then(|p| shown.get(p)).cloned();
        // Where groups nest, the parent is known; where they are flat, any other group may be it.
        let is_parent = |p: &str| match &parent {
            Some(name) => name == p,
            None => d.parent.is_none() && all.contains(p) && p != d.name,
        };
        let taken = |n: &str| all.contains(n) && n != d.name;
        if let Some((b, after)) = template.base(&d.name, &is_parent, &taken) {
            if after && parent.is_some() {
                let mark = d.external_id.clone().unwrap_or_default();
                after_parent.insert(
                    d.id.clone(),
                    DeptSpec { external_id: mark, name: b.to_owned(), parent: None, leaders: vec![], leader_accounts: vec![] },
                );
            }
            d.name = b.to_owned();
        }
    }
    (shown, after_parent)
}
#[cfg(test)]
mod tests {
    use super::*;

    fn dept(id: &str, name: &str, parent: Option<&str>, ours: bool) -> TargetDepartment {
        TargetDepartment {
            id: TargetId(id.into()),
            external_id: ours.then(|| format!("src-{id}")),
            name: name.into(),
            parent: parent.map(|p| TargetId(p.into())),
            leaders: None,
        }
    }

    #[test]
    fn names_tried_and_read_back_as_the_departments_own() {
        let t = Template::default();
        assert_eq!(t.names("Team", Some("Support"))[..2], ["Team (Support)", "Team (Support) 2"]);
        assert_eq!(t.names("Team", None)[0], "Team (2)");
        let mut d = vec![
            dept("1", "Sales", None, true),
            dept("2", "Support", None, true),
            dept("3", "Team", Some("1"), true),
            dept("4", "Team (Support)", Some("2"), true),
            dept("5", "Team (Support) 2", Some("2"), true),
            dept("6", "R&D (China)", Some("1"), true),
            dept("7", "Ops (Support)", None, false),
            dept("8", "Sales (2)", None, true),
            dept("9", "Floor 2", None, true),
            dept("10", "Floor", None, true),
        ];
        let (shown, _) = read_back(&t, &mut d);
        let got: Vec<&str> = d.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(got, ["Sales", "Support", "Team", "Team", "Team", "R&D (China)", "Ops (Support)", "Sales", "Floor 2", "Floor"]);
        assert_eq!(shown[&TargetId("4".into())], "Team (Support)", "the server's name is kept for writes");
    }

    #[test]
    fn a_template_of_ones_own() {
        let t = Template::parse("{parent} / {name}").unwrap();
        assert_eq!(t.names("Team", Some("Support"))[..2], ["Support / Team", "Support / Team 2"]);
        assert_eq!(t.names("Team", None)[0], "Team (2)", "a root has no parent to name");
        let mut d = vec![
            dept("1", "Sales", None, true),
            dept("2", "Support", None, true),
            dept("3", "Team", Some("1"), true),
            dept("4", "Support / Team", Some("2"), true),
            dept("5", "Support / Team 2", Some("2"), true),
            dept("6", "Support / Floor 2", Some("2"), true),
            dept("7", "Sales / Team", Some("2"), true),
        ];
        read_back(&t, &mut d);
        let got: Vec<&str> = d.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(got, ["Sales", "Support", "Team", "Team", "Team", "Floor 2", "Sales / Team"], "only under its own parent");

        let t = Template::parse("{name} - copy").unwrap();
        assert_eq!(t.names("Team", None)[..2], ["Team - copy", "Team - copy 2"]);
        let mut d = vec![dept("1", "Team", None, true), dept("2", "Team - copy", None, true), dept("3", "Odd - copy", None, true)];
        read_back(&t, &mut d);
        assert_eq!(d.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["Team", "Team", "Odd - copy"], "only where the name is taken");
    }

    #[test]
    fn templates_that_cannot_work_are_named() {
        for (text, why) in [
            ("{parent}", "must contain {name}"),
            ("{name}", "is the name itself"),
            ("{name} {name}", "twice"),
            ("{name} ({dept})", "only {name} and {parent}"),
            ("{name} ({parent", "without"),
            ("{name}} x", "without"),
        ] {
            let e = Template::parse(text).unwrap_err().to_string();
            assert!(e.contains(why), "{text}: {e}");
        }
        assert_eq!(Template::parse(DEFAULT).unwrap(), Template::default());
        assert_eq!(Template::default().fill("Team", "Sales"), "Team (Sales)");
    }

    proptest::proptest! {
        /// Whatever the names and the template, a group named by the
        /// template under its (known) parent reads back as its own name.
        #[test]
        fn what_is_written_reads_back(
            name in "[A-Za-z() 2/-]{1,8}",
            parent in "[A-Za-z() 2/-]{1,8}",
            before in "[ (\\[/-]{0,2}",
            between in "[ (/-]{0,3}",
            after in "[ )\\]/-]{0,2}",
            parent_first in proptest::bool::ANY,
            n in 0usize..9,
        ) {
            let text = if parent_first { format!("{before}{{parent}}{between}{{name}}{after}") } else { format!("{before}{{name}}{between}{{parent}}{after}") };
            let t = Template::parse(&text).unwrap();
            let written = t.names(&name, Some(&parent))[n].clone();
            let mut d = vec![dept("p", &parent, None, true), dept("c", &written, Some("p"), true)];
            if n > 0 {
                d.push(dept("o", &t.names(&name, Some(&parent))[0], Some("p"), true));
            }
            read_back(&t, &mut d);
            proptest::prop_assert_eq!(&d[1].name, &name, "{} as {:?}", text, written);
        }
    }
}
