//! The crate's top-level modules form no dependency cycle: no module imports a module that
//! imports it back, directly or through others (issue 11). `docs/ARCHITECTURE.md` draws the
//! layers this keeps true: `domain` and `clock` at the bottom, `startup` (the one place that
//! wires settings into components) and `cli` at the top.
//!
//! How: every `crate::…` path in `src/**/*.rs` (inside `use` groups too, comments stripped) is
//! an edge from the file's top-level module to the path's first segment; the test then looks
//! for strongly connected components with more than one module. Test modules count: an import
//! is an import.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without `//` comments (doc comments name modules in prose and links).
fn strip_comments(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first segment of every `crate::` path in `text`: `crate::a::b` gives `a`;
/// `crate::{a::b, c}` gives `a` and `c`.
fn crate_paths(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut at = 0;
    while let Some(i) = text[at..].find("crate::") {
        let start = at + i + "crate::".len();
        at = start;
        // `crate::` inside a longer identifier (`dhanhook_crate::`) is not a path.
        let before = at - "crate::".len();
        if before > 0 && (bytes[before - 1].is_ascii_alphanumeric() || bytes[before - 1] == b'_') {
            continue;
        }
        if bytes.get(start) == Some(&b'{') {
            let mut depth = 0usize;
            let mut item = String::new();
            for (j, c) in text[start..].char_indices() {
                match c {
                    '{' => {
                        depth += 1;
                        if depth == 1 {
                            continue;
                        }
                    }
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            at = start + j;
                            break;
                        }
                    }
                    ',' if depth == 1 => {
                        found.extend(first_segment(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            found.extend(first_segment(&item));
        } else {
            found.extend(first_segment(&text[start..]));
        }
    }
    found
}

fn first_segment(path: &str) -> Option<String> {
    let name: String = path
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// The module graph: top-level module → the top-level modules it names.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let rel = file.strip_prefix(src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_owned();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = strip_comments(&std::fs::read_to_string(file).unwrap());
        edges
            .entry(module.clone())
            .or_default()
            .extend(crate_paths(&text).into_iter().filter(|m| *m != module));
    }
    let modules: BTreeSet<String> = edges.keys().cloned().collect();
    for targets in edges.values_mut() {
        targets.retain(|t| modules.contains(t));
    }
    edges
}

/// Strongly connected components of more than one module (Tarjan).
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Tarjan<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        next: usize,
        found: Vec<Vec<String>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            self.index.insert(v, self.next);
            self.low.insert(v, self.next);
            self.next += 1;
            self.stack.push(v);
            for w in self.edges.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.stack.contains(&w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    component.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut t = Tarjan {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.found
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = graph(&src);
    let found = cycles(&edges);
    let explain: Vec<String> = found
        .iter()
        .map(|c| {
            let arrows: Vec<String> = c
                .iter()
                .map(|m| {
                    let back: Vec<&str> = edges[m]
                        .iter()
                        .filter(|t| c.contains(t))
                        .map(String::as_str)
                        .collect();
                    format!("{m} -> {}", back.join(", "))
                })
                .collect();
            format!("[{}]", arrows.join("; "))
        })
        .collect();
    assert!(found.is_empty(), "module cycles: {}", explain.join(" "));
}

#[test]
fn the_checker_sees_a_cycle_when_there_is_one() {
    // The checker itself, on a two-file crate whose modules import each other.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.rs"), "use crate::{b::Thing, c};\n").unwrap();
    std::fs::write(dir.path().join("b.rs"), "pub fn f() { crate::a::g() }\n").unwrap();
    std::fs::write(
        dir.path().join("c.rs"),
        "// crate::a in a comment is no import\n",
    )
    .unwrap();
    let edges = graph(dir.path());
    assert_eq!(cycles(&edges), vec![vec!["a".to_owned(), "b".to_owned()]]);
    assert!(edges["c"].is_empty());
}

#[test]
fn domain_and_clock_import_nothing_above_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = graph(&src);
    assert_eq!(
        edges["domain"],
        BTreeSet::new(),
        "domain is the bottom layer"
    );
    assert_eq!(edges["clock"], BTreeSet::new(), "clock is the bottom layer");
}
