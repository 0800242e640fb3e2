//! Automatic pagination of USSD screens.
//!
//! A screen (free body text plus formatted option lines) that does not fit one USSD string is
//! split into pages instead of being truncated. Pages after the first carry a "Back" line and
//! every page but the last a "More" line, in that order, like ussd_airflow. The encoding (and so
//! the budget: septets or UTF-16 units) is decided once for the whole screen, nav labels
//! included, so every page is measured the same way. Packing is greedy by whole lines: a body
//! line or option that does not fit the room left moves to the next page; only a line longer
//! than a whole page is word-wrapped (and a word longer than a page hard-split). A body made of
//! items ([`paginate_blocks`]) breaks pages between items: an item that fits a page is not
//! split.

use super::gsm::{Encoding, char_units, is_gsm7, screen_units, units_in};

/// Size budget of one screen, in both possible encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Maximum septets when the screen is GSM-7 (extension characters count 2).
    pub septets: usize,
    /// Maximum UTF-16 code units when the screen needs UCS-2.
    pub ucs2: usize,
}

impl Default for Limit {
    /// 182 septets / 80 UCS-2 characters: the 160-octet USSD string.
    fn default() -> Self {
        Limit {
            septets: 182,
            ucs2: 80,
        }
    }
}

impl Limit {
    /// Component-wise minimum, for combining a gateway limit with an operator's.
    pub fn min(self, other: Limit) -> Limit {
        Limit {
            septets: self.septets.min(other.septets),
            ucs2: self.ucs2.min(other.ucs2),
        }
    }

    /// The budget that applies to a screen sent in `encoding`.
    pub fn for_encoding(self, encoding: Encoding) -> usize {
        match encoding {
            Encoding::Gsm7 => self.septets,
            Encoding::Ucs2 => self.ucs2,
        }
    }
}

/// Navigation keys and labels added to paginated screens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nav {
    /// Key the user sends for the next page (default `98`).
    pub next_key: String,
    /// Label of the next-page line (default `More`).
    pub next_label: String,
    /// Key the user sends for the previous page (default `0`).
    pub back_key: String,
    /// Label of the previous-page line (default `Back`).
    pub back_label: String,
}

impl Default for Nav {
    /// `98. More` / `0. Back`.
    fn default() -> Self {
        Nav {
            next_key: "98".to_owned(),
            next_label: "More".to_owned(),
            back_key: "0".to_owned(),
            back_label: "Back".to_owned(),
        }
    }
}

impl Nav {
    /// The next-page line, e.g. `98. More`.
    pub fn next_line(&self) -> String {
        format!("{}. {}", self.next_key, self.next_label)
    }

    /// The previous-page line, e.g. `0. Back`.
    pub fn back_line(&self) -> String {
        format!("{}. {}", self.back_key, self.back_label)
    }

    fn chars(&self) -> impl Iterator<Item = char> + '_ {
        [
            &self.next_key,
            &self.next_label,
            &self.back_key,
            &self.back_label,
        ]
        .into_iter()
        .flat_map(|s| s.chars())
    }
}

/// True when `s` fits one screen under `limit`; the encoding is decided by `s` itself
/// (GSM-7 septets against `limit.septets`, else UTF-16 units against `limit.ucs2`).
pub fn fits(s: &str, limit: Limit) -> bool {
    let (encoding, units) = screen_units(s);
    units <= limit.for_encoding(encoding)
}

/// True when `line` can be placed whole on some page: `line`, `nav.back_line()` and
/// `nav.next_line()` joined by `'\n'` fit under `limit`. The flow checker uses this to reject an
/// option label or a word that could never fit. (In a screen that needs UCS-2 because of other
/// text, a GSM-7 line is measured in UTF-16 units like everything else on that screen.)
pub fn line_fits_any_page(line: &str, limit: Limit, nav: &Nav) -> bool {
    fits(
        &format!("{line}\n{}\n{}", nav.back_line(), nav.next_line()),
        limit,
    )
}

/// Splits a screen into pages, at least one.
///
/// `body` is free text (may contain `'\n'`), `options` are formatted option lines such as
/// `"1. View Results"`. If `body` and the options joined by `'\n'` fit `limit`, that exact
/// string is the only page. Otherwise every page fits the screen's budget including its nav
/// lines: content, then `nav.back_line()` on pages after the first, then `nav.next_line()` on
/// every page but the last. Content order is kept; lines (body or options) are packed whole and
/// only a line longer than a page is word-wrapped at spaces (hard split for words longer than a
/// page). Blank lines at page boundaries are dropped, and so is trailing whitespace of the body,
/// except its line breaks when there are no options: they end the last page's content (a list
/// whose every row ends in `\n` keeps it on its last row). If the limit is too small for even
/// one character next to the nav lines, pages still make progress one character at a time (and
/// then exceed the limit).
pub fn paginate(body: &str, options: &[String], limit: Limit, nav: &Nav) -> Vec<String> {
    let lines: Vec<&str> = body.split_inclusive('\n').collect();
    paginate_blocks(&lines, options, limit, nav)
}

/// [`paginate`] for a body made of items: `blocks` joined are the body, and each block is one
/// or more whole lines (a record such as a timetable day: its course, then its time and venue)
/// that goes on one page whenever it fits one, so a page breaks between items rather than inside
/// one. A block longer than a page flows on line by line. Blocks should end in `\n`; the body's
/// last line break is kept on the last page as in [`paginate`].
pub fn paginate_blocks(
    blocks: &[&str],
    options: &[String],
    limit: Limit,
    nav: &Nav,
) -> Vec<String> {
    let body = blocks.concat();
    let joined = match (body.is_empty(), options.is_empty()) {
        (_, true) => body.clone(),
        (true, false) => options.join("\n"),
        (false, false) => format!("{body}\n{}", options.join("\n")),
    };
    if fits(&joined, limit) {
        return vec![joined];
    }

    let all_gsm = joined.chars().chain(nav.chars()).all(is_gsm7);
    let encoding = if all_gsm {
        Encoding::Gsm7
    } else {
        Encoding::Ucs2
    };
    let back = nav.back_line();
    let next = nav.next_line();
    let budget = limit.for_encoding(encoding);
    let mut packer = Packer {
        encoding,
        limit: budget,
        back_cost: 1 + units_in(&back, encoding),
        next_cost: 1 + units_in(&next, encoding),
        pages: Vec::new(),
        cur: Vec::new(),
        cur_cost: 0,
    };
    // The body without its trailing whitespace, whose line breaks end the last page instead.
    let kept = body.trim_end().len();
    let mut tail = if options.is_empty() {
        body[kept..].matches('\n').count()
    } else {
        0
    };
    let mut offset = 0;
    for block in blocks {
        let (start, end) = (offset, (offset + block.len()).min(kept));
        offset += block.len();
        if start >= end {
            continue;
        }
        let text = &body[start..end];
        let lines: Vec<&str> = text
            .strip_suffix('\n')
            .unwrap_or(text)
            .split('\n')
            .collect();
        packer.add_block(&lines);
    }
    for option in options {
        packer.add_line(option);
    }
    packer.break_page();

    let count = packer.pages.len();
    if count == 0 {
        return vec![String::new()];
    }
    packer
        .pages
        .into_iter()
        .enumerate()
        .map(|(i, lines)| {
            let mut page = lines.join("\n");
            let nav_lines = match (i > 0, i + 1 < count) {
                (true, true) => format!("\n{back}\n{next}"),
                (true, false) => format!("\n{back}"),
                (false, true) => format!("\n{next}"),
                (false, false) => String::new(),
            };
            if i + 1 == count {
                // The last page has no "More" line, so its room was never used: the line
                // breaks fit unless the limit is absurdly small.
                while tail > 0
                    && units_in(&format!("{page}{}{nav_lines}", "\n".repeat(tail)), encoding)
                        > budget
                {
                    tail -= 1;
                }
                page.push_str(&"\n".repeat(tail));
            }
            page.push_str(&nav_lines);
            page
        })
        .collect()
}

/// Greedy page builder. Every page reserves room for "More"; pages after the first for "Back".
struct Packer {
    encoding: Encoding,
    limit: usize,
    /// Cost of `"\n" + back_line`.
    back_cost: usize,
    /// Cost of `"\n" + next_line`.
    next_cost: usize,
    /// Finished pages, as content lines.
    pages: Vec<Vec<String>>,
    /// Content lines of the page being filled.
    cur: Vec<String>,
    /// Cost of `cur.join("\n")`.
    cur_cost: usize,
}

impl Packer {
    fn cost(&self, s: &str) -> usize {
        units_in(s, self.encoding)
    }

    fn reserve(&self, page_index: usize) -> usize {
        self.next_cost + if page_index > 0 { self.back_cost } else { 0 }
    }

    /// Room for one more content line on the current page, `None` if not even its line break
    /// fits.
    fn room(&self) -> Option<usize> {
        let sep = usize::from(!self.cur.is_empty());
        self.limit
            .checked_sub(self.reserve(self.pages.len()) + self.cur_cost + sep)
    }

    /// Room for a line on an empty page: the current one if still empty, else the next one.
    fn fresh_room(&self) -> usize {
        let index = self.pages.len() + usize::from(!self.cur.is_empty());
        self.limit.saturating_sub(self.reserve(index))
    }

    fn fits_room(&self, cost: usize) -> bool {
        self.room().is_some_and(|room| cost <= room)
    }

    fn push(&mut self, line: String) {
        self.cur_cost += usize::from(!self.cur.is_empty()) + self.cost(&line);
        self.cur.push(line);
    }

    /// Closes the current page (if it has content), dropping its trailing blank lines.
    fn break_page(&mut self) {
        while self.cur.last().is_some_and(|l| l.trim().is_empty()) {
            self.cur.pop();
        }
        if !self.cur.is_empty() {
            self.pages.push(std::mem::take(&mut self.cur));
        }
        self.cur.clear();
        self.cur_cost = 0;
    }

    /// Blank lines are kept only inside a page, never at its start.
    fn add_blank_line(&mut self, line: &str) {
        if !self.cur.is_empty() && self.fits_room(self.cost(line)) {
            self.push(line.to_owned());
        }
    }

    /// Adds the lines of one item: on a fresh page when they do not fit the room left but fit
    /// a page of their own, so that the item is not split.
    fn add_block(&mut self, lines: &[&str]) {
        let shown = lines.len()
            - lines
                .iter()
                .rev()
                .take_while(|l| l.trim().is_empty())
                .count();
        if shown > 1 && !self.cur.is_empty() {
            let cost = lines[..shown].iter().map(|l| self.cost(l)).sum::<usize>() + shown - 1;
            if !self.fits_room(cost) && cost <= self.fresh_room() {
                self.break_page();
            }
        }
        for line in lines {
            self.add_line(line);
        }
    }

    /// Adds one content line (a body line or an option). A line that does not fit the room left
    /// moves whole to the next page when it fits there, so rows stay readable; only a line
    /// longer than a whole page is word-wrapped.
    fn add_line(&mut self, line: &str) {
        let cost = self.cost(line);
        if line.trim().is_empty() {
            self.add_blank_line(line);
        } else if self.fits_room(cost) {
            self.push(line.to_owned());
        } else if !self.cur.is_empty() && cost <= self.fresh_room() {
            self.break_page();
            self.push(line.to_owned());
        } else {
            self.wrap(line);
        }
    }

    /// Word-wraps `line` at spaces starting at the current position, moving on to new pages as
    /// needed; words longer than a page's room are hard-split at character boundaries.
    fn wrap(&mut self, line: &str) {
        let mut chunk = String::new();
        let mut chunk_cost = 0;
        for word in line.split(' ') {
            let mut word = word;
            let mut word_cost = self.cost(word);
            loop {
                if chunk.is_empty() && word.is_empty() {
                    // Spaces at the start of a wrapped line are dropped.
                    break;
                }
                let need = if chunk.is_empty() {
                    word_cost
                } else {
                    chunk_cost + 1 + word_cost
                };
                if self.fits_room(need) {
                    if !chunk.is_empty() {
                        chunk.push(' ');
                    }
                    chunk.push_str(word);
                    chunk_cost = need;
                    break;
                }
                if !chunk.is_empty() {
                    // Finish this line (the break's spaces are dropped); the word starts the next.
                    let line = std::mem::take(&mut chunk);
                    self.push(line.trim_end_matches(' ').to_owned());
                    chunk_cost = 0;
                    continue;
                }
                if !self.cur.is_empty() && word_cost <= self.fresh_room() {
                    self.break_page();
                    continue;
                }
                // The word is longer than a whole page's room: hard-split it.
                let (mut head, mut tail) = self.split_prefix(word, self.room().unwrap_or(0));
                if head.is_empty() {
                    if !self.cur.is_empty() {
                        self.break_page();
                        continue;
                    }
                    // Not even one character fits an empty page: force progress anyway.
                    let first = word.chars().next().map_or(0, char::len_utf8);
                    (head, tail) = word.split_at(first);
                }
                self.push(head.to_owned());
                word = tail;
                word_cost = self.cost(word);
            }
        }
        if !chunk.is_empty() {
            self.push(chunk.trim_end_matches(' ').to_owned());
        }
    }

    /// Longest prefix of `word` costing at most `room`, and the rest.
    fn split_prefix<'w>(&self, word: &'w str, room: usize) -> (&'w str, &'w str) {
        let mut used = 0;
        for (i, c) in word.char_indices() {
            used += char_units(c, self.encoding);
            if used > room {
                return word.split_at(i);
            }
        }
        (word, "")
    }
}
