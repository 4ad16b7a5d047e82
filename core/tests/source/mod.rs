//! Just enough of a Rust reader for the shape tests: the modules of a crate, the paths each one
//! names, and whether it writes `unsafe`. Comments, strings and tests are left out.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

pub struct Module {
    /// `a::b` for `a/b.rs` or `a/b/mod.rs`; `crate` for `lib.rs`.
    pub path: String,
    /// The code before its `#[cfg(test)]` module, comments and literals blanked.
    pub code: String,
    /// The same, as written.
    pub text: String,
}

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("core/ is in the workspace")
        .to_owned()
}

/// A file of the workspace (`sql/api.sql`), as text.
pub fn read(path: &str) -> String {
    std::fs::read_to_string(workspace().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every module of the crate whose sources are in `dir` (relative to the workspace).
pub fn modules(dir: &str) -> Vec<Module> {
    let root = workspace().join(dir);
    let mut files = Vec::new();
    collect(&root, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let relative = file.strip_prefix(&root).expect("under root");
            let mut parts: Vec<String> = relative
                .with_extension("")
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
                parts.pop();
            }
            let path = match parts.is_empty() {
                true => "crate".to_owned(),
                false => parts.join("::"),
            };
            let text = std::fs::read_to_string(&file).expect("readable source");
            let before_tests = text.split("#[cfg(test)]").next().unwrap_or_default();
            Module {
                path,
                code: blank_comments_and_literals(before_tests),
                text: before_tests.to_owned(),
            }
        })
        .collect()
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// `code` with comments, string and character literals replaced by spaces.
fn blank_comments_and_literals(code: &str) -> String {
    let chars: Vec<char> = code.chars().collect();
    let mut out = String::with_capacity(code.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                i += 1;
            }
            i += 2;
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !ident_before(&chars, i) {
            let mut hashes = 0;
            let mut j = i + 1;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '"' && (0..hashes).all(|h| chars.get(j + 1 + h) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str(" \"\" ");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' {
            // A character literal ('x', '\n', '\''), or a lifetime ('a), which stays.
            let end = match next {
                Some('\\') => chars[i + 2..]
                    .iter()
                    .position(|&ch| ch == '\'')
                    .map(|p| i + 3 + p),
                Some(_) if chars.get(i + 2) == Some(&'\'') => Some(i + 3),
                _ => None,
            };
            match end {
                Some(end) => {
                    out.push_str("' '");
                    i = end;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_before(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Ident(String),
    PathSep,
    Open,
    Close,
    Comma,
    Semi,
    Star,
    Other,
}

fn tokens(code: &str) -> Vec<Token> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token::Ident(chars[start..i].iter().collect()));
            continue;
        }
        out.push(match c {
            ':' if chars.get(i + 1) == Some(&':') => {
                i += 1;
                Token::PathSep
            }
            '{' => Token::Open,
            '}' => Token::Close,
            ',' => Token::Comma,
            ';' => Token::Semi,
            '*' => Token::Star,
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            _ => Token::Other,
        });
        i += 1;
    }
    out
}

/// Every path the code names that starts with `crate`, `super` or `self`, as segments:
/// `use` trees expanded, and paths written inline.
pub fn paths_named(code: &str) -> Vec<Vec<String>> {
    let tokens = tokens(code);
    let mut paths = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            Token::Ident(word) if word == "use" => {
                i += 1;
                use_tree(&tokens, &mut i, Vec::new(), &mut paths);
            }
            Token::Ident(word)
                if (word == "crate" || word == "super" || word == "self")
                    && tokens.get(i + 1) == Some(&Token::PathSep)
                    && (i == 0 || tokens[i - 1] != Token::PathSep) =>
            {
                let mut path = vec![word.clone()];
                i += 1;
                while tokens.get(i) == Some(&Token::PathSep) {
                    match tokens.get(i + 1) {
                        Some(Token::Ident(segment)) => {
                            path.push(segment.clone());
                            i += 2;
                        }
                        _ => break,
                    }
                }
                paths.push(path);
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    paths
        .into_iter()
        .filter(|p| matches!(p[0].as_str(), "crate" | "super" | "self"))
        .collect()
}

/// Reads one use tree at `tokens[*i]`, pushing each path it names onto `paths`.
fn use_tree(tokens: &[Token], i: &mut usize, prefix: Vec<String>, paths: &mut Vec<Vec<String>>) {
    let mut path = prefix;
    loop {
        match tokens.get(*i) {
            Some(Token::Ident(word)) if word == "as" => {
                *i += 2;
            }
            Some(Token::Ident(word)) => {
                if word != "self" || path.is_empty() {
                    path.push(word.clone());
                }
                *i += 1;
            }
            Some(Token::PathSep) => *i += 1,
            Some(Token::Star) => *i += 1,
            Some(Token::Open) => {
                *i += 1;
                loop {
                    use_tree(tokens, i, path.clone(), paths);
                    match tokens.get(*i) {
                        Some(Token::Comma) => *i += 1,
                        Some(Token::Close) => {
                            *i += 1;
                            break;
                        }
                        _ => return,
                    }
                    if tokens.get(*i) == Some(&Token::Close) {
                        *i += 1;
                        break;
                    }
                }
                return;
            }
            _ => {
                if !path.is_empty() {
                    paths.push(path);
                }
                return;
            }
        }
    }
}

/// The module of `known` a path written in `module` names: the longest prefix of it that is
/// a module (an item's path names the module that defines it). `None` for other crates.
pub fn resolve(module: &str, path: &[String], known: &BTreeSet<&str>) -> Option<String> {
    let mut base: Vec<String> = match module {
        "crate" => Vec::new(),
        m => m.split("::").map(str::to_owned).collect(),
    };
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            base.clear();
            rest = &rest[1..];
        }
        Some("self") => rest = &rest[1..],
        Some("super") => {
            while rest.first().map(String::as_str) == Some("super") {
                base.pop();
                rest = &rest[1..];
            }
        }
        _ => return None,
    }
    for take in (0..=rest.len()).rev() {
        let mut candidate = base.clone();
        candidate.extend(rest[..take].iter().cloned());
        let name = match candidate.is_empty() {
            true => "crate".to_owned(),
            false => candidate.join("::"),
        };
        if known.contains(name.as_str()) {
            return Some(name);
        }
    }
    None
}

/// Whether the code writes the `unsafe` keyword.
pub fn writes_unsafe(code: &str) -> bool {
    tokens(code)
        .iter()
        .any(|t| matches!(t, Token::Ident(w) if w == "unsafe"))
}

/// Whether a source line opens an unsafe block or an unsafe impl (an `unsafe fn`'s contract
/// goes in its `# Safety` doc instead).
pub fn opens_unsafe_block(line: &str) -> bool {
    let code = line.split("//").next().unwrap_or_default();
    code.contains("unsafe {") || code.contains("unsafe impl")
}
