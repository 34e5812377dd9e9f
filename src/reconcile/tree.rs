//! Placing departments in the tree: each source department's depth (a
//! cycle or a missing parent makes it and its subtree invalid), and the
//! depths of the target's own tree.

use super::departments::invalid_dept;
use super::plan::Item;
use crate::model::{Department, SourceId, TargetId, TargetSnapshot};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

/// The depth of each source department (`None`: invalid), and an `invalid`
/// item for each one that cannot be placed: in a parent cycle, under a
/// parent not in the source, or below either.
pub(super) fn depths(src: &[&Department], index: &HashMap<&SourceId, usize>) -> (Vec<Option<usize>>, Vec<Item>) {
    let n = src.len();
    let mut items = Vec::new();
    let mut depth: Vec<Option<usize>> = vec![None; n];
    let mut done = vec![false; n];
    for start in 0..n {
        if done[start] {
            continue;
        }
        let mut chain: Vec<usize> = Vec::new();
        let mut on_chain = HashSet::default();
        let mut cur = start;
        // Walk up until a resolved node, a root, a missing parent or a cycle.
        let base: Result<usize, BadAncestor> = loop {
            if done[cur] {
                break depth[cur].map(|d| d + 1).ok_or_else(|| BadAncestor::Invalid(src[cur].source_id.clone()));
            }
            if !on_chain.insert(cur) {
                let pos = chain.iter().position(|&c| c == cur).unwrap_or(0);
                let cycle: Vec<String> = chain[pos..].iter().map(|&c| src[c].source_id.to_string()).collect();
                // Members of the cycle get the cycle message; their descendants below.
                for &c in &chain[pos..] {
                    done[c] = true;
                    depth[c] = None;
                    items.push(invalid_dept(
                        src[c],
                        format!(
                            "department is part of a parent cycle: {} -> {}",
                            cycle.join(" -> "),
                            cycle.first().map(String::as_str).unwrap_or("")
                        ),
                    ));
                }
                chain.truncate(pos);
                break Err(BadAncestor::InCycle(src[cur].source_id.clone()));
            }
            chain.push(cur);
            match &src[cur].parent_id {
                None => break Ok(0),
                Some(pid) => match index.get(pid) {
                    Some(&pi) => cur = pi,
                    None => {
                        let msg = format!("parent department {pid} is not in the source");
                        chain.pop();
                        done[cur] = true;
                        depth[cur] = None;
                        items.push(invalid_dept(src[cur], msg));
                        break Err(BadAncestor::MissingParent(src[cur].source_id.clone()));
                    }
                },
            }
        };
        // Resolve the chain top-down.
        match base {
            Ok(mut d) => {
                for &c in chain.iter().rev() {
                    if done[c] {
                        continue;
                    }
                    done[c] = true;
                    depth[c] = Some(d);
                    d += 1;
                }
            }
            Err(bad) => {
                for &c in chain.iter().rev() {
                    if !done[c] {
                        done[c] = true;
                        items.push(invalid_dept(src[c], bad.to_string()));
                    }
                }
            }
        }
    }
    (depth, items)
}

/// Depth of each target department in the target's own tree (cycles cut).
pub(super) fn target_depths(target: &TargetSnapshot) -> Vec<usize> {
    let idx: HashMap<&TargetId, usize> = target.departments.iter().enumerate().map(|(i, d)| (&d.id, i)).collect();
    target
        .departments
        .iter()
        .map(|d| {
            let mut depth = 0;
            let mut cur = d.parent.as_ref();
            while let Some(p) = cur.and_then(|p| idx.get(p)) {
                depth += 1;
                if depth > target.departments.len() {
                    break;
                }
                cur = target.departments[*p].parent.as_ref();
            }
            depth
        })
        .collect()
}

/// Why a department's ancestry cannot be placed (its descendants' items say it).
#[derive(Debug, thiserror::Error)]
enum BadAncestor {
    #[error("ancestor {0} is invalid")]
    Invalid(SourceId),
    #[error("ancestor {0} is in a parent cycle")]
    InCycle(SourceId),
    #[error("ancestor {0} has a missing parent")]
    MissingParent(SourceId),
}
