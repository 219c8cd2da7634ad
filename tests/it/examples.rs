//! Every `console` example in README.md and docs/ run against the shipped config: each
//! `$ command` is run (in a copy of the repository's meridian.toml, zones and GeoIP database,
//! served by the real binary) and what the page shows under it must be what it prints. Lines
//! of the page are found in the output in order and together; a `...` line lets output be
//! left out. Values that change with every run (message ids, cookies) are compared by shape.

use std::path::Path;
use std::process::Command;

use crate::harness::{Server, binary, repo};

/// One `$ command` and the lines shown under it.
struct Example {
    page: String,
    command: String,
    shown: Vec<String>,
}

/// The examples of one page, in the page's order.
fn examples_in(page: &Path) -> Vec<Example> {
    let text = std::fs::read_to_string(page).unwrap();
    let name = page.strip_prefix(repo()).unwrap().display().to_string();
    let mut examples = Vec::new();
    let mut in_console = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") {
            in_console = !in_console && trimmed == "```console";
            continue;
        }
        if !in_console {
            continue;
        }
        if let Some(command) = trimmed.strip_prefix("$ ") {
            examples.push(Example {
                page: name.clone(),
                command: command.to_owned(),
                shown: Vec::new(),
            });
        } else if let Some(example) = examples.last_mut() {
            example.shown.push(trimmed.to_owned());
        }
    }
    examples
}

/// A line as compared: blanks collapsed, per-run values replaced by their kind.
fn normalized(line: &str) -> String {
    let words: Vec<String> = line
        .split_whitespace()
        .map(|w| {
            if w.len() >= 16 && w.bytes().all(|b| b.is_ascii_hexdigit()) {
                "<hex>".to_owned()
            } else {
                w.to_owned()
            }
        })
        .collect();
    let mut line = words.join(" ");
    if let Some(at) = line.find("id: ") {
        let end = line[at + 4..]
            .find(|c: char| !c.is_ascii_digit())
            .map_or(line.len(), |n| at + 4 + n);
        line.replace_range(at + 4..end, "<id>");
    }
    line
}

/// Whether `shown` is in `output`: each run of lines between `...` lines found together, the
/// runs in order.
fn shows(output: &[String], shown: &[String]) -> Result<(), String> {
    let mut from = 0;
    for run in shown.split(|l| l == "...") {
        if run.is_empty() {
            continue;
        }
        let found = (from..=output.len().saturating_sub(run.len()))
            .find(|&at| output[at..at + run.len()] == *run);
        match found {
            Some(at) => from = at + run.len(),
            None => return Err(format!("not found in order: {run:#?}")),
        }
    }
    Ok(())
}

#[test]
fn every_console_example_prints_what_its_page_shows() {
    let mut pages = vec![repo().join("README.md")];
    let mut docs: Vec<_> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    let examples: Vec<Example> = pages.iter().flat_map(|p| examples_in(p)).collect();
    assert!(examples.len() >= 8, "{} examples", examples.len());
    let server = Server::start_shipped();
    // `www` is checked against local backends that are not running, as README.md says.
    server.wait_log("unknown -> down", 4);
    let api = server.api_addr();
    let bin = Path::new(binary()).parent().unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let mut failures = Vec::new();
    for example in &examples {
        let command = example
            .command
            .replace("-p 5300", &format!("-p {}", server.port))
            .replace("127.0.0.1:8053", &api.to_string());
        let out = Command::new("bash")
            .args(["-c", &command])
            .current_dir(server.dir())
            .env("PATH", &path)
            .output()
            .unwrap();
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let output: Vec<String> = printed.lines().map(normalized).collect();
        let shown: Vec<String> = example.shown.iter().map(|l| normalized(l)).collect();
        if let Err(why) = shows(&output, &shown) {
            failures.push(format!(
                "{}: $ {}\n{why}\nprinted:\n{printed}",
                example.page, example.command
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
