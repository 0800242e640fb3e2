//! Tools for flow authors: scripted dialogue tests (`ussd-gateway test`, [`flowtest`]) and
//! the checks `ussd-gateway check` adds for them (flow files that no route names).
//!
//! Everything here runs in-process on the pure flow engine and a throw-away store: no
//! listener, no actor, no network. It sits above the engine and the store and below the
//! fronts, so the admin page can use it too.

pub mod flowtest;
pub mod report;

use crate::config::Config;
use std::path::PathBuf;

/// The suffix of dialogue test files, kept next to the flows (`student.test.yaml`).
pub const TEST_SUFFIX: &str = ".test.yaml";

/// The flow files of the configuration's flows folder that no route names (test files
/// excepted): a flow nobody can dial is usually a typo in a route. Sorted.
pub fn unrouted_flows(config: &Config) -> Vec<PathBuf> {
    let Ok(dir) = std::fs::read_dir(config.flows_path()) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = dir
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            let Some(name) = name else { return false };
            let Some(stem) = name
                .strip_suffix(".yaml")
                .or_else(|| name.strip_suffix(".yml"))
            else {
                return false;
            };
            !name.ends_with(TEST_SUFFIX)
                && !config
                    .routes
                    .iter()
                    .any(|r| r.flow.as_deref() == Some(stem))
        })
        .collect();
    out.sort();
    out
}

/// `ussd-gateway test`: runs `files` (default: every test file of the flows folder), prints
/// the report, and says whether every case passed.
pub fn test_command(config: &Config, files: Vec<PathBuf>) -> bool {
    let files = if files.is_empty() {
        test_files(config)
    } else {
        files
    };
    if files.is_empty() {
        eprintln!(
            "error: no test files (*{TEST_SUFFIX}) in {}",
            config.flows_path().display()
        );
        return false;
    }
    let cases = flowtest::run_files(config, &files);
    let (text, passed) = report::report(&cases);
    print!("{text}");
    passed
}

/// The flow a route runs, named by its service code (`*123#`, or a dial that reaches it) or by
/// the flow's name (`student`), loaded and checked.
///
/// # Errors
/// No such route or flow, an upstream route, or the flow's load errors (one per line).
pub fn flow_of(config: &Config, route: &str) -> Result<crate::flow::Flow, String> {
    let name = if route.starts_with('*') {
        let (rc, _) =
            flowtest::resolve(config, route).ok_or_else(|| format!("no route for `{route}`"))?;
        rc.flow
            .clone()
            .ok_or_else(|| format!("{} is an upstream route, not a flow", rc.service_code))?
    } else {
        route.to_string()
    };
    let path = config.flows_path().join(format!("{name}.yaml"));
    crate::flow::Flow::load(&path).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        lines.join("\n")
    })
}

/// `ussd-gateway graph`: the flow of `route` (see [`flow_of`]) as Mermaid, or as dot.
///
/// # Errors
/// As [`flow_of`].
pub fn graph(config: &Config, route: &str, dot: bool) -> Result<String, String> {
    let flow = flow_of(config, route)?;
    Ok(if dot {
        flow.graph().dot()
    } else {
        flow.graph().mermaid()
    })
}

/// The dialogue test files of the configuration's flows folder, sorted.
pub fn test_files(config: &Config) -> Vec<PathBuf> {
    let Ok(dir) = std::fs::read_dir(config.flows_path()) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = dir
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(TEST_SUFFIX))
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_files_no_route_names_are_listed_and_test_files_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let flows = dir.path().join("flows");
        std::fs::create_dir(&flows).unwrap();
        for f in ["a.yaml", "b.yaml", "a.test.yaml", "notes.txt"] {
            std::fs::write(flows.join(f), "").unwrap();
        }
        let cfg = dir.path().join("gateway.toml");
        std::fs::write(&cfg, "[[routes]]\nservice_code = \"*1#\"\nflow = \"a\"\n").unwrap();
        let config = Config::load(&cfg).unwrap();
        assert_eq!(unrouted_flows(&config), [flows.join("b.yaml")]);
        assert_eq!(test_files(&config), [flows.join("a.test.yaml")]);
    }
}
