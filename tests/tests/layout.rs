//! The workspace's layout rules, checked on its source text:
//!
//! - no two files of one crate import each other, directly or through others (a file imports
//!   another when it names an item of that file's module by a `crate::`, `super::` or `self::`
//!   path, in a `use` or inline);
//! - the admin CLI names no admin URL: its typed client reaches every route through the
//!   route table of `sgt_bin::admin_types` (the client's own test checks it covers them all).
//!
//! A module declaration (`mod x;`) is not an import: a parent holds its children, and a child
//! may use its parent's items (`impl AdminService` split over files) without a circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a source file relative to its crate's `src/` (`a/b.rs` and
/// `a/b/mod.rs` are both `["a", "b"]`; `lib.rs` and `main.rs` are the root, `[]`).
fn module_of(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let file = parts.pop().expect("a file name");
    let stem = file.trim_end_matches(".rs");
    if !(stem == "mod" || (parts.is_empty() && (stem == "lib" || stem == "main"))) {
        parts.push(stem.to_string());
    }
    parts
}

/// Source text without comments and string literals, so `crate::x` in a doc comment or a
/// message is not taken for an import.
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                let mut last = ' ';
                for c in chars.by_ref() {
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
            }
            '"' => {
                skip_quoted(&mut chars, '"');
                out.push_str("\"\"");
            }
            // A char literal such as '"' would otherwise open a string; lifetimes pass.
            '\'' => {
                let rest: String = chars.clone().take(3).collect();
                if rest.starts_with('\\') || rest.chars().nth(1) == Some('\'') {
                    skip_quoted(&mut chars, '\'');
                    out.push_str("' '");
                } else {
                    out.push(c);
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// Skips a string or char literal's text up to its closing `quote`, minding escapes.
fn skip_quoted(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, quote: char) {
    let mut escaped = false;
    for c in chars.by_ref() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == quote {
            break;
        }
    }
}

/// Expands `a::{b, c::{d, e}}` into `a::b`, `a::c::d`, `a::c::e`.
fn expand_use(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        // `a::b as c` names `a::b`.
        let path = tree.split_whitespace().next().unwrap_or_default();
        return vec![path.to_string()];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .flat_map(|p| {
            expand_use(p)
                .into_iter()
                .map(move |rest| format!("{}{rest}", prefix.trim()))
        })
        .collect()
}

/// Every path this file names that starts with `crate`, `super` or `self`, with whether it
/// sits in an indented (inline module) scope.
fn named_paths(code: &str) -> Vec<(String, bool)> {
    let mut paths = Vec::new();
    // `use` statements, which may span lines and nest braces.
    let mut rest = code;
    while let Some(at) = rest.find("use ") {
        let before = &code[..code.len() - rest.len() + at];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let leading = &code[line_start..code.len() - rest.len() + at];
        let is_statement = leading.trim().is_empty()
            || leading.trim() == "pub"
            || leading.trim().starts_with("pub(");
        let tail = &rest[at + 4..];
        if is_statement {
            if let Some(end) = tail.find(';') {
                let indented = leading.starts_with(' ');
                for path in expand_use(&tail[..end]) {
                    paths.push((path, indented));
                }
            }
        }
        rest = tail;
    }
    // Inline paths: `crate::a::b(...)`, `super::x::Y`.
    for line in code.lines() {
        let indented = line.starts_with(' ');
        let trimmed = line.trim_start();
        if trimmed.starts_with("use ") || trimmed.starts_with("pub use ") {
            continue;
        }
        for start in ["crate::", "super::", "self::"] {
            let mut from = 0;
            while let Some(at) = line[from..].find(start) {
                let begin = from + at;
                let boundary = begin == 0
                    || !line[..begin]
                        .chars()
                        .last()
                        .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
                let end = line[begin..]
                    .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    .map_or(line.len(), |e| begin + e);
                if boundary {
                    paths.push((line[begin..end].trim_end_matches(':').to_string(), indented));
                }
                from = end.max(begin + start.len());
            }
        }
    }
    paths
}

/// The file-level import graph of one crate: file → the files it imports.
fn import_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    // `main.rs` beside `lib.rs` is a crate of its own that imports the library by name.
    if src.join("lib.rs").exists() {
        files.retain(|f| f != &src.join("main.rs"));
    }
    let modules: BTreeMap<Vec<String>, String> = files
        .iter()
        .map(|f| {
            let relative = f.strip_prefix(src).expect("under src");
            (module_of(relative), relative.display().to_string())
        })
        .collect();
    let mut graph = BTreeMap::new();
    for file in &files {
        let relative = file.strip_prefix(src).expect("under src");
        let name = relative.display().to_string();
        let here = module_of(relative);
        let code = code_only(&std::fs::read_to_string(file).expect("readable"));
        let mut imports = BTreeSet::new();
        for (path, indented) in named_paths(&code) {
            let mut segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
            let mut module = match segments.first() {
                Some(&"crate") => {
                    segments.remove(0);
                    Vec::new()
                }
                Some(&"super") | Some(&"self") => {
                    // An indented `super` is inside an inline module (`mod tests`): its
                    // parent is this file's own module.
                    let mut module = here.clone();
                    let mut first = true;
                    while let Some(&s) = segments.first() {
                        if s == "super" {
                            if !(first && indented) {
                                module.pop();
                            }
                        } else if s != "self" {
                            break;
                        }
                        first = false;
                        segments.remove(0);
                    }
                    module
                }
                _ => continue,
            };
            // The longest module prefix that is a file of this crate.
            let mut target = modules.get(&module).cloned();
            for s in segments {
                module.push(s.to_string());
                match modules.get(&module) {
                    Some(file) => target = Some(file.clone()),
                    None => break,
                }
            }
            if let Some(target) = target {
                if target != name {
                    imports.insert(target);
                }
            }
        }
        graph.insert(name, imports);
    }
    graph
}

/// The strongly connected components with more than one file (Tarjan's algorithm).
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, node: &'a str) {
        s.index.insert(node, s.next);
        s.low.insert(node, s.next);
        s.next += 1;
        s.stack.push(node);
        s.on_stack.insert(node);
        let graph = s.graph;
        for next in graph.get(node).into_iter().flatten() {
            let next = next.as_str();
            if !s.index.contains_key(next) {
                visit(s, next);
                let low = s.low[node].min(s.low[next]);
                s.low.insert(node, low);
            } else if s.on_stack.contains(next) {
                let low = s.low[node].min(s.index[next]);
                s.low.insert(node, low);
            }
        }
        if s.low[node] == s.index[node] {
            let mut component = Vec::new();
            while let Some(top) = s.stack.pop() {
                s.on_stack.remove(top);
                component.push(top.to_string());
                if top == node {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        found: Vec::new(),
    };
    for node in graph.keys() {
        if !state.index.contains_key(node.as_str()) {
            visit(&mut state, node);
        }
    }
    state.found
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

#[test]
fn no_crate_has_files_that_import_each_other_in_a_circle() {
    let mut report = Vec::new();
    for krate in ["sgt-core", "sgt-local", "sgt-aws", "sgt-bin", "tests"] {
        let src = workspace().join(krate).join("src");
        let graph = import_graph(&src);
        assert!(!graph.is_empty(), "{krate} has source files");
        for circle in circles(&graph) {
            let edges: Vec<String> = circle
                .iter()
                .flat_map(|from| {
                    graph[from]
                        .iter()
                        .filter(|to| circle.contains(to))
                        .map(move |to| format!("    {from} -> {to}"))
                })
                .collect();
            report.push(format!(
                "{krate}: {} files in a circle:\n{}",
                circle.len(),
                edges.join("\n")
            ));
        }
    }
    assert!(report.is_empty(), "import circles:\n{}", report.join("\n"));
}

#[test]
fn the_checker_finds_a_circle_and_reads_nested_uses() {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = dir.path();
    std::fs::create_dir_all(src.join("a")).expect("dir");
    std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\n").expect("write");
    std::fs::write(
        src.join("a/mod.rs"),
        "mod c;\n// use crate::b::Nope; in a comment\nfn f() { let s = \"crate::b\"; }\n",
    )
    .expect("write");
    std::fs::write(
        src.join("a/c.rs"),
        "use crate::{\n    b::{X, Y as Z},\n};\nuse super::Thing;\n#[cfg(test)]\nmod tests {\n    use super::*;\n}\n",
    )
    .expect("write");
    std::fs::write(src.join("b.rs"), "fn g() { crate::a::c::h(); }\n").expect("write");
    let graph = import_graph(src);
    assert_eq!(graph["a/mod.rs"], BTreeSet::new(), "comments and strings");
    assert_eq!(
        graph["a/c.rs"],
        ["a/mod.rs", "b.rs"].map(String::from).into(),
        "nested use, super; the test module's super is the file itself"
    );
    assert_eq!(graph["b.rs"], ["a/c.rs"].map(String::from).into());
    assert_eq!(
        circles(&graph),
        vec![vec!["a/c.rs".to_string(), "b.rs".to_string()]]
    );
}

/// The packages `krate` depends on to build (no dev-dependencies), by name.
fn normal_dependencies(krate: &str) -> BTreeSet<String> {
    let output = std::process::Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
            "-p",
            krate,
        ])
        .current_dir(workspace())
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo tree -p {krate}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_contract_and_the_backends_build_without_the_server() {
    let server_only = [
        "warp",
        "hyper",
        "rustls",
        "tokio-rustls",
        "governor",
        "argon2",
    ];
    // sgt-aws included: the AWS SDK is built without its HTTP client, which the program hands
    // it (`sgt_bin::backends::aws_https_client`).
    for krate in ["sgt-core", "sgt-local", "sgt-aws"] {
        let dependencies = normal_dependencies(krate);
        for name in server_only
            .iter()
            .chain(&["aws-smithy-http-client", "aws-lc-rs"])
        {
            assert!(!dependencies.contains(*name), "{krate} depends on {name}");
        }
        assert!(
            !dependencies.contains("sgt-bin"),
            "{krate} depends on sgt-bin"
        );
    }
}

#[test]
fn the_cli_writes_no_admin_url_by_hand() {
    let mut files = Vec::new();
    rust_files(&workspace().join("sgt-bin/src/cli"), &mut files);
    assert!(files.len() > 5, "the CLI's files: {files:?}");
    let by_hand: Vec<String> = files
        .iter()
        .filter(|file| {
            let text = std::fs::read_to_string(file).expect("readable");
            text.contains("\"/api/") || text.contains("format!(\"/")
        })
        .map(|file| file.display().to_string())
        .collect();
    assert!(
        by_hand.is_empty(),
        "admin URLs written by hand in {by_hand:?}"
    );
}
