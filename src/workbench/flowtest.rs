//! Scripted dialogue tests: `ussd-gateway test` (format: docs/testing-flows.md).
//!
//! A test file is a YAML list of cases kept next to the flows (`student.test.yaml`). A case
//! dials a code as a phone number, types its inputs, and names the screen it expects after
//! the dial and after each input: exactly (`CON ...` / `END ...`) or as `/regex/`. It may set
//! the records the flow reads (or take the configuration's sample records), answer the flow's
//! `http` screens with canned responses, and fix the clock.
//!
//! Each case runs on the pure engine ([`crate::flow`]) with its effects answered here: records
//! against a throw-away store (the real one, so `transact` behaves as in production), backend
//! calls from the case's fake answers. No socket is opened; a case takes milliseconds.

use crate::config::Config;
use crate::flow::{self, Ctx, Effect, EffectOutcome, Flow, HttpOutcome, HttpRequest, Step};
use crate::hop::Reply;
use crate::msisdn::Msisdn;
use crate::store::Store;
use crate::store::records::RecordWrite;
use crate::text::Limit;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One case of a test file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// What the case shows, for the report.
    pub name: String,
    /// The code dialled, pre-filled inputs allowed (`*123*3#`).
    pub dial: String,
    /// The subscriber's number, in any form the gateway accepts.
    pub phone: String,
    /// What the subscriber types after the dial, in order.
    #[serde(default)]
    pub inputs: Vec<Scalar>,
    /// The screen expected after the dial, then after each input.
    pub expect: Vec<String>,
    /// Load the configuration's sample records (`seed_dir`) first.
    #[serde(default)]
    pub seed: bool,
    /// Records to put in the store (after the sample ones): collection, then id, then document.
    #[serde(default)]
    pub records: BTreeMap<String, BTreeMap<Scalar, serde_yaml_ng::Value>>,
    /// Answers to the flow's `http` screens, tried in order.
    #[serde(default)]
    pub http: Vec<FakeHttp>,
    /// The time the flow sees (RFC 3339); default the configuration's `[clock] fixed`, else now.
    #[serde(default)]
    pub clock: Option<String>,
    /// The network code the front would pass.
    #[serde(default)]
    pub network: Option<String>,
    /// The store refuses every write (as a full disk would): the flow's `failed` branches.
    #[serde(default)]
    pub store_fails: bool,
}

/// A YAML scalar read as text: inputs and ids may be written `1` or `"1"`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_yaml_ng::Value::deserialize(d)? {
            serde_yaml_ng::Value::String(s) => Ok(Scalar(s)),
            serde_yaml_ng::Value::Number(n) => Ok(Scalar(n.to_string())),
            serde_yaml_ng::Value::Bool(b) => Ok(Scalar(b.to_string())),
            other => Err(serde::de::Error::custom(format!(
                "expected a string or a number, found {other:?}"
            ))),
        }
    }
}

/// A canned answer to an `http` screen's request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FakeHttp {
    /// The request's URL, exactly, or `/regex/` (searched in the URL).
    pub url: String,
    /// Only requests with this method (any when unset).
    #[serde(default)]
    pub method: Option<String>,
    /// The status (default 200).
    #[serde(default = "ok_status")]
    pub status: u16,
    /// The body: a string as it is, anything else sent as JSON.
    #[serde(default)]
    pub body: Option<serde_yaml_ng::Value>,
    /// Response headers (names in any case).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// No answer before the deadline instead.
    #[serde(default)]
    pub timeout: bool,
    /// No usable answer (connection refused) instead.
    #[serde(default)]
    pub fail: bool,
}

fn ok_status() -> u16 {
    200
}

/// How one case went.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Passed,
    /// A screen did not match: which one (0 is the dial's), what was typed to reach it, the
    /// expectation and what was shown.
    Mismatch {
        screen: usize,
        after: Option<String>,
        expected: String,
        got: String,
    },
    /// Anything else: the dialogue ended early or went on, a flow that does not load, a
    /// request with no fake answer...
    Error(String),
}

/// One case's result.
#[derive(Debug, Clone)]
pub struct CaseReport {
    pub file: PathBuf,
    pub name: String,
    pub outcome: Outcome,
    /// Every screen shown, `CON `/`END ` first.
    pub screens: Vec<String>,
    /// The flow the dial reached, once it loaded.
    pub flow: Option<Arc<Flow>>,
    /// The screens the dialogue stopped on: shown ones, and invisible ones that asked the
    /// store or a backend for something (routers and `set` pass unseen).
    pub visited: Vec<String>,
}

/// A screen as the aggregator gets it.
pub fn screen_text(reply: &Reply) -> String {
    format!("{}{}", if reply.end { "END " } else { "CON " }, reply.text)
}

/// Whether `got` matches `expected`: equal, or `/regex/` found in it.
fn matches(expected: &str, got: &str) -> Result<bool, String> {
    match expected
        .strip_prefix('/')
        .and_then(|e| e.strip_suffix('/'))
        .filter(|_| expected.len() >= 2)
    {
        Some(re) => regex::Regex::new(&format!("(?s){re}"))
            .map(|r| r.is_match(got))
            .map_err(|e| format!("expect `{expected}`: invalid regex: {e}")),
        None => Ok(expected == got),
    }
}

/// Reads a test file's cases.
///
/// # Errors
/// An unreadable file or invalid YAML, with the file name.
pub fn load_cases(path: &Path) -> Result<Vec<Case>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut value: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    // `<<: *defaults` shares settings between cases; a merged mapping may hold a merge key
    // of its own (a case built on a case built on defaults), hence a few passes.
    for _ in 0..8 {
        value
            .apply_merge()
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    serde_yaml_ng::from_value(value).map_err(|e| format!("{}: {e}", path.display()))
}

/// Runs test files against the configuration's routes and flows. Flows are loaded once.
pub fn run_files(config: &Config, files: &[PathBuf]) -> Vec<CaseReport> {
    let mut flows: HashMap<String, Result<Arc<Flow>, String>> = HashMap::new();
    let mut out = Vec::new();
    for file in files {
        let cases = match load_cases(file) {
            Ok(c) => c,
            Err(e) => {
                out.push(CaseReport {
                    file: file.clone(),
                    name: "(file)".into(),
                    outcome: Outcome::Error(e),
                    screens: Vec::new(),
                    flow: None,
                    visited: Vec::new(),
                });
                continue;
            }
        };
        for case in cases {
            out.push(run_case(config, &mut flows, file, &case));
        }
    }
    out
}

/// The route a dial reaches (longest prefix over whole `*` segments, as the gateway routes),
/// with the inputs typed ahead in the dial.
pub(crate) fn resolve<'c>(
    config: &'c Config,
    dial: &str,
) -> Option<(&'c crate::config::RouteConfig, Vec<String>)> {
    let inner = dial.trim().strip_prefix('*')?;
    let inner = inner.strip_suffix('#').unwrap_or(inner);
    let segs: Vec<&str> = inner.split('*').collect();
    config
        .routes
        .iter()
        .filter_map(|r| {
            let code = r.service_code.strip_prefix('*')?.strip_suffix('#')?;
            let route: Vec<&str> = code.split('*').collect();
            let n = route.len();
            (segs.len() >= n && segs[..n] == route[..]).then_some((n, r))
        })
        .max_by_key(|(n, _)| *n)
        .map(|(n, r)| (r, segs[n..].iter().map(|s| s.to_string()).collect()))
}

fn flow_for(
    config: &Config,
    flows: &mut HashMap<String, Result<Arc<Flow>, String>>,
    name: &str,
) -> Result<Arc<Flow>, String> {
    flows
        .entry(name.to_string())
        .or_insert_with(|| {
            Flow::load(&config.flows_path().join(format!("{name}.yaml")))
                .map(Arc::new)
                .map_err(|errors| {
                    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
                    lines.join("\n")
                })
        })
        .clone()
}

/// A store holding what the case asks for.
fn prepare_store(config: &Config, case: &Case, clock: &str) -> Result<Store, String> {
    let store = Store::temporary().map_err(|e| format!("store: {e}"))?;
    if case.seed {
        let mut at = config.clone();
        at.clock.fixed = Some(clock.to_string());
        let ctx = crate::seed::SeedContext::of(&at);
        crate::seed::load_dir(store.records(), &config.seed_path(), &ctx)
            .map_err(|e| e.to_string())?;
    }
    let mut writes = Vec::new();
    for (collection, docs) in &case.records {
        for (id, doc) in docs {
            writes.push(RecordWrite {
                collection: collection.clone(),
                id: id.0.clone(),
                value: crate::seed::yaml_to_json(doc.clone()),
                merge: false,
            });
        }
    }
    store
        .records()
        .apply(&writes)
        .map_err(|e| format!("records: {e}"))?;
    store.fail_writes(case.store_fails);
    Ok(store)
}

/// Runs one case of `file`.
pub fn run_case(
    config: &Config,
    flows: &mut HashMap<String, Result<Arc<Flow>, String>>,
    file: &Path,
    case: &Case,
) -> CaseReport {
    let mut screens = Vec::new();
    let mut visited = Vec::new();
    let mut reached = None;
    let outcome = (|| {
        let Some((route, prefill)) = resolve(config, &case.dial) else {
            return Outcome::Error(format!("no route for the dial `{}`", case.dial));
        };
        let Some(name) = &route.flow else {
            return Outcome::Error(format!(
                "{} is not a flow route (an upstream app)",
                route.service_code
            ));
        };
        let flow = match flow_for(config, flows, name) {
            Ok(f) => f,
            Err(e) => return Outcome::Error(e),
        };
        reached = Some(flow.clone());
        let phone = match Msisdn::parse(&case.phone, &config.numbers.default_country_code) {
            Ok(p) => p,
            Err(e) => return Outcome::Error(format!("phone `{}`: {e}", case.phone)),
        };
        let clock = case
            .clock
            .clone()
            .or_else(|| config.clock.fixed.clone())
            .unwrap_or_else(|| jiff::Timestamp::now().to_string());
        let Ok(now) = clock.parse::<jiff::Timestamp>() else {
            return Outcome::Error(format!("clock `{clock}` is not an RFC 3339 time"));
        };
        let store = match prepare_store(config, case, &clock) {
            Ok(s) => s,
            Err(e) => return Outcome::Error(e),
        };
        let ctx = Ctx {
            phone: phone.as_str(),
            service_code: &route.service_code,
            network: case.network.as_deref(),
            session_id: "flowtest",
            limit: Limit {
                septets: route.max_septets.unwrap_or(config.ussd.max_septets),
                ucs2: route.max_ucs2_chars.unwrap_or(config.ussd.max_ucs2_chars),
            },
            now,
        };
        let mut effects = Effects {
            store: &store,
            fakes: &case.http,
            txns: 0,
            visited: &mut visited,
        };
        // The dial's own inputs go in with the first hop; only its last screen is shown.
        let step = flow::start(&flow, &ctx);
        let (mut state, mut reply) = match effects.run(&flow, step, &ctx) {
            Ok(r) => r,
            Err(e) => return Outcome::Error(e),
        };
        for input in &prefill {
            if reply.end {
                break;
            }
            let step = flow::input(&flow, state, input, &ctx);
            (state, reply) = match effects.run(&flow, step, &ctx) {
                Ok(r) => r,
                Err(e) => return Outcome::Error(e),
            };
        }
        screens.push(screen_text(&reply));
        for input in &case.inputs {
            if reply.end {
                break;
            }
            let step = flow::input(&flow, state, &input.0, &ctx);
            (state, reply) = match effects.run(&flow, step, &ctx) {
                Ok(r) => r,
                Err(e) => return Outcome::Error(e),
            };
            screens.push(screen_text(&reply));
        }
        compare(case, &screens)
    })();
    CaseReport {
        file: file.to_path_buf(),
        name: case.name.clone(),
        outcome,
        screens,
        flow: reached,
        visited,
    }
}

/// The screens shown against the case's expectations.
fn compare(case: &Case, screens: &[String]) -> Outcome {
    for (i, (expected, got)) in case.expect.iter().zip(screens).enumerate() {
        match matches(expected, got) {
            Ok(true) => {}
            Ok(false) => {
                return Outcome::Mismatch {
                    screen: i,
                    after: i.checked_sub(1).map(|j| case.inputs[j].0.clone()),
                    expected: expected.clone(),
                    got: got.clone(),
                };
            }
            Err(e) => return Outcome::Error(e),
        }
    }
    let typed = screens.len() - 1;
    if typed < case.inputs.len() {
        return Outcome::Error(format!(
            "the dialogue ended after {typed} of {} inputs:\n{}",
            case.inputs.len(),
            screens.last().map(String::as_str).unwrap_or_default()
        ));
    }
    if case.expect.len() != screens.len() {
        return Outcome::Error(format!(
            "{} screens were shown (the dial's and one per input) and {} are expected",
            screens.len(),
            case.expect.len()
        ));
    }
    Outcome::Passed
}

/// Answers a case's effects.
struct Effects<'a> {
    store: &'a Store,
    fakes: &'a [FakeHttp],
    txns: u32,
    visited: &'a mut Vec<String>,
}

impl Effects<'_> {
    fn run(
        &mut self,
        flow: &Flow,
        mut step: Step,
        ctx: &Ctx,
    ) -> Result<(flow::FlowState, Reply), String> {
        loop {
            match step {
                Step::Reply { state, reply } => {
                    self.visited.push(state.screen().to_string());
                    return Ok((state, reply));
                }
                Step::Effect { state, effect } => {
                    self.visited.push(state.screen().to_string());
                    let outcome = self.effect(effect)?;
                    step = flow::resume(flow, state, outcome, ctx);
                }
            }
        }
    }

    fn effect(&mut self, effect: Effect) -> Result<EffectOutcome, String> {
        let records = self.store.records();
        Ok(match effect {
            Effect::Load { collection, id } => match records.get_doc(&collection, &id) {
                Ok(found) => EffectOutcome::Record(found),
                Err(e) => EffectOutcome::Failed(e.to_string()),
            },
            Effect::List { collection } => match records.scan(&collection) {
                Ok(list) => EffectOutcome::Loaded(Some(Value::Array(
                    list.into_iter()
                        .map(|(id, mut doc)| {
                            if let Some(o) = doc.as_object_mut() {
                                o.insert("id".into(), Value::String(id));
                            }
                            doc
                        })
                        .collect(),
                ))),
                Err(e) => EffectOutcome::Failed(e.to_string()),
            },
            Effect::Save { writes } => {
                let writes: Vec<RecordWrite> = writes
                    .into_iter()
                    .map(|w| RecordWrite {
                        collection: w.collection,
                        id: w.id,
                        value: w.value,
                        merge: w.merge,
                    })
                    .collect();
                match records.apply(&writes) {
                    Ok(()) => EffectOutcome::Saved,
                    Err(e) => EffectOutcome::Failed(e.to_string()),
                }
            }
            Effect::Transact { ops } => {
                self.txns += 1;
                let key = format!("flowtest#{}", self.txns);
                match self.store.transact(&key, &ops, None) {
                    Ok(o) => EffectOutcome::Transacted {
                        failed_op: o.failed_op,
                        txn: o.txn,
                    },
                    Err(e) => EffectOutcome::Failed(e.to_string()),
                }
            }
            Effect::Http(req) => EffectOutcome::Http(self.http(&req)?),
        })
    }

    fn http(&self, req: &HttpRequest) -> Result<HttpOutcome, String> {
        for fake in self.fakes {
            if fake
                .method
                .as_deref()
                .is_some_and(|m| !m.eq_ignore_ascii_case(req.method.as_str()))
            {
                continue;
            }
            if !matches(&fake.url, &req.url)? {
                continue;
            }
            if fake.timeout {
                return Ok(HttpOutcome::Timeout);
            }
            if fake.fail {
                return Ok(HttpOutcome::Failed("connection refused (fake)".into()));
            }
            let mut headers: Vec<(String, String)> = fake
                .headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect();
            let body = match &fake.body {
                None => String::new(),
                Some(serde_yaml_ng::Value::String(s)) => s.clone(),
                Some(other) => {
                    if !headers.iter().any(|(k, _)| k == "content-type") {
                        headers.push(("content-type".into(), "application/json".into()));
                    }
                    crate::seed::yaml_to_json(other.clone()).to_string()
                }
            };
            return Ok(HttpOutcome::Response {
                status: fake.status,
                headers,
                body,
                cached: false,
            });
        }
        Err(format!(
            "no fake answer for the request {} {} (add one under `http:`)",
            req.method, req.url
        ))
    }
}
