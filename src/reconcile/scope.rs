//! Scope: which part of the organisation is synced, applied to the
//! source's snapshot before planning. Pure.
//!
//! - `include_departments` / `exclude_departments`: department subtrees
//!   (by source id). A department is in scope when it is under an included
//!   one (or nothing is included) and under no excluded one. An included
//!   department whose parent is out of scope is a root of the synced forest,
//!   at any depth of the source's tree.
//! - A user is in scope when one of its departments is (or, with no
//!   department rules, always), its id or username is not in
//!   `exclude_users`, and `filter` holds. Its departments out of scope are
//!   dropped from it.
//! - `filter`: one boolean expression over the user's mapped fields
//!   (evalexpr: `title != "Intern" && email != ""`); a field the user does
//!   not have is `""`; `active` is a boolean.
//!
//! What leaves the scope is target-only under the policy, like anything
//! else, so a scope change is previewed by `sync --dry-run` and held by the
//! deletion guard.

use crate::model::{Snapshot, SourceId, User};
use evalexpr::{ContextWithMutableVariables, HashMapContext, Node, Value};
use std::collections::{HashMap, HashSet};

/// `[scope]`.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    pub include_departments: Vec<String>,
    pub exclude_departments: Vec<String>,
    pub exclude_users: Vec<String>,
    /// The filter's source text, and its compiled form.
    pub filter: Option<(String, Node)>,
}

impl PartialEq for Scope {
    fn eq(&self, other: &Self) -> bool {
        self.include_departments == other.include_departments
            && self.exclude_departments == other.exclude_departments
            && self.exclude_users == other.exclude_users
            && self.filter.as_ref().map(|f| &f.0) == other.filter.as_ref().map(|f| &f.0)
    }
}

/// The variables a filter may use.
pub const FILTER_FIELDS: &[&str] = &["username", "name", "email", "mobile", "employee_no", "nickname", "title", "active"];

/// Why `scope.filter` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("{0}")]
    Syntax(#[source] evalexpr::EvalexprError),
    #[error("unknown field {0:?} (one of {fields})", fields = FILTER_FIELDS.join(", "))]
    UnknownField(String),
    #[error("not a yes/no expression: {0}")]
    NotYesNo(#[source] evalexpr::EvalexprError),
}

/// Compile a filter, checking it against an example user (names it does not know are errors).
pub fn compile(expr: &str) -> Result<Node, FilterError> {
    let node = evalexpr::build_operator_tree(expr).map_err(FilterError::Syntax)?;
    if let Some(var) = node.iter_variable_identifiers().find(|v| !FILTER_FIELDS.contains(v)) {
        return Err(FilterError::UnknownField(var.to_owned()));
    }
    node.eval_boolean_with_context(&context(&User::default())).map_err(FilterError::NotYesNo)?;
    Ok(node)
}

fn context(u: &User) -> HashMapContext {
    let mut c = HashMapContext::new();
    let s = |v: &Option<String>| Value::String(v.clone().unwrap_or_default());
    for (k, v) in [
        ("username", s(&u.username)),
        ("name", s(&u.name)),
        ("email", s(&u.email)),
        ("mobile", s(&u.mobile)),
        ("employee_no", s(&u.employee_no)),
        ("nickname", s(&u.nickname)),
        ("title", s(&u.title)),
        ("active", Value::Boolean(u.active)),
    ] {
        let _ = c.set_value(k.into(), v);
    }
    c
}

impl Scope {
    pub fn is_everything(&self) -> bool {
        self.include_departments.is_empty() && self.exclude_departments.is_empty() && self.exclude_users.is_empty() && self.filter.is_none()
    }

    /// The included department ids the snapshot does not have.
    pub fn unknown_includes(&self, s: &Snapshot) -> Vec<String> {
        let have: HashSet<&str> = s.departments.iter().map(|d| d.source_id.as_str()).collect();
        self.include_departments.iter().filter(|i| !have.contains(i.as_str())).cloned().collect()
    }

    /// The snapshot with only what is in scope. Returns how many users and
    /// departments were left out.
    pub fn apply(&self, s: &mut Snapshot) -> (usize, usize) {
        if self.is_everything() {
            return (0, 0);
        }
        let parent: HashMap<&str, Option<&str>> =
            s.departments.iter().map(|d| (d.source_id.as_str(), d.parent_id.as_ref().map(SourceId::as_str))).collect();
        // Under any of `roots` (itself included), walking up at most once per department.
        let under = |id: &str, roots: &HashSet<&str>| {
            let mut at = Some(id);
            let mut steps = 0;
            while let Some(d) = at {
                if roots.contains(d) {
                    return true;
                }
                steps += 1;
                if steps > parent.len() {
                    return false; // a cycle: the plan reports it
                }
                at = parent.get(d).copied().flatten();
            }
            false
        };
        let include: HashSet<&str> = self.include_departments.iter().map(String::as_str).collect();
        let exclude: HashSet<&str> = self.exclude_departments.iter().map(String::as_str).collect();
        let in_scope: HashSet<String> = s
            .departments
            .iter()
            .map(|d| d.source_id.as_str())
            .filter(|d| (include.is_empty() || under(d, &include)) && !under(d, &exclude))
            .map(str::to_owned)
            .collect();
        let department_rules = !include.is_empty() || !exclude.is_empty();
        let before = (s.users.len(), s.departments.len());
        s.departments.retain(|d| in_scope.contains(d.source_id.as_str()));
        // An included department whose parent is out of scope is a root of
        // the synced forest (a top-level department in the target).
        for d in &mut s.departments {
            if include.contains(d.source_id.as_str()) && d.parent_id.as_ref().is_some_and(|p| !in_scope.contains(p.as_str())) {
                d.parent_id = None;
            }
        }
        // Usernames compare as matching compares them: ignoring case.
        let excluded: HashSet<String> = self.exclude_users.iter().map(|u| u.to_lowercase()).collect();
        let mut left_out = Vec::new();
        s.users.retain_mut(|u| {
            let keep = self.keeps(u, department_rules, &include, &in_scope, &excluded);
            if !keep {
                left_out.push(u.source_id.clone());
            }
            keep
        });
        s.out_of_scope.extend(left_out);
        (before.0 - s.users.len(), before.1 - s.departments.len())
    }

    /// Whether the object `id` of `s` stays in scope, and the rule that
    /// leaves it out (the first that does on its own, else the department
    /// rules together).
    pub fn decide(&self, kind: crate::model::Kind, id: &SourceId, s: &Snapshot) -> (bool, String) {
        let kept = |scope: &Scope| {
            let mut one = s.clone();
            scope.apply(&mut one);
            match kind {
                crate::model::Kind::User => one.users.iter().any(|u| &u.source_id == id),
                crate::model::Kind::Department => one.departments.iter().any(|d| &d.source_id == id),
            }
        };
        if self.is_everything() {
            return (true, "no [scope] rules: everything is synced".into());
        }
        if kept(self) {
            return (true, "kept by every [scope] rule".into());
        }
        let only = |f: fn(&Scope, &mut Scope)| {
            let mut one = Scope::default();
            f(self, &mut one);
            one
        };
        let rules: [(String, Scope); 4] = [
            ("scope.exclude_users lists it".into(), only(|s, o| o.exclude_users = s.exclude_users.clone())),
            ("not under scope.include_departments".into(), only(|s, o| o.include_departments = s.include_departments.clone())),
            ("under scope.exclude_departments".into(), only(|s, o| o.exclude_departments = s.exclude_departments.clone())),
            (
                format!("scope.filter {:?} is false for it", self.filter.as_ref().map_or("", |f| f.0.as_str())),
                only(|s, o| o.filter = s.filter.clone()),
            ),
        ];
        let why = rules.iter().find(|(_, rule)| !rule.is_everything() && !kept(rule)).map(|(why, _)| why.clone());
        (false, why.unwrap_or_else(|| "scope.include_departments and scope.exclude_departments together".into()))
    }

    /// Whether user `u` stays (its departments out of scope dropped from it).
    fn keeps(
        &self,
        u: &mut User,
        department_rules: bool,
        include: &HashSet<&str>,
        in_scope: &HashSet<String>,
        excluded: &HashSet<String>,
    ) -> bool {
        {
            if excluded.contains(&u.source_id.as_str().to_lowercase())
                || u.username.as_deref().is_some_and(|n| excluded.contains(&n.to_lowercase()))
            {
                return false;
            }
            if department_rules {
                let had = !u.department_ids.is_empty();
                u.department_ids.retain(|d| in_scope.contains(d.as_str()));
                // In a department out of scope only: out of scope. With none at all: in, unless departments are included.
                if (had && u.department_ids.is_empty()) || (!had && !include.is_empty()) {
                    return false;
                }
            }
            match &self.filter {
                Some((_, node)) => node.eval_boolean_with_context(&context(u)).unwrap_or(false),
                None => true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Department;

    fn dept(id: &str, parent: Option<&str>) -> Department {
        Department { source_id: id.into(), parent_id: parent.map(SourceId::from), name: id.into(), order: 0, leader_ids: vec![] }
    }

    fn user(id: &str, depts: &[&str], title: &str) -> User {
        User {
            source_id: id.into(),
            username: Some(format!("user.{id}")),
            title: Some(title.into()),
            department_ids: depts.iter().map(|d| SourceId::from(*d)).collect(),
            active: true,
            ..User::default()
        }
    }

    fn org() -> Snapshot {
        Snapshot {
            departments: vec![dept("a", None), dept("a1", Some("a")), dept("a2", Some("a")), dept("b", None)],
            users: vec![
                user("u1", &["a1"], "Engineer"),
                user("u2", &["a2", "b"], "Intern"),
                user("u3", &["b"], "Engineer"),
                user("u4", &[], "CEO"),
            ],
            ..Snapshot::default()
        }
    }

    fn ids(s: &Snapshot) -> (Vec<&str>, Vec<&str>) {
        (s.departments.iter().map(|d| d.source_id.as_str()).collect(), s.users.iter().map(|u| u.source_id.as_str()).collect())
    }

    #[test]
    fn subtrees_users_and_a_filter_narrow_the_snapshot() {
        let mut s = org();
        let scope = Scope { include_departments: vec!["a".into()], exclude_departments: vec!["a2".into()], ..Scope::default() };
        assert_eq!(scope.apply(&mut s), (3, 2));
        assert_eq!(ids(&s), (vec!["a", "a1"], vec!["u1"]));

        let mut s = org();
        let scope = Scope { exclude_departments: vec!["a2".into()], exclude_users: vec!["User.U3".into()], ..Scope::default() };
        scope.apply(&mut s);
        assert_eq!(ids(&s).1, ["u1", "u2", "u4"], "u2 stays through b; u4 has no department; u3 is excluded by username, in any case");
        assert_eq!(s.users[1].department_ids, [SourceId::from("b")], "its out-of-scope department dropped");

        let mut s = org();
        let scope = Scope { filter: Some(("title != \"Intern\"".into(), compile("title != \"Intern\"").unwrap())), ..Scope::default() };
        scope.apply(&mut s);
        assert_eq!(ids(&s).1, ["u1", "u3", "u4"]);
    }

    #[test]
    fn an_included_department_below_the_top_is_a_root_with_its_subtree_and_members() {
        let mut s = org();
        s.departments.push(dept("a1x", Some("a1")));
        s.users.push(user("u5", &["a1x"], "Engineer"));
        let scope = Scope { include_departments: vec!["a1".into()], ..Scope::default() };
        scope.apply(&mut s);
        assert_eq!(ids(&s), (vec!["a1", "a1x"], vec!["u1", "u5"]));
        assert_eq!(s.departments[0].parent_id, None, "a1's parent a is out of scope: a1 is a root");
        assert_eq!(s.departments[1].parent_id, Some(SourceId::from("a1")), "its subtree keeps its shape");
        // Both an ancestor and a descendant included: the ancestor is the root.
        let mut s = org();
        let scope = Scope { include_departments: vec!["a".into(), "a1".into()], ..Scope::default() };
        scope.apply(&mut s);
        assert_eq!(
            s.departments.iter().map(|d| (d.source_id.as_str(), d.parent_id.is_some())).collect::<Vec<_>>(),
            [("a", false), ("a1", true), ("a2", true)]
        );
    }

    #[test]
    fn a_filter_must_be_a_yes_no_expression_over_known_fields() {
        assert!(compile("title != \"Intern\" && active").is_ok());
        assert!(compile("employee_type != \"intern\"").unwrap_err().to_string().contains("unknown field \"employee_type\""));
        assert!(compile("title").unwrap_err().to_string().contains("not a yes/no"));
        assert!(compile("title ==").is_err());
    }
}
