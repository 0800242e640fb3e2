//! The report of a run of dialogue tests, as `ussd-gateway test` prints it: a line per case,
//! a line diff under a screen that did not match, the screens shown by a case that failed
//! otherwise (quoted, ready to paste under `expect:`), the screens no case reached.

use super::flowtest::{CaseReport, Outcome};
use crate::flow::Flow;
use std::collections::BTreeMap;
use std::sync::Arc;

/// For each flow the cases reached, its screens that no case stopped on (routers and `set`
/// screens left out: they are never seen), in file order.
pub fn unvisited(cases: &[CaseReport]) -> Vec<(String, Vec<String>)> {
    let mut by_flow: BTreeMap<String, (Arc<Flow>, std::collections::HashSet<&str>)> =
        BTreeMap::new();
    for c in cases {
        if let Some(f) = &c.flow {
            let entry = by_flow
                .entry(f.name().to_string())
                .or_insert_with(|| (f.clone(), Default::default()));
            entry.1.extend(c.visited.iter().map(String::as_str));
        }
    }
    by_flow
        .into_iter()
        .map(|(name, (flow, seen))| {
            let missing = flow
                .graph()
                .nodes
                .iter()
                .filter(|n| !matches!(n.kind.as_str(), "router" | "set"))
                .filter(|n| !seen.contains(n.id.as_str()))
                .map(|n| n.id.clone())
                .collect();
            (name, missing)
        })
        .collect()
}

/// The report of a run, as `ussd-gateway test` prints it: a line per case, a diff under each
/// failure, and a summary. Returns the text and whether every case passed.
pub fn report(cases: &[CaseReport]) -> (String, bool) {
    let mut out = String::new();
    let mut failed = 0;
    for c in cases {
        let file = c.file.display();
        match &c.outcome {
            Outcome::Passed => out.push_str(&format!("ok    {file}: {}\n", c.name)),
            Outcome::Mismatch {
                screen,
                after,
                expected,
                got,
            } => {
                failed += 1;
                let at = match after {
                    None => "the dial's screen".to_string(),
                    Some(i) => format!("screen {screen}, after input `{i}`"),
                };
                out.push_str(&format!("FAIL  {file}: {}: {at}\n", c.name));
                out.push_str(&diff(expected, got));
            }
            Outcome::Error(e) => {
                failed += 1;
                out.push_str(&format!("FAIL  {file}: {}: {e}\n", c.name));
                if !c.screens.is_empty() {
                    out.push_str("      screens shown:\n");
                    for s in &c.screens {
                        // As YAML would quote it, ready to paste under `expect:`.
                        out.push_str(&format!(
                            "      - {}\n",
                            serde_json::to_string(s).unwrap_or_default()
                        ));
                    }
                }
            }
        }
    }
    for (flow, missing) in unvisited(cases) {
        if !missing.is_empty() {
            out.push_str(&format!(
                "note  {flow}: screens no case reached: {}\n",
                missing.join(", ")
            ));
        }
    }
    out.push_str(&format!(
        "{} passed, {failed} failed\n",
        cases.len() - failed
    ));
    (out, failed == 0 && !cases.is_empty())
}

/// Expected against shown, line by line (`-` expected, `+` shown).
fn diff(expected: &str, got: &str) -> String {
    let mut out = String::new();
    let d = similar::TextDiff::from_lines(expected, got);
    for change in d.iter_all_changes() {
        let sign = match change.tag() {
            similar::ChangeTag::Delete => "-",
            similar::ChangeTag::Insert => "+",
            similar::ChangeTag::Equal => " ",
        };
        out.push_str(&format!("      {sign} {}", change.value()));
        if !change.value().ends_with('\n') {
            out.push('\n');
        }
    }
    out
}
