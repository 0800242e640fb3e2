//! The pages of long upstream answers: each fits, and read again they are the app's answer.

use super::*;

/// The pages as shown (the last one of an END answer without its Back line), read again: each
/// without its More/Back lines, joined by the line breaks they were cut at.
fn read_again(pages: &[String], end: bool) -> String {
    let nav = Nav::default();
    let more = format!("\n{}", nav.next_line());
    let back = format!("\n{}", nav.back_line());
    let last = pages.len() - 1;
    pages
        .iter()
        .enumerate()
        .map(|(i, page)| {
            let page = if i == last && end {
                closing(page)
            } else {
                page
            };
            let page = page.strip_suffix(&more).unwrap_or(page);
            page.strip_suffix(&back).unwrap_or(page)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn shown(pages: &[String], end: bool) -> Vec<&str> {
    let last = pages.len() - 1;
    pages
        .iter()
        .enumerate()
        .map(|(i, p)| if i == last && end { closing(p) } else { p })
        .collect()
}

#[test]
fn the_last_page_keeps_the_answers_trailing_line_breaks() {
    let limit = Limit::default();
    // Lines of every width, so that some last pages are too full for the line breaks after
    // them: the answer is then paged again with room kept for them.
    let mut repaged = 0;
    for width in 1..=60 {
        for count in [4, 9, 25] {
            for tail in ["\n", "\r\n", &"\n".repeat(12), &"\n".repeat(20)] {
                for end in [false, true] {
                    let body: Vec<String> = (0..count)
                        .map(|i| format!("{i:02}{}", "x".repeat(width)))
                        .collect();
                    let text = format!("{}{tail}", body.join("\n"));
                    if fits(text.trim_end(), limit) {
                        continue;
                    }
                    let first = paginate(text.trim_end(), &[], limit, &Nav::default());
                    let pages = pages_of(&text, limit, end);
                    // All pages but the last are the first pagination's, unless paged again.
                    let n = first.len() - 1;
                    if first.len() != pages.len() || first[..n] != pages[..n] {
                        repaged += 1;
                    }
                    assert!(pages.len() >= 2, "{text:?}");
                    for page in shown(&pages, end) {
                        assert!(fits(page, limit), "{page:?} of {text:?}");
                    }
                    assert_eq!(read_again(&pages, end), text, "end {end}");
                }
            }
        }
    }
    assert!(
        repaged > 0,
        "some answers needed room kept for their line breaks"
    );
}

#[test]
fn line_breaks_that_cannot_fit_are_left_out() {
    // A UCS-2 answer followed by more line breaks than any screen holds.
    let body: String = (0..10).map(|i| format!("ũ line {i}\n")).collect();
    let text = format!("{body}{}", "\n".repeat(200));
    for end in [false, true] {
        let pages = pages_of(&text, Limit::default(), end);
        for page in shown(&pages, end) {
            assert!(fits(page, Limit::default()), "{page:?}");
        }
        assert_eq!(read_again(&pages, end), body.trim_end());
    }
}
