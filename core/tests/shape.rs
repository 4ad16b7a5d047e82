//! The workspace's shape, checked on its source: no module imports its way back to itself,
//! `unsafe` is written only in the ground floors (`src/pg/`, and `core/src/sys.rs` for the
//! core's one system call), and the vocabulary
//! imports nothing of its crate. These are what keep a change local; a break names the files.

mod source;

use std::collections::{BTreeMap, BTreeSet};

use agent_loop_core::lifecycle::TaskStatus;
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
        let lines: Vec<&str> = m.text.lines().collect();
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

/// A constant the ground floor copies from a PostgreSQL header (not in pgrx's bindings), read
/// back from the header of the PostgreSQL it builds against, when the headers are installed.
fn constant_in_source(file: &str, name: &str) -> usize {
    let text = source::read(file);
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("const {name}: ")))
        .unwrap_or_else(|| panic!("{file} defines {name}"));
    line.rsplit('=')
        .next()
        .unwrap()
        .trim()
        .trim_end_matches(';')
        .parse()
        .expect("a number")
}

fn server_header(relative: &str) -> Option<String> {
    let include = std::process::Command::new("pg_config")
        .arg("--includedir-server")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|dir| !dir.is_empty())
        .unwrap_or_else(|| "/usr/include/postgresql/15/server".to_owned());
    std::fs::read_to_string(std::path::Path::new(&include).join(relative)).ok()
}

#[test]
fn constants_copied_from_headers_match_them() {
    if let Some(header) = server_header("utils/timeout.h") {
        let body = header
            .split("typedef enum TimeoutId")
            .nth(1)
            .expect("the enum");
        let body = body
            .split('}')
            .next()
            .unwrap()
            .trim()
            .trim_start_matches('{');
        let mut names = String::new();
        for (i, part) in body.split("/*").enumerate() {
            names.push_str(match i {
                0 => part,
                _ => part.split("*/").nth(1).unwrap_or(""),
            });
        }
        let position = names
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .position(|e| e.starts_with("STATEMENT_TIMEOUT"))
            .expect("STATEMENT_TIMEOUT in TimeoutId");
        assert_eq!(
            constant_in_source("src/pg/txn.rs", "STATEMENT_TIMEOUT"),
            position
        );
    }
    if let Some(header) = server_header("storage/lwlocknames.h") {
        let line = header
            .lines()
            .find(|l| l.contains("#define AddinShmemInitLock"))
            .expect("AddinShmemInitLock");
        let index: usize = line
            .split('[')
            .nth(1)
            .unwrap()
            .split(']')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            constant_in_source("src/pg/shmem.rs", "ADDIN_SHMEM_INIT_LOCK"),
            index
        );
    }
}

/// The statuses a list of SQL literals names, for each list of two or more (`'a', 'b'`), and
/// every single literal compared with a status column (`status = 'a'`), in `text`.
fn status_literals(text: &str) -> (Vec<Vec<String>>, Vec<String>) {
    // Each quoted label, where it is: apostrophes in comments make pairing quotes unreliable.
    let mut found: Vec<(usize, usize, &str)> = TaskStatus::ALL
        .iter()
        .flat_map(|s| {
            let quoted = format!("'{}'", s.as_str());
            let label = s.as_str();
            text.match_indices(&quoted)
                .map(move |(at, q)| (at, at + q.len(), label))
                .collect::<Vec<_>>()
        })
        .collect();
    found.sort();
    let mut lists: Vec<Vec<String>> = Vec::new();
    let mut compared = Vec::new();
    let mut previous_end = None;
    for (start, end, label) in found {
        let before = text[..start].trim_end();
        if before.ends_with("status =") || before.ends_with("status <>") {
            compared.push(label.to_owned());
        }
        let joined = previous_end.is_some_and(|p: usize| {
            let between = &text[p..start];
            between.trim() == ","
        });
        match (joined, lists.last_mut()) {
            (true, Some(list)) => list.push(label.to_owned()),
            _ => lists.push(vec![label.to_owned()]),
        }
        previous_end = Some(end);
    }
    lists.retain(|l| l.len() > 1);
    (lists, compared)
}

/// Every file that spells statuses in SQL: the scripts, and the statements in Rust.
fn sql_sources() -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = ["sql/schema.sql", "sql/api.sql", "sql/tuning.sql"]
        .iter()
        .map(|f| {
            let text = source::read(f);
            (f.to_string(), text)
        })
        .collect();
    files.extend(modules("src").into_iter().map(|m| (m.path, m.text)));
    files
}

#[test]
fn every_status_list_in_sql_is_one_the_lifecycle_defines() {
    let named: Vec<(&str, String)> = vec![
        ("every status", TaskStatus::sql_list(|_| true)),
        ("not ended", TaskStatus::sql_list(|s| !s.has_ended())),
        ("ended", TaskStatus::sql_list(TaskStatus::has_ended)),
        ("parked", TaskStatus::sql_list(TaskStatus::is_parked)),
        (
            "cancels at once",
            TaskStatus::sql_list(TaskStatus::cancels_at_once),
        ),
        ("can retry", TaskStatus::sql_list(TaskStatus::can_retry)),
    ];
    let mut checked = 0;
    // Every list that is off, so that a new status shows every place it must go.
    let mut off = Vec::new();
    for (file, text) in sql_sources() {
        let (lists, compared) = status_literals(&text);
        for list in lists {
            let spelled = list
                .iter()
                .map(|s| format!("'{s}'"))
                .collect::<Vec<_>>()
                .join(", ");
            if !named.iter().any(|(_, l)| *l == spelled) {
                off.push(format!("{file}: ({spelled})"));
            }
            checked += 1;
        }
        for label in compared.iter().filter(|l| TaskStatus::parse(l).is_none()) {
            off.push(format!("{file}: status '{label}'"));
        }
    }
    assert!(
        off.is_empty(),
        "status lists that are none of the lifecycle's {named:#?}:\n{}",
        off.join("\n")
    );
    assert!(checked >= 10, "found only {checked} status lists");
    let schema = source::read("sql/schema.sql");
    let enum_def = schema
        .split("CREATE TYPE task_status AS ENUM")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .expect("the task_status enum");
    let (lists, _) = status_literals(enum_def);
    assert_eq!(
        lists.first().map(|l| l.join(",")),
        Some(TaskStatus::ALL.map(|s| s.as_str()).join(",")),
        "the enum's labels, in order"
    );
}

#[test]
fn the_status_list_reader_finds_lists_and_comparisons() {
    let (lists, compared) =
        status_literals("WHERE status = 'running' OR status IN ('failed', 'cancelled')");
    assert_eq!(
        lists,
        vec![vec!["failed".to_owned(), "cancelled".to_owned()]]
    );
    assert_eq!(compared, vec!["running".to_owned()]);
}

#[test]
fn the_sql_knows_the_built_in_tools_the_core_routes() {
    let names = agent_loop_core::tools::Builtin::ALL
        .map(|b| format!("'{}'", b.name()))
        .join(", ");
    let schema = source::read("sql/schema.sql");
    let api = source::read("sql/api.sql");
    assert!(
        schema.contains(&format!("(function IS NULL) = (name IN ({names}))")),
        "the tools table's constraint names the built-in tools {names}"
    );
    assert!(
        api.contains(&format!("tool_name IN ({names})")),
        "register_tool refuses the built-in names {names}"
    );
    for name in agent_loop_core::tools::Builtin::ALL.map(|b| b.name()) {
        assert!(
            schema.contains(&format!("VALUES ('{name}', NULL,")),
            "schema.sql inserts the row of {name}"
        );
    }
}

#[test]
fn only_the_registry_names_providers() {
    // The default provider may be spelled; no other one is: the checks read _providers().
    for file in ["sql/schema.sql", "sql/api.sql"] {
        let text = source::read(file);
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("--") && !l.contains("COMMENT ON"))
            .filter(|l| !l.trim_start().starts_with('\''))
            .collect::<Vec<_>>()
            .join("\n");
        for name in agent_loop_core::model::provider_names().into_iter().skip(1) {
            assert!(
                !code.contains(&format!("'{name}'")),
                "{file} names the provider {name}"
            );
        }
    }
    assert!(
        source::read("sql/api.sql").contains("CHECK (provider = ANY (agent_loop._providers()))")
    );
}
