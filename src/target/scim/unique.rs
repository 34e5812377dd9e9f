//! Group names on servers that keep them unique (a 409 for a second
//! "Team"). Departments repeat names across the tree, so a department whose
//! name is another department's group takes `{name} ({parent})`, then
//! `{name} ({parent}) 2` … (a root: `{name} (2)` …). The load reads such a
//! displayName back as the department's own name, so the planner never
//! "renames" it and the name never flaps between runs. Pure.

use crate::model::{TargetDepartment, TargetId};
use std::collections::{HashMap, HashSet};

/// The names to try, in order, when `name` is taken.
pub fn names(name: &str, parent: Option<&str>) -> Vec<String> {
    match parent {
        Some(p) => {
            let base = format!("{name} ({p})");
            std::iter::once(base.clone()).chain((2..=9).map(|n| format!("{base} {n}"))).collect()
        }
        None => (2..=9).map(|n| format!("{name} ({n})")).collect(),
    }
}

/// `shown` without a trailing ` 2`..` 9`.
fn unnumbered(shown: &str) -> &str {
    match shown.rsplit_once(' ') {
        Some((head, n)) if n.parse::<u32>().is_ok_and(|n| (2..=9).contains(&n)) => head,
        _ => shown,
    }
}

/// The department name behind `shown`, given which names are its parent's.
fn base<'a>(shown: &'a str, is_parent: &dyn Fn(&str) -> bool, taken: &dyn Fn(&str) -> bool) -> Option<&'a str> {
    let s = unnumbered(shown);
    let inner = s.strip_suffix(')')?;
    for (at, _) in inner.match_indices(" (") {
        let (head, tail) = (&inner[..at], &inner[at + 2..]);
        // A root's `Team (2)`: the plain name is another group's.
        let root = s.len() == shown.len() && tail.parse::<u32>().is_ok_and(|n| (2..=9).contains(&n)) && taken(head);
        if root || is_parent(tail) {
            return Some(head);
        }
    }
    None
}

/// Read each of our groups' displayName back as its department's name
/// (`Team (Support)` under `Support` -> `Team`); returns every group's
/// displayName as the server holds it.
pub fn read_back(departments: &mut [TargetDepartment]) -> HashMap<TargetId, String> {
    let shown: HashMap<TargetId, String> = departments.iter().map(|d| (d.id.clone(), d.name.clone())).collect();
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
        let taken = |n: &str| all.contains(n);
        if let Some(b) = base(&d.name, &is_parent, &taken) {
            d.name = b.to_owned();
        }
    }
    shown
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
        }
    }

    #[test]
    fn names_tried_and_read_back_as_the_departments_own() {
        assert_eq!(names("Team", Some("Support"))[..2], ["Team (Support)", "Team (Support) 2"]);
        assert_eq!(names("Team", None)[0], "Team (2)");
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
        let shown = read_back(&mut d);
        let got: Vec<&str> = d.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(got, ["Sales", "Support", "Team", "Team", "Team", "R&D (China)", "Ops (Support)", "Sales", "Floor 2", "Floor"]);
        assert_eq!(shown[&TargetId("4".into())], "Team (Support)", "the server's name is kept for writes");
    }
}
