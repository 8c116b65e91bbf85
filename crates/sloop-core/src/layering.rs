//! Keeps the core's modules free of import cycles: reads every source file, collects which
//! top-level module names which (`crate::x`, `crate::{x, y}`), and fails on a cycle. Tests
//! (everything from a file's first `#[cfg(test)]` on) may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

/// The modules `text` names through `crate::`.
fn named_modules(text: &str) -> BTreeSet<String> {
    let word = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut names = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The first word of each item at the group's own level: `{a::X, b::{c, d}, e}`.
            let mut depth = 0;
            let mut item_start = Some(0);
            for (at, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = Some(at + 1),
                    _ => {}
                }
                if let Some(start) = item_start.take() {
                    names.insert(word(group[start..].trim_start()));
                }
            }
        } else {
            names.insert(word(rest));
        }
    }
    names.remove("");
    names
}

fn graph(src: &Path) -> Graph {
    let modules: BTreeSet<String> = std::fs::read_dir(src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() || p.extension().is_some_and(|x| x == "rs"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .filter(|m| m != "lib")
        .collect();
    let mut graph = Graph::new();
    let mut files = vec![src.to_path_buf()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if path.extension().is_none_or(|x| x != "rs") {
            continue;
        }
        let relative = path.strip_prefix(src).unwrap();
        let top = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if top == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let code = &text[..text.find("#[cfg(test)]").unwrap_or(text.len())];
        let edges = graph.entry(top.clone()).or_default();
        edges.extend(
            named_modules(code)
                .into_iter()
                .filter(|m| *m != top && modules.contains(m)),
        );
    }
    graph
}

/// A cycle in `graph`, as the modules along it, when there is one.
fn cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_string());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, done, path) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut done, &mut Vec::new()))
}

#[test]
fn the_core_has_no_import_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = graph(&src);
    assert!(
        graph.get("machine").is_some_and(|m| m.contains("libvirt")),
        "the reader found machine -> libvirt: {graph:?}"
    );
    if let Some(found) = cycle(&graph) {
        panic!("import cycle in sloop-core: {}", found.join(" -> "));
    }
}

#[test]
fn the_reader_sees_paths_and_groups_and_finds_cycles() {
    let names = named_modules(
        "use crate::{config::Config,\n host::{self, X}, paths};\nlet x = crate::ssh::connect();",
    );
    let names: Vec<_> = names.iter().map(String::as_str).collect();
    assert_eq!(names, ["config", "host", "paths", "ssh"]);

    let mut graph = Graph::new();
    graph.entry("a".into()).or_default().insert("b".into());
    graph.entry("b".into()).or_default().insert("c".into());
    assert_eq!(cycle(&graph), None);
    graph.entry("c".into()).or_default().insert("a".into());
    assert_eq!(
        cycle(&graph).unwrap(),
        ["a", "b", "c", "a"].map(String::from).to_vec()
    );
}
