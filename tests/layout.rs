//! The layers of `src/` hold: every `crate::…` path in a file of one top-level module
//! (`use crate::runtime::…`, `crate::adapters::kube::client(…)`, also inside macros) is an
//! edge to another top-level module, and each edge must be one the README's Layout table
//! allows in its "May import" column. Cycles between top-level modules fail too, whatever
//! the table says.
//!
//! The files are read as Rust tokens (`proc-macro2`), so comments and string literals never
//! count as edges. `super::` paths stay inside a module and are not edges.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use proc_macro2::{Delimiter, TokenStream, TokenTree};

const README: &str = include_str!("../README.md");

/// The top-level modules each top-level module may import, from the README's Layout table.
type Rules = BTreeMap<String, BTreeSet<String>>;

/// One `crate::…` edge: from a file of module `from` to module `to`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Edge {
    from: String,
    to: String,
    file: String,
}

/// The rows of the `## Layout` table whose path is `src/NAME/`: NAME and the modules its
/// "May import" column names (in backticks; "nothing" names none).
fn parse_rules(readme: &str) -> Result<Rules, String> {
    let section = readme
        .split("\n## Layout")
        .nth(1)
        .ok_or("README.md: no `## Layout` section")?;
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut lines = section.lines().filter(|l| l.trim_start().starts_with('|'));
    let header: Vec<String> = lines
        .next()
        .ok_or("README.md ## Layout: no table")?
        .split('|')
        .map(|c| c.trim().to_string())
        .collect();
    let col = header
        .iter()
        .position(|c| c.starts_with("May import"))
        .ok_or("README.md ## Layout: expected a `May import` column")?;
    let mut rules = Rules::new();
    for line in lines {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let Some(path) = cells.get(1) else { continue };
        let Some(name) = path
            .strip_prefix("`src/")
            .and_then(|p| p.strip_suffix("/`"))
        else {
            continue;
        };
        let allowed = cells.get(col).ok_or_else(|| {
            format!("README.md ## Layout: row `src/{name}/` has no May import cell")
        })?;
        let names: BTreeSet<String> = allowed
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect();
        if names.is_empty() && *allowed != "nothing" {
            return Err(format!(
                "README.md ## Layout: row `src/{name}/`: May import `{allowed}`: expected \
                 module names in backticks or `nothing`"
            ));
        }
        rules.insert(name.to_string(), names);
    }
    Ok(rules)
}

/// The top-level modules a file's text names through `crate::` paths.
fn crate_edges(text: &str) -> Result<BTreeSet<String>, String> {
    let tokens = TokenStream::from_str(text).map_err(|e| format!("cannot tokenize: {e}"))?;
    let mut out = BTreeSet::new();
    walk(tokens, &mut out);
    Ok(out)
}

fn walk(tokens: TokenStream, out: &mut BTreeSet<String>) {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    for (i, t) in tokens.iter().enumerate() {
        match t {
            TokenTree::Group(g) => walk(g.stream(), out),
            TokenTree::Ident(id) if id == "crate" => {
                let colons = matches!(
                    (tokens.get(i + 1), tokens.get(i + 2)),
                    (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b)))
                        if a.as_char() == ':' && b.as_char() == ':'
                );
                if !colons {
                    continue;
                }
                match tokens.get(i + 3) {
                    Some(TokenTree::Ident(next)) => {
                        out.insert(next.to_string());
                    }
                    // `crate::{a::x, b}`: the first name of each item.
                    Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Brace => {
                        let mut first = true;
                        for t in g.stream() {
                            match t {
                                TokenTree::Punct(p) if p.as_char() == ',' => first = true,
                                TokenTree::Ident(id) if first => {
                                    first = false;
                                    if id != "self" {
                                        out.insert(id.to_string());
                                    }
                                }
                                _ => first = false,
                            }
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
}

/// The `pub use` items of a file that re-export something of `crate::model` (`pub use
/// crate::model::x::Y;`, `pub(crate) use crate::{model::x, …}`), as text.
fn model_reexports(text: &str) -> Result<Vec<String>, String> {
    let tokens = TokenStream::from_str(text).map_err(|e| format!("cannot tokenize: {e}"))?;
    let mut out = Vec::new();
    walk_reexports(tokens, &mut out);
    Ok(out)
}

fn walk_reexports(tokens: TokenStream, out: &mut Vec<String>) {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let mut i = 0;
    while i < tokens.len() {
        if let TokenTree::Group(g) = &tokens[i] {
            walk_reexports(g.stream(), out);
        }
        let is_pub = matches!(&tokens[i], TokenTree::Ident(id) if id == "pub");
        if !is_pub {
            i += 1;
            continue;
        }
        // `pub(crate)`, `pub(super)`: skip the restriction.
        let mut j = i + 1;
        if matches!(tokens.get(j), Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Parenthesis)
        {
            j += 1;
        }
        if !matches!(tokens.get(j), Some(TokenTree::Ident(id)) if id == "use") {
            i += 1;
            continue;
        }
        let end = tokens[j..]
            .iter()
            .position(|t| matches!(t, TokenTree::Punct(p) if p.as_char() == ';'))
            .map_or(tokens.len(), |k| j + k);
        let item: TokenStream = tokens[i..end].iter().cloned().collect();
        if crate_edges(&item.to_string()).is_ok_and(|e| e.contains("model")) {
            out.push(item.to_string());
        }
        i = end;
    }
}

/// The top-level module of a file under `src/`: `src/runtime/x.rs` and `src/model.rs` give
/// `runtime` and `model`; `lib.rs` and `main.rs` belong to none.
fn module_of(rel: &Path) -> Option<String> {
    let mut parts = rel.components();
    let first = parts.next()?.as_os_str().to_str()?;
    if parts.next().is_some() {
        return Some(first.to_string());
    }
    let stem = first.strip_suffix(".rs")?;
    (!matches!(stem, "lib" | "main")).then(|| stem.to_string())
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every cross-module edge of the tree under `src`.
fn edges_of_tree(src: &Path) -> Result<Vec<Edge>, Vec<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut edges = Vec::new();
    let mut errors = Vec::new();
    for f in files {
        let rel = f.strip_prefix(src).unwrap();
        let Some(from) = module_of(rel) else { continue };
        let text = std::fs::read_to_string(&f).unwrap();
        match crate_edges(&text) {
            Ok(to) => edges.extend(to.into_iter().filter(|t| *t != from).map(|to| Edge {
                from: from.clone(),
                to,
                file: format!("src/{}", rel.display()),
            })),
            Err(e) => errors.push(format!("src/{}: {e}", rel.display())),
        }
    }
    if errors.is_empty() {
        Ok(edges)
    } else {
        Err(errors)
    }
}

/// Edges the rules do not allow, and modules the rules do not know.
fn violations(edges: &[Edge], rules: &Rules) -> Vec<String> {
    let mut out = BTreeSet::new();
    for e in edges {
        match rules.get(&e.from) {
            None => {
                out.insert(format!(
                    "src/{}/ has no row in the README's Layout table",
                    e.from
                ));
            }
            Some(allowed) if !allowed.contains(&e.to) => {
                out.insert(format!(
                    "{}: `{}` imports `crate::{}`, which the README's Layout table does not \
                     allow (it may import: {})",
                    e.file,
                    e.from,
                    e.to,
                    if allowed.is_empty() {
                        "nothing".to_string()
                    } else {
                        allowed.iter().cloned().collect::<Vec<_>>().join(", ")
                    }
                ));
            }
            Some(_) => {}
        }
    }
    out.into_iter().collect()
}

/// The cycles between modules: each strongly connected component of more than one module,
/// with one file per edge inside it.
fn cycles(edges: &[Edge]) -> Vec<String> {
    let mut graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for e in edges {
        graph.entry(&e.from).or_default().insert(&e.to);
        graph.entry(&e.to).or_default();
    }
    let reach = |from: &str| -> BTreeSet<&str> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from];
        while let Some(n) = todo.pop() {
            for &m in &graph[n] {
                if seen.insert(m) {
                    todo.push(m);
                }
            }
        }
        seen
    };
    let reachable: BTreeMap<&str, BTreeSet<&str>> = graph.keys().map(|&n| (n, reach(n))).collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for &n in graph.keys() {
        if done.contains(n) {
            continue;
        }
        let scc: BTreeSet<&str> = std::iter::once(n)
            .chain(
                reachable[n]
                    .iter()
                    .copied()
                    .filter(|&m| reachable[m].contains(n)),
            )
            .collect();
        done.extend(scc.iter().copied());
        if scc.len() > 1 {
            let inside: Vec<String> = edges
                .iter()
                .filter(|e| scc.contains(e.from.as_str()) && scc.contains(e.to.as_str()))
                .map(|e| format!("{} -> {} ({})", e.from, e.to, e.file))
                .collect();
            out.push(format!(
                "import cycle between {}: {}",
                scc.iter().copied().collect::<Vec<_>>().join(", "),
                inside.join("; ")
            ));
        }
    }
    out
}

#[test]
fn src_holds_to_the_readme_layout_table_and_has_no_cycles() {
    let rules = parse_rules(README).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = edges_of_tree(&src).unwrap_or_else(|e| panic!("{}", e.join("\n")));
    assert!(
        edges.len() > 20,
        "only {} edges found: the scan is broken",
        edges.len()
    );
    // Every top-level folder of src has a row, even one that imports nothing.
    let mut problems: Vec<String> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
        .filter(|m| !rules.contains_key(m))
        .map(|m| format!("src/{m}/ has no row in the README's Layout table"))
        .collect();
    problems.extend(violations(&edges, &rules));
    problems.extend(cycles(&edges));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The checks can fail: a forbidden edge and a cycle, fed in, are reported.
#[test]
fn a_forbidden_edge_and_a_cycle_are_reported() {
    let readme =
        "# x\n\n## Layout\n\n| Path | What | Touch | May import |\n| --- | --- | --- | --- |\n\
                  | `src/model/` | data | nothing | nothing |\n\
                  | `src/slo/` | core | nothing | `model` |\n\
                  | `src/runtime/` | loops | ports | `model`, `slo` |\n\n## Next\n";
    let rules = parse_rules(readme).unwrap();
    assert_eq!(rules["runtime"].len(), 2);
    assert!(rules["model"].is_empty());

    let text = "//! `crate::runtime` in a comment is no edge.\n\
                use crate::{model::Weights, runtime::{self, x}};\n\
                fn f() { let _ = \"crate::cli\"; tokio::select! { _ = crate::demo::run() => {} } }\n";
    let found = crate_edges(text).unwrap();
    assert_eq!(
        found,
        ["demo", "model", "runtime"]
            .map(String::from)
            .into_iter()
            .collect()
    );

    let edge = |from: &str, to: &str| Edge {
        from: from.into(),
        to: to.into(),
        file: format!("src/{from}/a.rs"),
    };
    let bad = violations(&[edge("slo", "model"), edge("slo", "runtime")], &rules);
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(bad[0].contains("`slo` imports `crate::runtime`"), "{bad:?}");
    let unknown = violations(&[edge("cli", "slo")], &rules);
    assert!(unknown[0].contains("src/cli/ has no row"), "{unknown:?}");

    assert!(cycles(&[edge("slo", "model"), edge("runtime", "slo")]).is_empty());
    let cyc = cycles(&[
        edge("slo", "model"),
        edge("model", "runtime"),
        edge("runtime", "slo"),
        edge("cli", "slo"),
    ]);
    assert_eq!(cyc.len(), 1, "{cyc:?}");
    assert!(
        cyc[0].starts_with("import cycle between model, runtime, slo"),
        "{cyc:?}"
    );
}

/// `ports/` holds traits only (with their error enums and I/O vocabulary): the model's
/// data types are imported from `crate::model`, never re-exported through a port.
#[test]
fn ports_do_not_reexport_model_types() {
    let ports = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ports");
    let mut files = Vec::new();
    rust_files(&ports, &mut files);
    assert!(
        files.len() > 5,
        "only {} files under src/ports",
        files.len()
    );
    let mut problems = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for item in model_reexports(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display())) {
            problems.push(format!(
                "{}: `{item}` re-exports model types through a port: import them from \
                 `crate::model` where they are used",
                f.display()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The re-export check can fail: each form of `pub use` of the model is found, and a
/// private `use` or a re-export of something else is not.
#[test]
fn a_model_reexport_is_reported() {
    let text = "//! `pub use crate::model::x;` in a comment is none.\n\
                use crate::model::traffic::Weights;\n\
                pub use metrics::{MetricsError, MetricsSource};\n\
                pub use crate::model::commit::{CommitInfo, Sha};\n\
                pub(crate) use crate::{ports::state::StateStore, model::trailers::*};\n\
                mod inner { pub use crate::model::notify::Severity; }\n\
                pub fn f() -> &'static str { \"pub use crate::model::y;\" }\n";
    let found = model_reexports(text).unwrap();
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(found[0].contains("commit"), "{found:?}");
    assert!(found[1].contains("StateStore"), "{found:?}");
    assert!(found[2].contains("Severity"), "{found:?}");
    assert!(
        model_reexports("use crate::model::x::Y;\npub use self::a::B;\n")
            .unwrap()
            .is_empty()
    );
}
