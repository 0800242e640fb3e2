//! Flow engine tests: the student app screen by screen, every screen type, navigation,
//! pagination, runtime failures, golden load diagnostics and a pagination property test. No
//! sockets: effects run against an in-memory record map.

use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use ussd_gateway::flow::*;
use ussd_gateway::hop::Reply;
use ussd_gateway::text::{Limit, fits};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const INVALID: &str = "Invalid option. Please try again.";

fn ctx(phone: &str, limit: Limit) -> Ctx<'_> {
    Ctx {
        phone,
        service_code: "*123#",
        network: Some("63902"),
        session_id: "ATUid_1",
        limit,
        now: "2024-03-15T09:30:00Z".parse().unwrap(),
    }
}

fn con(s: &str) -> Reply {
    Reply::con(s)
}
fn end(s: &str) -> Reply {
    Reply::end(s)
}

/// An in-memory record store answering the engine's effects.
#[derive(Default)]
struct Store {
    records: HashMap<String, Value>,
    saves: Vec<Vec<Write>>,
    fail_saves: bool,
}

impl Store {
    /// The sample records of config/data, as the gateway's loader reads them.
    fn sample() -> Store {
        let mut store = Store::default();
        for entry in std::fs::read_dir(Path::new(ROOT).join("config/data")).unwrap() {
            let path = entry.unwrap().path();
            let collection = path.file_stem().unwrap().to_string_lossy().into_owned();
            // Seed files are templates (the dental slots are relative to today).
            let ctx = ussd_gateway::seed::SeedContext {
                today: "2026-01-05".into(),
                offset: "+10:00".into(),
            };
            let text = ctx
                .render(&std::fs::read_to_string(&path).unwrap())
                .unwrap();
            let docs: HashMap<String, Value> = serde_yaml_ng::from_str(&text).unwrap();
            for (id, doc) in docs {
                store.records.insert(format!("{collection}/{id}"), doc);
            }
        }
        store
    }

    fn with(mut self, key: &str, doc: Value) -> Store {
        self.records.insert(key.to_string(), doc);
        self
    }

    /// Runs effects until the engine replies.
    fn run(&mut self, flow: &Flow, mut step: Step, ctx: &Ctx) -> (FlowState, Reply) {
        loop {
            match step {
                Step::Reply { state, reply } => return (state, reply),
                Step::Effect { state, effect } => {
                    let outcome = match effect {
                        Effect::Load { collection, id } => EffectOutcome::Loaded(
                            self.records.get(&format!("{collection}/{id}")).cloned(),
                        ),
                        Effect::Save { .. } if self.fail_saves => {
                            EffectOutcome::Failed("disk full".into())
                        }
                        Effect::Save { writes } => {
                            for w in &writes {
                                self.records
                                    .insert(format!("{}/{}", w.collection, w.id), w.value.clone());
                            }
                            self.saves.push(writes);
                            EffectOutcome::Saved
                        }
                        Effect::List { collection } => {
                            let prefix = format!("{collection}/");
                            EffectOutcome::Loaded(Some(Value::Array(
                                self.records
                                    .iter()
                                    .filter(|(k, _)| k.starts_with(&prefix))
                                    .map(|(_, v)| v.clone())
                                    .collect(),
                            )))
                        }
                        // Transactions have their own tests (tests/flow_transact.rs).
                        Effect::Transact { .. } => EffectOutcome::Transacted {
                            failed_op: None,
                            txn: 1,
                        },
                        // Backend calls have their own tests (tests/flow_http_*.rs).
                        Effect::Http(_) => EffectOutcome::Http(HttpOutcome::Failed(
                            "no backend in these tests".into(),
                        )),
                    };
                    step = resume(flow, state, outcome, ctx);
                }
            }
        }
    }
}

/// One dialogue; the state goes through JSON between hops, as the session actor persists it.
struct Session<'f> {
    flow: &'f Flow,
    store: Store,
    phone: &'static str,
    limit: Limit,
    state: Option<FlowState>,
}

impl<'f> Session<'f> {
    fn new(flow: &'f Flow, store: Store, phone: &'static str) -> Self {
        Session {
            flow,
            store,
            phone,
            limit: Limit::default(),
            state: None,
        }
    }

    fn dial(&mut self) -> Reply {
        let ctx = ctx(self.phone, self.limit);
        let step = start(self.flow, &ctx);
        self.finish(step)
    }

    fn send(&mut self, text: &str) -> Reply {
        let ctx = ctx(self.phone, self.limit);
        let state = self.state.take().expect("the dialogue has ended");
        let step = input(self.flow, state, text, &ctx);
        self.finish(step)
    }

    fn finish(&mut self, step: Step) -> Reply {
        let ctx = ctx(self.phone, self.limit);
        let (state, reply) = self.store.run(self.flow, step, &ctx);
        assert!(
            fits(&reply.text, self.limit),
            "too long for the screen: {:?}",
            reply.text
        );
        let json = serde_json::to_string(&state).unwrap();
        self.state = (!reply.end).then(|| serde_json::from_str(&json).unwrap());
        reply
    }

    /// Dials, then sends each input; returns the last reply.
    fn path(&mut self, inputs: &[&str]) -> Reply {
        let mut reply = self.dial();
        for i in inputs {
            reply = self.send(i);
        }
        reply
    }
}

fn student() -> Flow {
    Flow::load(&Path::new(ROOT).join("config/flows/student.yaml")).unwrap()
}

fn flow(src: &str) -> Flow {
    Flow::from_yaml("test", "test.yaml", src).unwrap_or_else(|d| panic!("{d:#?}"))
}

fn words(s: &str) -> Vec<&str> {
    s.split_whitespace().collect()
}

/// Pages through a long END answer with `98` and checks it holds exactly `whole`.
fn page_through(s: &mut Session, first: Reply, whole: &str) -> Vec<Reply> {
    let mut pages = vec![first];
    while !pages.last().unwrap().end {
        let page = &pages.last().unwrap().text;
        assert!(page.ends_with("\n98. More"), "{page:?}");
        pages.push(s.send("98"));
    }
    assert!(pages.len() > 1, "the answer should not fit one screen");
    let mut shown = Vec::new();
    for (k, p) in pages.iter().enumerate() {
        let lines: Vec<&str> = p.text.lines().collect();
        assert_eq!(
            k > 0 && k + 1 < pages.len(),
            lines.contains(&"0. Back"),
            "page {k}: {:?}",
            p.text
        );
        assert_eq!(
            k + 1 < pages.len(),
            lines.contains(&"98. More"),
            "page {k}: {:?}",
            p.text
        );
        shown.extend(
            lines
                .into_iter()
                .filter(|l| *l != "0. Back" && *l != "98. More")
                .flat_map(words),
        );
    }
    assert_eq!(shown, words(whole));
    pages
}

const HOME_1: &str = "Welcome to UniConnect, Amina Wanjiru\n1. View Results\n2. Check Balance\n3. View Timetable\n4. Missed Exams\n5. Notifications\n6. Exit";
const NOTIFICATIONS: &str = "Notifications:\n- Exam Timetable: End of term exams start on 8 April.\n- Fee Deadline: Clear fee balances by 31 March.\n";
const PREVIOUS_1: &str = "Previous Term Results:\nIntroduction to Programming (CS101): A, 2023 Term 1\nCalculus I (MA101): B, 2023 Term 1\nCommunication Skills (CM101): A-, 2023 Term 2\nComputer Organisation (CS102): B+, 2023 Term 2\nLinear Algebra (MA102): C+, 2023 Term 3\n";
const TIMETABLE_1: &str = "Your Timetable:\nMonday: Data Structures\n8:00:00 - 10:00:00 at LH 1\nTuesday: Discrete Mathematics\n10:00:00 - 12:00:00 at Room B12\nWednesday: Operating Systems\n14:00:00 - 16:00:00 at Lab 3\nThursday: Technical Writing\n9:00:00 - 11:00:00 at LH 4\nFriday: Data Structures\n11:00:00 - 13:00:00 at Lab 2\n";

#[test]
fn student_registered_screens() {
    let f = student();
    let mut s = Session::new(&f, Store::sample(), "254700000001");
    assert_eq!(s.dial(), con(HOME_1));
    assert_eq!(
        s.send("1"),
        con("View Results\n1. Current Term\n2. Previous Terms")
    );
    assert_eq!(
        s.send("1"),
        end(
            "Current Term Results:\nData Structures (CS201): A, 2024 Term 1\nDiscrete Mathematics (MA202): B+, 2024 Term 1\nOperating Systems (CS204): B, 2024 Term 1\n"
        )
    );
    assert_eq!(
        s.path(&["2"]),
        end(
            "Fee Balance\nTerm: 2024 Term 1\nAmount Due: KES 45000.00\nAmount Paid: KES 30000.00\nBalance: KES 15000.00\n"
        )
    );
    assert_eq!(
        s.path(&["4"]),
        end(
            "Missed Exams:\nCS204 - Operating Systems\nReschedule: 2024-04-15\n\nMA202 - Discrete Mathematics\nReschedule: 2024-04-18\n\n"
        )
    );
    assert_eq!(s.path(&["5"]), end(NOTIFICATIONS));
    assert_eq!(
        s.path(&["6"]),
        end("Thank you for using UniConnect. Goodbye!")
    );
    let first = s.path(&["1", "2"]);
    page_through(&mut s, first, PREVIOUS_1);
    let first = s.path(&["3"]);
    page_through(&mut s, first, TIMETABLE_1);
}

#[test]
fn student_without_records_and_unregistered() {
    let f = student();
    let mut s = Session::new(&f, Store::sample(), "254700000002");
    assert_eq!(
        s.dial(),
        con(&HOME_1.replace("Amina Wanjiru", "Brian Otieno"))
    );
    assert_eq!(
        s.path(&["1", "1"]),
        end("No results found for current term.")
    );
    assert_eq!(s.path(&["1", "2"]), end("No previous term results found."));
    assert_eq!(s.path(&["2"]), end("Balance info not found."));
    assert_eq!(s.path(&["3"]), end("No timetable found."));
    assert_eq!(s.path(&["4"]), end("No missed exams found."));
    assert_eq!(
        s.path(&["5"]),
        end(NOTIFICATIONS),
        "notifications are global"
    );
    s.store.records.remove("notifications/all");
    assert_eq!(s.path(&["5"]), end("You have no new notifications."));

    let mut s = Session::new(&f, Store::sample(), "254700000099");
    assert_eq!(
        s.dial(),
        end("Your phone number is not registered. Please contact admin.")
    );
}

#[test]
fn student_invalid_options_end() {
    let f = student();
    let mut s = Session::new(&f, Store::sample(), "254700000001");
    for path in [
        &["7"][..],
        &["0"],
        &["00"],
        &["98"],
        &[""],
        &["1", "3"],
        &["1", "0"],
        &["1", "00"],
    ] {
        assert_eq!(s.path(path), end(INVALID), "{path:?}");
    }
}

#[test]
fn long_answer_pages_back_and_forth() {
    let f = student();
    let mut s = Session::new(&f, Store::sample(), "254700000001");
    s.limit = Limit {
        septets: 100,
        ucs2: 80,
    };
    let p1 = s.path(&["3"]);
    assert!(!p1.end && p1.text.starts_with("Your Timetable:\n") && p1.text.ends_with("\n98. More"));
    let p2 = s.send("98");
    assert!(
        !p2.end && p2.text.contains("\n0. Back\n") && p2.text.ends_with("\n98. More"),
        "{p2:?}"
    );
    assert_eq!(s.send("0"), p1, "back shows the previous page");
    // On page 1 there is no page before: an unknown choice, which ends the dialogue here.
    assert_eq!(s.send("0"), end(INVALID));
    let first = s.path(&["3"]);
    let pages = page_through(&mut s, first, TIMETABLE_1);
    assert!(pages.len() >= 3);
}

/// A paginated menu of 30 options, a chain of submenus and an end screen.
fn nav_flow() -> Flow {
    let mut src = String::from(
        "start: main\nscreens:\n  main:\n    type: menu\n    text: Choose a county\n    options:\n      - { label: Submenu, next: sub }\n",
    );
    for n in 2..=30 {
        src.push_str(&format!(
            "      - {{ label: County number {n}, next: picked, set: {{ county: \"{n}\" }} }}\n"
        ));
    }
    src.push_str(
        "  sub: { type: menu, text: Sub, options: [ { label: Deeper, next: sub2 } ] }
  sub2: { type: menu, text: Sub two, options: [ { label: Done, next: picked } ] }
  picked: { type: end, text: \"You picked {{ county }}\" }
",
    );
    flow(&src)
}

fn option_lines(page: &str) -> Vec<(String, String)> {
    page.lines()
        .filter(|l| *l != "0. Back" && *l != "98. More")
        .filter_map(|l| l.split_once(". "))
        .filter(|(n, _)| n.chars().all(|c| c.is_ascii_digit()))
        .map(|(n, l)| (n.to_string(), l.to_string()))
        .collect()
}

#[test]
fn navigation_keys_on_a_paginated_menu() {
    let f = nav_flow();
    let mut s = Session::new(&f, Store::default(), "254700000001");
    let p1 = s.dial();
    assert!(
        p1.text
            .starts_with("Choose a county\n1. Submenu\n2. County number 2")
            && p1.text.ends_with("\n98. More")
    );
    let last_on_p1: u32 = option_lines(&p1.text).last().unwrap().0.parse().unwrap();
    let p2 = s.send("98");
    let on_p2 = option_lines(&p2.text);
    assert_eq!(
        on_p2[0].0,
        (last_on_p1 + 1).to_string(),
        "numbers run on across pages"
    );
    assert!(p2.text.lines().any(|l| l == "0. Back"));
    assert_eq!(s.send("0"), p1);
    s.send("98");
    let (n, label) = &on_p2[1];
    assert_eq!(
        s.send(n),
        end(&format!(
            "You picked {}",
            label.trim_start_matches("County number ")
        ))
    );

    // History: back walks up the submenus, home jumps to the top, back on the first screen is
    // an invalid choice.
    assert_eq!(s.path(&["1"]), con("Sub\n1. Deeper"));
    assert_eq!(s.send("1"), con("Sub two\n1. Done"));
    assert_eq!(s.send("0"), con("Sub\n1. Deeper"));
    assert_eq!(s.send("0"), p1);
    let invalid = s.send("0");
    assert!(
        invalid
            .text
            .starts_with("Invalid choice. Please try again:\n")
            && !invalid.end
    );
    assert_eq!(s.path(&["1", "1", "00"]), p1);
    assert_eq!(
        s.path(&["1", "98"]),
        con("Invalid choice. Please try again:\nSub\n1. Deeper")
    );
}

#[test]
fn choice_numbers_skip_navigation_keys() {
    let mut src =
        String::from("start: m\nscreens:\n  m:\n    type: menu\n    text: Pick\n    options:\n");
    for n in 1..=100 {
        src.push_str(&format!(
            "      - {{ label: L{n}, next: e, set: {{ picked: \"{n}\" }} }}\n"
        ));
    }
    src.push_str("  e: { type: end, text: \"{{ picked }}\" }\n");
    let f = flow(&src);
    let mut s = Session::new(&f, Store::default(), "254700000001");
    let mut page = s.dial();
    let mut shown = Vec::new();
    loop {
        shown.extend(option_lines(&page.text));
        if !page.text.ends_with("98. More") {
            break;
        }
        page = s.send("98");
    }
    assert_eq!(shown.len(), 100);
    assert!(!shown.iter().any(|(n, _)| n == "98" || n == "0"));
    assert!(shown.contains(&("99".to_string(), "L98".to_string())));
    assert_eq!(s.send("99"), end("98"));
}

const INPUT_FLOW: &str = r#"
start: amount
screens:
  amount:
    type: input
    text: "Enter amount (5-20000):"
    into: amount
    validators:
      - { regex: "[0-9]+", error: Digits only. }
      - { range: { min: 5, max: 20000 }, error: Amount must be 5 to 20000. }
    next: pin
  pin:
    type: input
    text: Enter PIN
    into: pin
    options: [ { label: Cancel, next: cancelled } ]
    validators:
      - { length: { min: 4, max: 4 }, error: PIN must be 4 digits. }
      - { expr: "input != '0000'", error: PIN 0000 is not allowed. }
    next: confirm
  confirm: { type: end, text: "Send {{ amount|money('KES') }}? PIN has {{ pin|length }} digits." }
  cancelled: { type: end, text: Cancelled. }
"#;

#[test]
fn input_validators() {
    let f = flow(INPUT_FLOW);
    let mut s = Session::new(&f, Store::default(), "254700000001");
    assert_eq!(s.dial(), con("Enter amount (5-20000):"));
    assert_eq!(
        s.send("0"),
        con("Amount must be 5 to 20000.\nEnter amount (5-20000):"),
        "0 reaches the validators"
    );
    assert_eq!(
        s.send("00"),
        con("Amount must be 5 to 20000.\nEnter amount (5-20000):")
    );
    assert_eq!(s.send("12a"), con("Digits only.\nEnter amount (5-20000):"));
    assert_eq!(s.send("1500"), con("Enter PIN\n1. Cancel"));
    assert_eq!(
        s.send("123"),
        con("PIN must be 4 digits.\nEnter PIN\n1. Cancel")
    );
    assert_eq!(
        s.send("0000"),
        con("PIN 0000 is not allowed.\nEnter PIN\n1. Cancel")
    );
    assert_eq!(s.state.as_ref().unwrap().vars()["amount"], json!("1500"));
    assert_eq!(s.send("1234"), end("Send KES 1,500.00? PIN has 4 digits."));
    assert_eq!(
        s.path(&["20", "1"]),
        end("Cancelled."),
        "options come before validation"
    );
}

const WALLET_FLOW: &str = r#"
start: load_account
screens:
  load_account: { type: load, record: "accounts/{{ phone }}", into: account, found: menu, missing: register }
  register:
    type: set
    values: { account: "{{ {'balance': 0} }}" }
    next: menu
  menu:
    type: menu
    text: "Balance {{ account.balance|cents('KES') }}"
    options:
      - { label: Deposit 100, next: deposit, set: { amount: "{{ 10000 }}" } }
  deposit:
    type: set
    values:
      new_balance: "{{ account.balance + amount }}"
      note: "Deposit by {{ phone }}"
    next: check
  check:
    type: router
    routes: [ { when: "new_balance > 1000000", next: too_much } ]
    default: save
  too_much: { type: end, text: Limit exceeded. }
  save:
    type: save
    writes:
      - { record: "accounts/{{ phone }}", fields: { balance: "{{ new_balance }}", note: "{{ note }}" } }
      - { record: "ledger/{{ session_id }}", fields: { amount: "{{ amount }}", at: "{{ now }}", kind: deposit }, merge: false }
    next: done
    failed: sorry
  done: { type: end, text: "New balance {{ new_balance|cents }}" }
  sorry: { type: end, text: Deposit failed. Try later. }
"#;

#[test]
fn router_set_and_save_effects() {
    let f = flow(WALLET_FLOW);
    let c = ctx("254700000001", Limit::default());
    let Step::Effect { state, effect } = start(&f, &c) else {
        panic!("expected a load")
    };
    assert_eq!(
        effect,
        Effect::Load {
            collection: "accounts".into(),
            id: "254700000001".into()
        }
    );
    let step = resume(
        &f,
        state,
        EffectOutcome::Loaded(Some(json!({"balance": 5000}))),
        &c,
    );
    let Step::Reply { state, reply } = step else {
        panic!("expected the menu")
    };
    assert_eq!(reply, con("Balance KES 50.00\n1. Deposit 100"));
    let Step::Effect { state, effect } = input(&f, state, "1", &c) else {
        panic!("expected a save")
    };
    let expected = vec![
        Write {
            collection: "accounts".into(),
            id: "254700000001".into(),
            value: json!({"balance": 15000, "note": "Deposit by 254700000001"}),
            merge: true,
        },
        Write {
            collection: "ledger".into(),
            id: "ATUid_1".into(),
            value: json!({"amount": 10000, "at": "2024-03-15T09:30:00Z", "kind": "deposit"}),
            merge: false,
        },
    ];
    assert_eq!(effect, Effect::Save { writes: expected });
    let failed = resume(
        &f,
        state.clone(),
        EffectOutcome::Failed("disk full".into()),
        &c,
    );
    assert!(
        matches!(failed, Step::Reply { reply, .. } if reply == end("Deposit failed. Try later."))
    );
    let saved = resume(&f, state, EffectOutcome::Saved, &c);
    assert!(matches!(saved, Step::Reply { reply, .. } if reply == end("New balance 150.00")));

    // A missing record goes through `set`; the router's first true route wins.
    let mut s = Session::new(&f, Store::default(), "254700000001");
    assert_eq!(s.dial(), con("Balance KES 0.00\n1. Deposit 100"));
    assert_eq!(s.send("1"), end("New balance 100.00"));
    assert_eq!(
        s.store.records["accounts/254700000001"]["balance"],
        json!(10000)
    );
    let rich = Store::default().with("accounts/254700000001", json!({"balance": 999_999}));
    assert_eq!(
        Session::new(&f, rich, "254700000001").path(&["1"]),
        end("Limit exceeded.")
    );

    // Without `failed`, a failed save ends with the apology.
    let src = WALLET_FLOW.replace("    failed: sorry\n", "").replace(
        "  sorry: { type: end, text: Deposit failed. Try later. }\n",
        "",
    );
    let f = flow(&src);
    let mut s = Session::new(&f, Store::default(), "254700000001");
    s.store.fail_saves = true;
    assert_eq!(
        s.path(&["1"]),
        end("Sorry, something went wrong. Please try again later.")
    );
}

#[test]
fn language_maps() {
    let f = flow(
        r#"
start: choose
language_var: lang
screens:
  choose:
    type: menu
    text: Language / Lugha
    options:
      - { label: English, next: greet, set: { lang: en } }
      - { label: Kiswahili, next: greet, set: { lang: sw } }
      - { label: Francais, next: greet, set: { lang: fr } }
  greet:
    type: menu
    text: { en: "Hello {{ phone }}", sw: "Habari {{ phone }}" }
    options: [ { label: { en: Continue, sw: Endelea }, next: bye } ]
  bye: { type: end, text: { sw: Kwaheri, fr: Au revoir } }
"#,
    );
    let mut s = Session::new(&f, Store::default(), "254700000001");
    assert_eq!(s.path(&["2"]), con("Habari 254700000001\n1. Endelea"));
    assert_eq!(s.state.as_ref().unwrap().language(), "sw");
    assert_eq!(s.send("1"), end("Kwaheri"));
    assert_eq!(
        s.path(&["3"]),
        con("Hello 254700000001\n1. Continue"),
        "fr falls back to the default"
    );
    assert_eq!(s.send("1"), end("Au revoir"));
    assert_eq!(
        s.path(&["1", "1"]),
        end("Kwaheri"),
        "neither en nor default: the first entry"
    );
}

const ITEMS_FLOW: &str = r#"
start: load
screens:
  load: { type: load, record: catalog/bundles, into: catalog, found: pick, missing: pick }
  pick:
    type: menu
    text: Choose a bundle
    items:
      from: "catalog.bundles if catalog else []"
      label: "{{ item.name }} @ {{ item.price|money }}"
      value: item.code
      into: bundle
      next: confirm
    options: [ { label: Cancel, next: cancelled } ]
  confirm: { type: end, text: "You chose {{ bundle }} on {{ now|date('%d %b %Y') }}" }
  cancelled: { type: end, text: Cancelled. }
"#;

#[test]
fn dynamic_items() {
    let f = flow(ITEMS_FLOW);
    let bundles = json!({"bundles": [
        {"name": "1GB", "price": 100, "code": "B1"},
        {"name": "5GB", "price": "450.5", "code": "B5"}
    ]});
    let mut s = Session::new(
        &f,
        Store::default().with("catalog/bundles", bundles),
        "254700000001",
    );
    assert_eq!(
        s.dial(),
        con("Choose a bundle\n1. 1GB @ 100.00\n2. 5GB @ 450.50\n3. Cancel")
    );
    assert_eq!(s.send("2"), end("You chose B5 on 15 Mar 2024"));
    assert_eq!(s.path(&["3"]), end("Cancelled."));
    let mut s = Session::new(&f, Store::default(), "254700000001");
    assert_eq!(s.dial(), con("Choose a bundle\n1. Cancel"));
}

#[test]
fn runtime_errors_end_with_the_apology() {
    let f = flow(
        "start: oops\napology: { en: \"Sorry, try later.\" }\nscreens:\n  oops: { type: end, text: \"{{ missing.field.deeper }}\" }\n",
    );
    assert_eq!(
        Session::new(&f, Store::default(), "254700000001").dial(),
        end("Sorry, try later.")
    );
    let f = flow("start: oops\nscreens:\n  oops: { type: end, text: \"{{ 'abc'|money }}\" }\n");
    let apology = end("Sorry, something went wrong. Please try again later.");
    assert_eq!(
        Session::new(&f, Store::default(), "254700000001").dial(),
        apology
    );
}

#[test]
fn loop_guard() {
    let f = flow(
        r#"
start: a
screens:
  a: { type: set, values: { n: "{{ (n or 0) + 1 }}" }, next: b }
  b: { type: router, routes: [ { when: "n > 1000", next: out } ], default: a }
  out: { type: end, text: done }
"#,
    );
    let apology = end("Sorry, something went wrong. Please try again later.");
    assert_eq!(
        Session::new(&f, Store::default(), "254700000001").dial(),
        apology
    );
}

#[test]
fn state_and_version() {
    let f = student();
    let again = student();
    assert_eq!(f.version(), again.version());
    assert_eq!(f.version().len(), 16);
    assert_eq!(f.name(), "student");
    assert!(f.has_screen("home") && !f.has_screen("homee"));
    assert!(f.warnings().is_empty());
    let mut s = Session::new(&f, Store::sample(), "254700000001");
    s.dial();
    let state = s.state.clone().unwrap();
    assert_eq!((state.version(), state.screen()), (f.version(), "home"));
    assert_eq!(state.vars()["student"]["student_id"], json!("STU001"));
    // After a restart on an edited file, a dialogue continues if its screen still exists...
    let src = std::fs::read_to_string(Path::new(ROOT).join("config/flows/student.yaml")).unwrap();
    let edited = Flow::from_yaml(
        "student",
        "student.yaml",
        &src.replace("View Results", "Results"),
    )
    .unwrap();
    let c = ctx("254700000001", Limit::default());
    let (moved, reply) = reply_of(input(&edited, state.clone(), "1", &c));
    assert_eq!(reply, con("Results\n1. Current Term\n2. Previous Terms"));
    assert_eq!(moved.version(), edited.version());
    // ...and ends with the apology when it does not.
    let renamed = flow("start: other\nscreens:\n  other: { type: end, text: Bye }\n");
    let (_, reply) = reply_of(input(&renamed, state, "1", &c));
    assert_eq!(
        reply,
        end("Sorry, something went wrong. Please try again later.")
    );
}

fn diagnostics(file: &str) -> Vec<String> {
    let path = Path::new(ROOT).join("tests/flows").join(file);
    let src = std::fs::read_to_string(&path).unwrap();
    match Flow::from_yaml(file.trim_end_matches(".yaml"), file, &src) {
        Ok(_) => panic!("{file} should not load"),
        Err(d) => d.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn golden_validation_errors() {
    assert_eq!(diagnostics("invalid_yaml.yaml"), GOLDEN_YAML);
    assert_eq!(diagnostics("invalid_header.yaml"), GOLDEN_HEADER);
    assert_eq!(diagnostics("invalid_screens.yaml"), GOLDEN_SCREENS);
    assert_eq!(diagnostics("invalid_widths.yaml"), GOLDEN_WIDTHS);
}

const GOLDEN_YAML: &[&str] = &[
    "error: invalid_yaml.yaml: invalid YAML: did not find expected ',' or ']' at line 6 column 8, while parsing a flow sequence at line 5 column 11",
];
const GOLDEN_HEADER: &[&str] = &[
    "error: invalid_header.yaml: colour: unknown field (expected one of `start`, `home`, `default_language`, `language_var`, `vars`, `navigation`, `invalid_choice`, `apology`, `secrets`, `resume`, `timezone`)",
    "error: invalid_header.yaml: navigation.forward: unknown field (expected one of `next`, `back`, `home`, `more_label`, `back_label`, `history`)",
    "error: invalid_header.yaml: start: missing required field",
];
const GOLDEN_SCREENS: &[&str] = &[
    "error: invalid_screens.yaml: screens.home.options[2].colour: unknown field (expected one of `key`, `label`, `next`, `set`)",
    "error: invalid_screens.yaml: screens.home.options[1].next: unknown target screen `homee`",
    "error: invalid_screens.yaml: screens.pay.text: invalid template syntax: syntax error: unexpected end of input, expected end of variable block (line 1)",
    "error: invalid_screens.yaml: screens.pay.into: `9lives` is not a valid variable name",
    "error: invalid_screens.yaml: screens.pay.validators[0].regex: invalid regex: unclosed character class",
    "error: invalid_screens.yaml: screens.pay.validators[1].range: `min` is greater than `max`",
    "error: invalid_screens.yaml: screens.pay.validators[2]: needs exactly one of `regex`, `range`, `length`, `expr`",
    "error: invalid_screens.yaml: screens.done.text: missing required field",
    "error: invalid_screens.yaml: screens.dance.type: unknown screen type `tango` (expected one of menu, input, router, set, end, load, save, transact, list, http)",
    "error: invalid_screens.yaml: screens.orphan: a menu needs `options`, `items` or both",
    "error: invalid_screens.yaml: screens.route.routes[0].when: invalid template syntax: syntax error: unexpected end of input, expected expression (line 1)",
    "error: invalid_screens.yaml: home: `nowhere` is not a screen",
];
const GOLDEN_WIDTHS: &[&str] = &[
    "error: invalid_widths.yaml: screens.home.text: the word `Supercalifragilisticexpialidocious_Supercalifragilisticexpialidocious_Supercalifragilisticexpialidocious_Supercalifragilisticexpialidocious_Supercalifragilisticexpialidocious` cannot fit on any page",
    "error: invalid_widths.yaml: screens.home.options[0].label: the option line `1. A label long enough that it cannot fit on any single page even on its own, because a page holds a hundred and eighty two septets at most with the navigation lines added to it` cannot fit on any page",
    "error: invalid_widths.yaml: screens.orphan: unreachable from `start` or `home`",
];

#[test]
fn non_gsm_text_warns() {
    let f = flow("start: a\nscreens:\n  a: { type: end, text: \"Karibu — asante {{ phone }}\" }\n");
    let w: Vec<String> = f.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(
        w,
        [
            "warning: test.yaml: screens.a.text: characters outside GSM-7 (`—`): screens showing this text go out as UCS-2, at most 80 characters"
        ]
    );
}

/// Runs a step that needs no effects.
fn reply_of(step: Step) -> (FlowState, Reply) {
    match step {
        Step::Reply { state, reply } => (state, reply),
        Step::Effect { .. } => panic!("unexpected effect"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn menus_paginate_and_select(
        labels in prop::collection::vec("[A-Za-z][A-Za-z ]{0,29}[a-z]", 1..60),
        septets in 60usize..=182,
    ) {
        let mut src = String::from("start: m\nscreens:\n  m:\n    type: menu\n    text: Pick one\n    options:\n");
        for (i, l) in labels.iter().enumerate() {
            src.push_str(&format!("      - {{ label: {}, next: e, set: {{ picked: \"{i}\" }} }}\n", json!(l)));
        }
        src.push_str("  e: { type: end, text: \"{{ picked }}\" }\n");
        let f = flow(&src);
        let limit = Limit { septets, ucs2: septets.min(80) };
        let c = ctx("254700000001", limit);
        let (mut state, mut reply) = reply_of(start(&f, &c));
        let mut seen = vec![false; labels.len()];
        loop {
            prop_assert!(fits(&reply.text, limit), "{:?}", reply.text);
            prop_assert!(!reply.end);
            for (n, label) in option_lines(&reply.text) {
                let (_, picked) = reply_of(input(&f, state.clone(), &n, &c));
                prop_assert!(picked.end);
                let i: usize = picked.text.parse().unwrap();
                prop_assert_eq!(label.as_str(), labels[i].as_str());
                prop_assert!(!seen[i]);
                seen[i] = true;
            }
            for key in ["98", "0"] {
                let (_, r) = reply_of(input(&f, state.clone(), key, &c));
                prop_assert!(!r.end, "{} selected an option", key);
            }
            if !reply.text.ends_with("\n98. More") {
                break;
            }
            (state, reply) = reply_of(input(&f, state, "98", &c));
        }
        prop_assert!(seen.iter().all(|s| *s));
    }
}

/// A long answer made of items: pages break between items, the last page keeps the last
/// item's line break, and a wrong key follows the screen's `invalid`.
const TIMETABLE_FLOW: &str = r#"
start: list
screens:
  list:
    type: end
    items:
      from: rows
      text: "{{ item.day }}: {{ item.course }}\n{{ item.time }} at {{ item.venue }}\n"
    text: "{% if items %}Your Timetable:\n{% else %}No timetable found.{% endif %}"
    invalid: { end: "Invalid option. Please try again." }
"#;

fn rows(n: usize) -> Value {
    Value::Array(
        (1..=n)
            .map(|i| {
                json!({ "day": format!("Day {i}"), "course": "Data Structures and Algorithms",
                        "time": "8:00:00 - 10:00:00", "venue": "Lecture Hall 1" })
            })
            .collect(),
    )
}

fn with_rows(src: &str, n: usize) -> Flow {
    flow(&src.replace(
        "start: list",
        &format!("start: list\nvars: {{ rows: {} }}", rows(n)),
    ))
}

#[test]
fn end_items_page_between_items() {
    let f = with_rows(TIMETABLE_FLOW, 6);
    let mut s = Session::new(&f, Store::default(), "254700000001");
    let mut pages = vec![s.dial()];
    while !pages.last().unwrap().end {
        pages.push(s.send("98"));
    }
    assert!(pages.len() > 1);
    let mut days = 0;
    for p in &pages {
        let lines: Vec<&str> = p.text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            if l.starts_with("Day ") {
                days += 1;
                assert!(
                    lines.get(i + 1).is_some_and(|n| n.starts_with("8:00:00")),
                    "an item was split: {:?}",
                    p.text
                );
            }
        }
    }
    assert_eq!(days, 6);
    let last = pages.last().unwrap();
    assert!(last.text.ends_with("at Lecture Hall 1\n"), "{last:?}");
    // One screen's worth is sent exactly as the founding text: header, rows, each with "\n".
    let f = with_rows(TIMETABLE_FLOW, 1);
    assert_eq!(
        Session::new(&f, Store::default(), "254700000001").dial(),
        end(
            "Your Timetable:\nDay 1: Data Structures and Algorithms\n8:00:00 - 10:00:00 at Lecture Hall 1\n"
        )
    );
    let f = with_rows(TIMETABLE_FLOW, 0);
    assert_eq!(
        Session::new(&f, Store::default(), "254700000001").dial(),
        end("No timetable found.")
    );
}

#[test]
fn a_wrong_key_on_a_paginated_end_follows_its_invalid() {
    let f = with_rows(TIMETABLE_FLOW, 6);
    for key in ["5", "0", "x"] {
        let mut s = Session::new(&f, Store::default(), "254700000001");
        assert!(!s.dial().end);
        assert_eq!(s.send(key), end(INVALID), "{key}");
    }
    // Without `invalid`, the page is shown again under the flow's invalid_choice, as before.
    let f = with_rows(
        &TIMETABLE_FLOW.replace(
            "    invalid: { end: \"Invalid option. Please try again.\" }\n",
            "",
        ),
        6,
    );
    let mut s = Session::new(&f, Store::default(), "254700000001");
    s.dial();
    let again = s.send("5");
    assert!(
        !again.end
            && again
                .text
                .starts_with("Invalid choice. Please try again:\nYour Timetable:\n"),
        "{again:?}"
    );
}

const SHOP_FLOW: &str = r#"
start: home
timezone: Africa/Nairobi
invalid_choice: "Invalid choice. Please try again."
screens:
  home:
    type: menu
    text: "Welcome to the shop, a long greeting that leaves little room for anything else on the screen"
    options:
      - { label: Buy, next: amount }
      - { label: Airtime, next: airtime }
      - { label: Time, next: time }
    invalid: { text: "You have to choose a service." }
  amount:
    type: input
    text: "Enter amount"
    into: amount
    navigation: true
    next: confirm
    validators:
      - { regex: "[0-9]+", error: "Digits only." }
      - { expr: "(input | to_cents) <= 700000", error: "The most is 7,000.00." }
  airtime:
    type: input
    text: "Buy Airtime\nPlease enter phone number as (+2547XXXXXXXX)"
    into: number
    next: confirm
    validators:
      - { expr: "(input | msisdn('254')) is not none", error: "Buy Airtime\nPlease enter a valid phone number as (+2547XXXXXXXX)", replace: true }
  confirm:
    type: menu
    text: "Pay {{ amount }}?"
    options:
      - { label: Confirm, next: pay }
      - { key: "0", label: Back, next: home }
  pay:
    type: transact
    ops: [ { put: { record: "orders/{{ session_id }}", fields: { amount: "{{ amount }}" } } } ]
    next: paid
  paid:
    type: menu
    text: Paid.
    options: [ { label: Main menu, next: home } ]
  time:
    type: end
    text: "{{ now | date('%d/%m/%y %I:%M %p') }} {{ '2026-01-06T09:00:00+10:00' | date('%H:%M') }} {{ '2026-01-06' | date }}"
"#;

#[test]
fn a_menu_invalid_text_replaces_the_menu_text() {
    let f = flow(SHOP_FLOW);
    let mut s = Session::new(&f, Store::default(), "254700000001");
    s.dial();
    let options = "1. Buy\n2. Airtime\n3. Time";
    assert_eq!(
        s.send("9"),
        con(&format!("You have to choose a service.\n{options}"))
    );
    assert_eq!(
        s.send("7"),
        con(&format!("You have to choose a service.\n{options}")),
        "not twice"
    );
    assert_eq!(s.send("1"), con("Enter amount"));
}

#[test]
fn a_validator_error_may_replace_the_prompt() {
    let f = flow(SHOP_FLOW);
    let mut s = Session::new(&f, Store::default(), "254700000001");
    s.path(&["2"]);
    let bad = con("Buy Airtime\nPlease enter a valid phone number as (+2547XXXXXXXX)");
    assert_eq!(s.send("07"), bad);
    assert_eq!(s.send("07"), bad);
    assert_eq!(s.send("0711111111"), con("Pay ?\n1. Confirm\n0. Back"));
}

#[test]
fn an_option_may_have_its_own_key() {
    let f = flow(SHOP_FLOW);
    let mut s = Session::new(&f, Store::default(), "254700000001");
    assert_eq!(s.path(&["1", "50"]), con("Pay 50?\n1. Confirm\n0. Back"));
    // The option's own key wins over the back key: it goes where the option says.
    assert!(s.send("0").text.starts_with("Welcome to the shop"));
}

#[test]
fn navigation_keys_on_an_input_that_opts_in() {
    let f = flow(SHOP_FLOW);
    let mut s = Session::new(&f, Store::default(), "254700000001");
    let home = s.dial();
    assert_eq!(s.send("1"), con("Enter amount"));
    assert_eq!(s.send("0"), home, "0 goes back");
    s.send("1");
    assert_eq!(s.send("00"), home, "00 goes home");
    // Without `navigation: true`, 0 reaches the validators (tests/flow_engine.rs, input_validators).
    s.send("2");
    assert_eq!(
        s.send("0"),
        con("Buy Airtime\nPlease enter a valid phone number as (+2547XXXXXXXX)")
    );
}

#[test]
fn a_validator_that_cannot_evaluate_the_input_fails_with_its_error() {
    let f = flow(SHOP_FLOW);
    let mut s = Session::new(&f, Store::default(), "254700000001");
    s.path(&["1"]);
    for huge in ["1234567890123456", &"9".repeat(60)] {
        assert_eq!(
            s.send(huge),
            con("The most is 7,000.00.\nEnter amount"),
            "{huge}"
        );
    }
}

#[test]
fn after_a_transaction_back_goes_home() {
    let f = flow(SHOP_FLOW);
    let mut s = Session::new(&f, Store::default(), "254700000001");
    let home = s.dial();
    assert_eq!(s.path(&["1", "50", "1"]), con("Paid.\n1. Main menu"));
    assert_eq!(
        s.send("0"),
        home,
        "not the confirmation, which would pay again"
    );
}

#[test]
fn dates_in_texts_use_the_flow_time_zone() {
    let f = flow(SHOP_FLOW);
    let mut s = Session::new(&f, Store::default(), "254700000001");
    // The hop's time is 2024-03-15T09:30:00Z: 12:30 in Nairobi. A time written with its own
    // offset is shown in the flow's zone too; a plain date is a date.
    assert_eq!(s.path(&["3"]), end("15/03/24 12:30 PM 02:00 06/01/2026"));
    let utc = flow(&SHOP_FLOW.replace("timezone: Africa/Nairobi\n", ""));
    let mut s = Session::new(&utc, Store::default(), "254700000001");
    assert_eq!(s.path(&["3"]), end("15/03/24 09:30 AM 09:00 06/01/2026"));
}

#[test]
fn an_unknown_time_zone_is_a_load_error() {
    let errors = Flow::from_yaml(
        "t",
        "t.yaml",
        &SHOP_FLOW.replace("Africa/Nairobi", "Mars/Olympus"),
    )
    .unwrap_err();
    assert!(
        errors
            .iter()
            .any(|d| d.to_string().contains("timezone") && d.to_string().contains("Mars/Olympus")),
        "{errors:?}"
    );
}
