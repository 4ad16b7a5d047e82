//! The workspace's shape, checked on its source: no module imports its way back to itself,
//! `unsafe` is written only in the ground floors (`src/pg/`, and `core/src/sys.rs` for the
//! core's one system call), and the vocabulary
//! imports nothing of its crate. These are what keep a change local; a break names the files.

mod source;

use std::collections::{BTreeMap, BTreeSet};

use source::{modules, Module};

/// Which modules each module names (`crate::…`, `super::…`, `self::…`), tests left out.
fn import_graph(modules: &[Module]) -> BTreeMap<String, BTreeSet<String>> {
    let known: BTreeSet<&str> = modules.iter().map(|m| m.path.as_str()).collect();
    modules
        .iter()
        .map(|m| {
            let targets = source::paths_named(&m.code)
                .into_iter()
                .filter_map(|p| source::resolve(&m.path, &p, &known))
                .filter(|target| *target != m.path)
                .collect();
            (m.path.clone(), targets)
        })
        .collect()
}

/// A cycle through `start`, if there is one.
fn cycle_from(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    fn walk(
        graph: &BTreeMap<String, BTreeSet<String>>,
        at: &str,
        start: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in graph.get(at).into_iter().flatten() {
            if next == start {
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(graph, next, start, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_owned()];
    let found = walk(graph, start, start, &mut path, &mut BTreeSet::new());
    found.then_some(path)
}

fn assert_acyclic(crate_dir: &str) {
    let modules = modules(crate_dir);
    assert!(modules.len() > 5, "read the modules of {crate_dir}");
    let graph = import_graph(&modules);
    // Top-level modules too: worker -> tools -> worker is a circle even when no one file
    // of worker's is on both ends.
    let mut top_level: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, targets) in &graph {
        let top = |m: &str| m.split("::").next().unwrap_or(m).to_owned();
        let entry = top_level.entry(top(module)).or_default();
        entry.extend(targets.iter().map(|t| top(t)).filter(|t| *t != top(module)));
    }
    for graph in [&graph, &top_level] {
        for module in graph.keys() {
            if let Some(cycle) = cycle_from(graph, module) {
                panic!(
                    "{crate_dir}: import cycle {} -> {module}",
                    cycle.join(" -> ")
                );
            }
        }
    }
}

#[test]
fn the_core_has_no_import_cycle() {
    assert_acyclic("core/src");
}

#[test]
fn the_extension_has_no_import_cycle() {
    assert_acyclic("src");
}

#[test]
fn the_vocabulary_imports_nothing_of_the_core() {
    let modules = modules("core/src");
    let known: BTreeSet<&str> = modules.iter().map(|m| m.path.as_str()).collect();
    let vocab = modules
        .iter()
        .find(|m| m.path == "vocab")
        .expect("vocab.rs");
    let named: Vec<String> = source::paths_named(&vocab.code)
        .into_iter()
        .filter_map(|p| source::resolve("vocab", &p, &known))
        .filter(|t| t != "vocab")
        .collect();
    assert!(named.is_empty(), "vocab.rs imports {named:?}");
}

#[test]
fn the_model_layer_imports_only_the_vocabulary_and_its_siblings() {
    let modules = modules("core/src");
    let known: BTreeSet<&str> = modules.iter().map(|m| m.path.as_str()).collect();
    for m in modules.iter().filter(|m| m.path.starts_with("model::")) {
        for p in source::paths_named(&m.code) {
            let Some(target) = source::resolve(&m.path, &p, &known) else {
                continue;
            };
            assert!(
                target == "vocab" || target == "sys" || target.starts_with("model::"),
                "{} imports {target}: a wire format speaks only the vocabulary",
                m.path
            );
            assert_ne!(target, "model", "{} imports its parent's items", m.path);
        }
    }
}

#[test]
fn unsafe_is_written_only_in_the_ground_floor() {
    let mut offenders = Vec::new();
    for dir in ["core/src", "src"] {
        for m in modules(dir) {
            let in_ground_floor = match dir {
                "src" => m.path == "pg" || m.path.starts_with("pg::"),
                _ => m.path == "sys",
            };
            if !in_ground_floor && source::writes_unsafe(&m.code) {
                offenders.push(format!("{dir}: {}", m.path));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "unsafe outside src/pg/ and core/src/sys.rs: {offenders:?}"
    );
}

#[test]
fn every_unsafe_block_of_the_ground_floor_says_why_it_is_sound() {
    for m in modules("src")
        .into_iter()
        .filter(|m| m.path == "pg" || m.path.starts_with("pg::"))
    {
        let lines: Vec<&str> = m.code.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if !source::opens_unsafe_block(line) {
                continue;
            }
            let above = lines[..i].iter().rev().take(12);
            let noted = line.contains("SAFETY:")
                || above
                    .take_while(|l| {
                        let l = l.trim();
                        l.starts_with("//") || l.is_empty() || !l.ends_with(';')
                    })
                    .any(|l| l.contains("SAFETY:"));
            assert!(noted, "{}:{}: unsafe without a SAFETY note", m.path, i + 1);
        }
    }
}
