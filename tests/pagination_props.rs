//! Tests for `text::paginate` and `text::gsm` through the public API. Properties: every page
//! fits, content round-trips in order, nav lines are where they belong, texts that fit pass
//! through untouched, and option lines that can fit a page are never split. Then examples: septet
//! boundaries, a long END text, a 12-option menu, UCS-2 screens and tiny limits.

use proptest::prelude::*;
use ussd_gateway::text::*;

/// A body word: mostly GSM-7 (including accented letters), sometimes extension-table characters
/// or one very long word, and (when `ucs2` is set) sometimes non-GSM letters. No digits, so body
/// lines never look like options.
fn word(ucs2: bool) -> BoxedStrategy<String> {
    let gsm = prop_oneof![
        12 => "[a-zA-Zéàüñ.,!?'()]{1,12}",
        2 => "[a-z€{}\\[\\]~|^]{1,6}",
        1 => "[a-zA-Z]{20,200}",
    ];
    if ucs2 {
        prop_oneof![8 => gsm, 1 => "[a-ząЖжш]{1,8}"].boxed()
    } else {
        gsm.boxed()
    }
}

fn body(ucs2: bool, max_words: usize) -> impl Strategy<Value = String> {
    let sep = prop_oneof![8 => Just(" "), 2 => Just("\n"), 1 => Just("  "), 1 => Just("\n\n")];
    prop::collection::vec((word(ucs2), sep), 0..max_words).prop_map(|parts| {
        parts
            .into_iter()
            .map(|(w, s)| format!("{w}{s}"))
            .collect::<String>()
    })
}

fn options(ucs2: bool, max_options: usize) -> impl Strategy<Value = Vec<String>> {
    let label = prop::collection::vec(word(ucs2), 1..8).prop_map(|ws| ws.join(" "));
    prop::collection::vec(label, 0..max_options).prop_map(|labels| {
        labels
            .iter()
            .enumerate()
            .map(|(i, l)| format!("{}. {l}", i + 1))
            .collect()
    })
}

/// A body and option list, either GSM-only or possibly UCS-2, either small (often fits one
/// screen) or large (up to 60 body words and 40 options).
fn screen() -> impl Strategy<Value = (String, Vec<String>)> {
    (any::<bool>(), prop_oneof![Just((8, 5)), Just((60, 40))]).prop_flat_map(
        |(ucs2, (max_words, max_options))| (body(ucs2, max_words), options(ucs2, max_options)),
    )
}

fn limit() -> impl Strategy<Value = Limit> {
    (40usize..=182, 20usize..=80).prop_map(|(septets, ucs2)| Limit { septets, ucs2 })
}

fn nav() -> impl Strategy<Value = Nav> {
    prop_oneof![
        4 => Just(Nav::default()),
        1 => Just(Nav {
            next_key: "00".into(),
            next_label: "Next".into(),
            back_key: "#".into(),
            back_label: "Prev".into(),
        }),
        1 => Just(Nav {
            next_key: "9".into(),
            next_label: "Далее".into(),
            back_key: "0".into(),
            back_label: "Назад".into(),
        }),
    ]
}

fn joined(body: &str, options: &[String]) -> String {
    match (body.is_empty(), options.is_empty()) {
        (_, true) => body.to_owned(),
        (true, false) => options.join("\n"),
        (false, false) => format!("{body}\n{}", options.join("\n")),
    }
}

fn utf16(s: &str) -> usize {
    s.encode_utf16().count()
}

/// The encoding decided once for the whole screen (body, options and nav labels).
fn screen_encoding(body: &str, options: &[String], nav: &Nav) -> Encoding {
    let all = format!(
        "{body}{}{}{}{}{}",
        options.concat(),
        nav.next_key,
        nav.next_label,
        nav.back_key,
        nav.back_label
    );
    encoding_of(&all)
}

fn units(s: &str, encoding: Encoding) -> usize {
    match encoding {
        Encoding::Gsm7 => screen_units(s).1,
        Encoding::Ucs2 => utf16(s),
    }
}

fn budget(limit: Limit, encoding: Encoding) -> usize {
    match encoding {
        Encoding::Gsm7 => limit.septets,
        Encoding::Ucs2 => limit.ucs2,
    }
}

/// Strips the nav lines rule 3 requires from page `i` of `n`, failing if they are missing.
fn content_of(page: &str, i: usize, n: usize, nav: &Nav) -> Result<String, TestCaseError> {
    let mut content = page;
    if i + 1 < n {
        let tail = format!("\n{}", nav.next_line());
        prop_assert!(content.ends_with(&tail), "page {i} lacks More: {page:?}");
        content = &content[..content.len() - tail.len()];
    } else {
        prop_assert!(
            page.rsplit('\n').next() != Some(&*nav.next_line()),
            "last page has More"
        );
    }
    if i > 0 {
        let tail = format!("\n{}", nav.back_line());
        prop_assert!(content.ends_with(&tail), "page {i} lacks Back: {page:?}");
        content = &content[..content.len() - tail.len()];
    } else if n > 1 {
        prop_assert!(
            content.rsplit('\n').next() != Some(&*nav.back_line()),
            "first page has Back"
        );
    }
    Ok(content.to_owned())
}

fn non_ws(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn pages_obey_the_rules(
        (body, options) in screen(),
        limit in limit(),
        nav in nav(),
    ) {
        let pages = paginate(&body, &options, limit, &nav);
        prop_assert!(!pages.is_empty());
        prop_assert_eq!(&pages, &paginate(&body, &options, limit, &nav), "deterministic");

        let whole = joined(&body, &options);
        if fits(&whole, limit) {
            prop_assert_eq!(pages, vec![whole]);
            return Ok(());
        }

        let encoding = screen_encoding(&body, &options, &nav);
        let budget = budget(limit, encoding);
        let nav_cost = units(&format!("\n{}\n{}", nav.back_line(), nav.next_line()), encoding);
        let n = pages.len();
        let mut contents = Vec::with_capacity(n);
        for (i, page) in pages.iter().enumerate() {
            // Only meaningful when a page has room for at least one character beside its nav.
            if nav_cost + 2 <= budget {
                prop_assert!(
                    units(page, encoding) <= budget,
                    "page {} over {:?} budget {}: {:?}", i, encoding, budget, page
                );
            }
            let content = content_of(page, i, n, &nav)?;
            prop_assert!(!content.trim().is_empty(), "page {} has no content", i);
            contents.push(content);
        }

        let original = non_ws(&format!("{body}{}", options.concat()));
        prop_assert_eq!(non_ws(&contents.concat()), original);

        for option in &options {
            let guaranteed = line_fits_any_page(option, limit, &nav)
                && (encoding == Encoding::Gsm7
                    || utf16(&format!("{option}\n{}\n{}", nav.back_line(), nav.next_line()))
                        <= limit.ucs2);
            if guaranteed {
                let holders = contents
                    .iter()
                    .filter(|c| c.split('\n').any(|l| l == option))
                    .count();
                prop_assert_eq!(holders, 1, "option split or duplicated: {:?}", option);
            }
        }
    }

    #[test]
    fn small_limits_never_panic(
        body in body(true, 60),
        options in prop::collection::vec("[a-zЖ ]{0,30}", 0..5),
        septets in 0usize..40,
        ucs2 in 0usize..20,
    ) {
        let limit = Limit { septets, ucs2 };
        let pages = paginate(&body, &options, limit, &Nav::default());
        prop_assert!(!pages.is_empty());
    }

    #[test]
    fn fits_agrees_with_screen_units(s in "[a-zé€{Жą\n ]{0,200}", limit in limit()) {
        let (encoding, n) = screen_units(&s);
        prop_assert_eq!(fits(&s, limit), n <= budget(limit, encoding));
        prop_assert_eq!(encoding == Encoding::Gsm7, s.chars().all(is_gsm7));
    }
}

// Example-based tests.

#[test]
fn defaults() {
    assert_eq!(
        Limit::default(),
        Limit {
            septets: 182,
            ucs2: 80
        }
    );
    assert_eq!(Nav::default().next_line(), "98. More");
    assert_eq!(Nav::default().back_line(), "0. Back");
    let a = Limit {
        septets: 100,
        ucs2: 90,
    };
    assert_eq!(
        a.min(Limit::default()),
        Limit {
            septets: 100,
            ucs2: 80
        }
    );
}

#[test]
fn fits_at_the_boundary() {
    let limit = Limit::default();
    assert!(fits(&"a".repeat(182), limit));
    assert!(!fits(&"a".repeat(183), limit));
    assert!(fits(&"€".repeat(91), limit));
    assert!(!fits(&format!("{}a", "€".repeat(91)), limit));
    assert!(fits(&"ж".repeat(80), limit));
    assert!(!fits(&"ж".repeat(81), limit));
    assert!(!fits(&format!("{}ą", "a".repeat(80)), limit));
}

#[test]
fn passthrough_is_exact() {
    let limit = Limit::default();
    let opts = vec!["1. Yes".to_owned(), "2. No".to_owned()];
    assert_eq!(
        paginate("Continue?\n", &opts, limit, &Nav::default()),
        ["Continue?\n\n1. Yes\n2. No"]
    );
    assert_eq!(
        paginate("", &opts, limit, &Nav::default()),
        ["1. Yes\n2. No"]
    );
    assert_eq!(paginate("Bye\n", &[], limit, &Nav::default()), ["Bye\n"]);
    assert_eq!(paginate("", &[], limit, &Nav::default()), [""]);
}

#[test]
fn long_end_text_splits_with_more() {
    let text = "Thank you for registering for the community health programme. \
                    Your reference number will be sent by SMS shortly. Please keep it safe, \
                    you will need it when you visit any of our partner clinics. Clinics are \
                    open Monday to Friday from 8am to 5pm and on Saturdays until noon. For help \
                    call our toll free line or reply HELP to the SMS you receive.";
    let pages = paginate(text, &[], Limit::default(), &Nav::default());
    assert!(pages.len() >= 3, "{pages:#?}");
    let last = pages.len() - 1;
    for (i, page) in pages.iter().enumerate() {
        assert!(fits(page, Limit::default()), "{page}");
        assert_eq!(page.ends_with("\n98. More"), i != last, "{page}");
        assert_eq!(page.contains("\n0. Back"), i != 0, "{page}");
    }
    assert!(pages[last].ends_with("\n0. Back"));
    let words: Vec<&str> = pages
        .iter()
        .flat_map(|p| p.split_whitespace())
        .filter(|w| !matches!(*w, "98." | "More" | "0." | "Back"))
        .collect();
    assert_eq!(words, text.split_whitespace().collect::<Vec<_>>());
}

#[test]
fn menu_with_long_labels_keeps_options_whole() {
    let options: Vec<String> = (1..=12)
        .map(|i| format!("{i}. View the detailed results for polling station number {i}"))
        .collect();
    let pages = paginate(
        "Select a station:",
        &options,
        Limit::default(),
        &Nav::default(),
    );
    assert!(pages.len() >= 3, "{pages:#?}");
    for option in &options {
        let holders = pages
            .iter()
            .filter(|p| p.split('\n').any(|l| l == option))
            .count();
        assert_eq!(holders, 1, "{option}");
    }
    assert!(pages[0].starts_with("Select a station:\n1. View"));
    assert!(pages.iter().all(|p| fits(p, Limit::default())));
}

#[test]
fn ucs2_screen_is_measured_in_utf16_everywhere() {
    let body = format!("Привет {}", "a".repeat(200));
    let pages = paginate(&body, &[], Limit::default(), &Nav::default());
    for page in &pages {
        assert!(page.encode_utf16().count() <= 80, "{page}");
    }
    let kept: String = pages
        .iter()
        .flat_map(|p| p.split('\n'))
        .filter(|l| *l != "0. Back" && *l != "98. More")
        .flat_map(|l| l.split_whitespace())
        .collect();
    assert_eq!(kept, body.replace(' ', ""));
}

#[test]
fn hard_split_and_tiny_limits_do_not_panic() {
    let limit = Limit {
        septets: 20,
        ucs2: 20,
    };
    let word = "x".repeat(100);
    let pages = paginate(&word, &[], limit, &Nav::default());
    let xs: usize = pages.iter().map(|p| p.matches('x').count()).sum();
    assert_eq!(xs, 100);
    assert!(pages.iter().all(|p| fits(p, limit)));

    let tiny = Limit {
        septets: 3,
        ucs2: 0,
    };
    let pages = paginate("hello world", &["1. a".to_owned()], tiny, &Nav::default());
    assert!(!pages.is_empty());
    let long_nav = Nav {
        next_label: "N".repeat(50),
        ..Nav::default()
    };
    let pages = paginate(&"y ".repeat(40), &[], limit, &long_nav);
    assert_eq!(
        pages.iter().map(|p| p.matches('y').count()).sum::<usize>(),
        40
    );
}

#[test]
fn blank_lines_never_start_a_page() {
    let body = "a\n\n\n\nb\n\n\n\n".repeat(20);
    let pages = paginate(
        &body,
        &[],
        Limit {
            septets: 40,
            ucs2: 20,
        },
        &Nav::default(),
    );
    for page in &pages {
        assert!(!page.starts_with('\n'), "{page:?}");
    }
    assert_eq!(
        paginate(
            "   \n\n  ",
            &[],
            Limit {
                septets: 1,
                ucs2: 1
            },
            &Nav::default()
        ),
        [""]
    );
}

#[test]
fn line_fits_any_page_counts_both_nav_lines() {
    let limit = Limit::default();
    // "0. Back" (7) + "98. More" (8) + 2 newlines leave 165 septets.
    assert!(line_fits_any_page(&"a".repeat(165), limit, &Nav::default()));
    assert!(!line_fits_any_page(
        &"a".repeat(166),
        limit,
        &Nav::default()
    ));
    assert!(line_fits_any_page(&"ж".repeat(63), limit, &Nav::default()));
    assert!(!line_fits_any_page(&"ж".repeat(64), limit, &Nav::default()));
}

/// The student app's timetable: each day is two lines (the course, then its time and venue).
const TIMETABLE: [&str; 6] = [
    "Your Timetable:\n",
    "Monday: Data Structures\n8:00:00 - 10:00:00 at LH 1\n",
    "Tuesday: Discrete Mathematics\n10:00:00 - 12:00:00 at Room B12\n",
    "Wednesday: Operating Systems\n14:00:00 - 16:00:00 at Lab 3\n",
    "Thursday: Technical Writing\n9:00:00 - 11:00:00 at LH 4\n",
    "Friday: Data Structures\n11:00:00 - 13:00:00 at Lab 2\n",
];

#[test]
fn pages_break_between_items_that_fit_a_page() {
    let pages = paginate_blocks(&TIMETABLE, &[], Limit::default(), &Nav::default());
    assert_eq!(
        pages,
        [
            "Your Timetable:\nMonday: Data Structures\n8:00:00 - 10:00:00 at LH 1\nTuesday: Discrete Mathematics\n10:00:00 - 12:00:00 at Room B12\n98. More",
            "Wednesday: Operating Systems\n14:00:00 - 16:00:00 at Lab 3\nThursday: Technical Writing\n9:00:00 - 11:00:00 at LH 4\nFriday: Data Structures\n11:00:00 - 13:00:00 at Lab 2\n\n0. Back",
        ]
    );
    // Line by line, as before, the first page takes Wednesday's first line.
    let by_line = paginate(&TIMETABLE.concat(), &[], Limit::default(), &Nav::default());
    assert!(by_line[0].contains("Wednesday"), "{by_line:?}");
    // What fits one screen is sent exactly as written.
    let short = [
        "Your Timetable:\n",
        "Monday: Data Structures\n8:00:00 - 10:00:00 at LH 1\n",
    ];
    assert_eq!(
        paginate_blocks(&short, &[], Limit::default(), &Nav::default()),
        [short.concat()]
    );
}

#[test]
fn the_last_page_keeps_the_trailing_newline() {
    let text = "A long answer that does not fit one screen, line one of several.\n".repeat(5);
    let pages = paginate(&text, &[], Limit::default(), &Nav::default());
    assert!(pages.len() > 1, "{pages:?}");
    let last = pages.last().unwrap();
    assert!(last.ends_with(".\n\n0. Back"), "{last:?}");
    let content: String = pages
        .iter()
        .map(|p| {
            p.trim_end_matches("\n98. More")
                .trim_end_matches("0. Back")
                .trim_end_matches('\n')
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(format!("{content}\n"), text);
}

fn items() -> impl Strategy<Value = Vec<String>> {
    let line = prop::collection::vec("[a-zA-Z]{1,10}", 1..6).prop_map(|ws| ws.join(" "));
    let item = prop::collection::vec(line, 1..5).prop_map(|ls| format!("{}\n", ls.join("\n")));
    prop::collection::vec(item, 0..20)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// An item that fits a fresh page is never split across pages; every page fits; the items
    /// come back in order; the last page keeps the last item's line break.
    #[test]
    fn items_that_fit_stay_whole(head in "[a-zA-Z ]{0,40}", items in items(), limit in limit()) {
        let head = if head.is_empty() { head } else { format!("{head}\n") };
        let mut blocks: Vec<&str> = vec![&head];
        blocks.extend(items.iter().map(String::as_str));
        let nav = Nav::default();
        let pages = paginate_blocks(&blocks, &[], limit, &nav);
        let whole = blocks.concat();
        if fits(&whole, limit) {
            prop_assert_eq!(pages, vec![whole]);
            return Ok(());
        }
        let n = pages.len();
        let mut contents = Vec::new();
        for (i, page) in pages.iter().enumerate() {
            prop_assert!(fits(page, limit), "page {} too long: {:?}", i, page);
            contents.push(content_of(page, i, n, &nav)?);
        }
        if whole.ends_with('\n') {
            prop_assert!(contents.last().unwrap().ends_with('\n'), "{:?}", contents.last());
        }
        for item in &items {
            let body = item.trim_end();
            let fresh = format!("{body}\n{}\n{}", nav.back_line(), nav.next_line());
            if fits(&fresh, limit) {
                let holders = contents.iter().filter(|c| c.contains(body)).count();
                prop_assert!(holders >= 1, "item split: {:?}", body);
            }
        }
        prop_assert_eq!(non_ws(&contents.concat()), non_ws(&whole));
    }
}
