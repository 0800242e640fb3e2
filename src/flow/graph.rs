//! A flow's screens and transitions as a graph, for people: `ussd-gateway graph` prints it as
//! Mermaid or Graphviz dot, and the admin page's flow view draws it.
//!
//! The edges are the ones the loader's checks already walk (every `next`, `found`, `failed`,
//! `else`, ...), each labelled from the field that names it: an option's label, a router's
//! condition, an outcome's name. Screens keep their type, so shown screens (menu, input, end)
//! and invisible ones (router, set, load, ...) can be drawn apart.

use serde::Serialize;
use serde_yaml_ng::{Mapping, Value as Yaml};

/// One screen of the graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// The screen's name.
    pub id: String,
    /// Its `type:` (`menu`, `input`, `router`, ...).
    pub kind: String,
    /// Whether the subscriber sees it (menu, input, end) rather than it acting unseen.
    pub shown: bool,
}

/// One transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Edge {
    pub from: String,
    pub to: String,
    /// What takes it: an option's key and label, a router's condition, an outcome's name.
    pub label: String,
}

/// A flow's graph: its screens in file order and the transitions between them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Graph {
    pub start: String,
    pub home: String,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

/// Whether a screen type is shown to the subscriber.
pub(crate) fn is_shown(kind: &str) -> bool {
    matches!(kind, "menu" | "input" | "end")
}

/// Builds the graph from the file's screens and the edges the checker recorded.
pub(crate) fn build(
    start: &str,
    home: &str,
    screens: &Mapping,
    edges: Vec<(String, String, String)>,
) -> Graph {
    let nodes = screens
        .iter()
        .filter_map(|(k, v)| {
            let id = k.as_str()?.to_string();
            let kind = v
                .get("type")
                .and_then(Yaml::as_str)
                .unwrap_or("?")
                .to_string();
            Some(Node {
                shown: is_shown(&kind),
                id,
                kind,
            })
        })
        .collect();
    let edges = edges
        .into_iter()
        .map(|(from, field, to)| {
            let label = screens
                .get(from.as_str())
                .map_or_else(|| field.clone(), |s| label_of(s, &field));
            Edge { from, to, label }
        })
        .collect();
    Graph {
        start: start.to_string(),
        home: home.to_string(),
        nodes,
        edges,
    }
}

/// The default-language string of a text (a string, or the first entry of a language map).
fn text_of(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Mapping(m) => m.values().next().and_then(Yaml::as_str).map(str::to_string),
        _ => None,
    }
}

/// A readable label for the edge named by `field` on the screen `screen`.
fn label_of(screen: &Yaml, field: &str) -> String {
    let indexed = |prefix: &str| -> Option<usize> {
        field.strip_prefix(prefix)?.split_once(']')?.0.parse().ok()
    };
    if let Some(i) = indexed("options[") {
        let option = screen.get("options").and_then(|o| o.get(i));
        let label = option.and_then(|o| o.get("label")).and_then(text_of);
        let key = option.and_then(|o| o.get("key")).and_then(|k| match k {
            Yaml::String(s) => Some(s.clone()),
            Yaml::Number(n) => Some(n.to_string()),
            _ => None,
        });
        return match (key, label) {
            (Some(k), Some(l)) => format!("{k}. {l}"),
            (None, Some(l)) => l,
            (_, None) => field.to_string(),
        };
    }
    if let Some(i) = indexed("routes[") {
        if let Some(when) = screen
            .get("routes")
            .and_then(|r| r.get(i))
            .and_then(|r| r.get("when"))
            .and_then(Yaml::as_str)
        {
            return when.to_string();
        }
    }
    if field == "items.next" {
        return "an item".to_string();
    }
    field.strip_suffix(".next").unwrap_or(field).to_string()
}

/// A name safe as a Mermaid or dot identifier: screen names are YAML keys, anything goes.
fn ident(name: &str) -> String {
    let mut out = String::from("s_");
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
        } else {
            out.push_str(&format!("_{:x}_", c as u32));
        }
    }
    out
}

/// A label inside Mermaid's `"..."` (its entity codes for the quote; no line breaks).
fn mermaid_text(s: &str) -> String {
    s.replace('"', "#quot;").replace('\n', " ")
}

/// A label inside dot's `"..."`.
fn dot_text(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', " ")
}

impl Graph {
    /// The graph as a Mermaid flowchart: shown screens are rounded boxes, invisible ones
    /// hexagons, the start a stadium; edges carry their labels.
    pub fn mermaid(&self) -> String {
        let mut out = String::from("flowchart TD\n");
        for n in &self.nodes {
            let text = mermaid_text(&format!("{} ({})", n.id, n.kind));
            let id = ident(&n.id);
            let shape = if n.id == self.start {
                format!("{id}([\"{text}\"])")
            } else if n.shown {
                format!("{id}(\"{text}\")")
            } else {
                format!("{id}{{{{\"{text}\"}}}}")
            };
            out.push_str("    ");
            out.push_str(&shape);
            out.push('\n');
        }
        for e in &self.edges {
            out.push_str(&format!(
                "    {} -->|\"{}\"| {}\n",
                ident(&e.from),
                mermaid_text(&e.label),
                ident(&e.to)
            ));
        }
        out.push_str("    classDef invisible stroke-dasharray: 4 3\n");
        let invisible: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| !n.shown)
            .map(|n| ident(&n.id))
            .collect();
        if !invisible.is_empty() {
            out.push_str(&format!("    class {} invisible\n", invisible.join(",")));
        }
        out
    }

    /// The graph in Graphviz dot: shown screens are boxes, invisible ones dashed ellipses, the
    /// start drawn bold.
    pub fn dot(&self) -> String {
        let mut out = String::from("digraph flow {\n    rankdir=TB;\n");
        for n in &self.nodes {
            let mut attrs = vec![format!(
                "label=\"{}\\n({})\"",
                dot_text(&n.id),
                dot_text(&n.kind)
            )];
            attrs.push(if n.shown {
                "shape=box, style=rounded".to_string()
            } else {
                "shape=ellipse, style=dashed".to_string()
            });
            if n.id == self.start {
                attrs.push("penwidth=2".to_string());
            }
            out.push_str(&format!(
                "    \"{}\" [{}];\n",
                dot_text(&n.id),
                attrs.join(", ")
            ));
        }
        for e in &self.edges {
            out.push_str(&format!(
                "    \"{}\" -> \"{}\" [label=\"{}\"];\n",
                dot_text(&e.from),
                dot_text(&e.to),
                dot_text(&e.label)
            ));
        }
        out.push_str("}\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::flow::Flow;

    const SRC: &str = r#"
start: home
screens:
  home:
    type: menu
    text: Hi
    options:
      - { label: "Say \"hi\"", next: check }
      - { key: "0", label: Out, next: bye }
  check:
    type: router
    routes:
      - { when: "phone == '1'", next: bye }
    default: home
  bye: { type: end, text: Bye }
"#;

    #[test]
    fn edges_carry_the_option_labels_and_router_conditions() {
        let flow = Flow::from_yaml("t", "t.yaml", SRC).unwrap();
        let g = flow.graph();
        let labels: Vec<(&str, &str, &str)> = g
            .edges
            .iter()
            .map(|e| (e.from.as_str(), e.label.as_str(), e.to.as_str()))
            .collect();
        assert_eq!(
            labels,
            [
                ("home", "Say \"hi\"", "check"),
                ("home", "0. Out", "bye"),
                ("check", "phone == '1'", "bye"),
                ("check", "default", "home"),
            ]
        );
        let kinds: Vec<(&str, bool)> = g.nodes.iter().map(|n| (n.id.as_str(), n.shown)).collect();
        assert_eq!(kinds, [("home", true), ("check", false), ("bye", true)]);
    }

    #[test]
    fn mermaid_and_dot_name_every_screen_and_edge() {
        let flow = Flow::from_yaml("t", "t.yaml", SRC).unwrap();
        let m = flow.graph().mermaid();
        assert!(m.starts_with("flowchart TD\n"), "{m}");
        assert!(m.contains("s_home([\"home (menu)\"])"), "{m}");
        assert!(m.contains("s_check{{\"check (router)\"}}"), "{m}");
        assert!(
            m.contains("s_home -->|\"Say #quot;hi#quot;\"| s_check"),
            "{m}"
        );
        assert!(m.contains("class s_check invisible"), "{m}");
        let d = flow.graph().dot();
        assert!(d.starts_with("digraph flow {"), "{d}");
        assert!(
            d.contains("\"home\" -> \"check\" [label=\"Say \\\"hi\\\"\"];"),
            "{d}"
        );
        assert!(
            d.contains("\"check\" [label=\"check\\n(router)\", shape=ellipse, style=dashed];"),
            "{d}"
        );
    }
}
