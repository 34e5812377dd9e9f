//! The docs stay true to the tree: every module under `src/` is named in
//! `docs/design.md`'s layout, and every relative link in README.md and
//! `docs/` leads to a file that is there.

use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, ext, out);
        } else if p.extension().is_some_and(|x| x == ext) {
            out.push(p);
        }
    }
}

/// The layout block of docs/design.md.
fn layout() -> String {
    let design = std::fs::read_to_string(root().join("docs/design.md")).unwrap();
    let at = design.find("## Layout").expect("docs/design.md has a Layout section");
    design[at..].to_owned()
}

#[test]
fn every_module_under_src_is_named_in_the_design_layout() {
    let layout = layout();
    let named = |word: &str| {
        layout.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.')).any(|w| w == word || w.trim_end_matches('.') == word)
    };
    let mut rs = Vec::new();
    files(&root().join("src"), "rs", &mut rs);
    let mut missing = Vec::new();
    for f in rs {
        let rel = f.strip_prefix(root().join("src")).unwrap();
        let stem = f.file_stem().unwrap().to_str().unwrap();
        // A folder module is named by its folder; `tests.rs` files are the folders' tests.
        let name = match stem {
            "mod" => rel.parent().and_then(Path::file_name).unwrap().to_str().unwrap().to_owned(),
            "tests" => continue,
            s => s.to_owned(),
        };
        if !named(&name) && !named(&format!("{name}.rs")) && !named(&format!("{name}/")) {
            missing.push(rel.display().to_string());
        }
    }
    assert!(missing.is_empty(), "modules docs/design.md's Layout does not name: {missing:?}");
}

#[test]
fn every_relative_link_in_the_docs_leads_to_a_file() {
    let mut md = vec![root().join("README.md")];
    files(&root().join("docs"), "md", &mut md);
    let mut broken = Vec::new();
    for page in md {
        let text = std::fs::read_to_string(&page).unwrap();
        for (at, _) in text.match_indices("](") {
            let target = &text[at + 2..];
            let Some(end) = target.find(')') else { continue };
            let link = target[..end].split('#').next().unwrap();
            if link.is_empty() || link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            if !page.parent().unwrap().join(link).exists() {
                broken.push(format!("{}: {link}", page.strip_prefix(root()).unwrap().display()));
            }
        }
    }
    assert!(broken.is_empty(), "links to nothing: {broken:?}");
}
