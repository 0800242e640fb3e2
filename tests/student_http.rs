//! Golden tests of the student information app (`*123#`) dialled through the HTTP front,
//! as Africa's Talking would: every screen of the founding USSD-SYTEM app, text for text.

mod common;

use common::{At, Sandbox};

const HOME_AMINA: &str = "CON Welcome to UniConnect, Amina Wanjiru\n1. View Results\n2. Check Balance\n3. View Timetable\n4. Missed Exams\n5. Notifications\n6. Exit";

/// Dials `*123#` as `phone`, sends each input in turn (cumulative `text`), and returns every
/// answer.
async fn walk(at: &At, session: &str, phone: &str, inputs: &[&str]) -> Vec<String> {
    at.walk(session, "*123#", phone, inputs).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_student_screen_over_http() {
    let sb = Sandbox::with_repo_flows("[[routes]]\nservice_code = \"*123#\"\nflow = \"student\"\n");
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    let amina = "+254700000001";
    let brian = "0700000002";

    let cases: Vec<(&str, Vec<&str>, Vec<&str>)> = vec![
        (amina, vec![], vec![HOME_AMINA]),
        (
            amina,
            vec!["1", "1"],
            vec![
                HOME_AMINA,
                "CON View Results\n1. Current Term\n2. Previous Terms",
                "END Current Term Results:\nData Structures (CS201): A, 2024 Term 1\nDiscrete Mathematics (MA202): B+, 2024 Term 1\nOperating Systems (CS204): B, 2024 Term 1\n",
            ],
        ),
        (
            amina,
            vec!["1", "2", "98"],
            vec![
                HOME_AMINA,
                "CON View Results\n1. Current Term\n2. Previous Terms",
                "CON Previous Term Results:\nIntroduction to Programming (CS101): A, 2023 Term 1\nCalculus I (MA101): B, 2023 Term 1\nCommunication Skills (CM101): A-, 2023 Term 2\n98. More",
                // The last row keeps its line break, as the founding text ends in one.
                "END Computer Organisation (CS102): B+, 2023 Term 2\nLinear Algebra (MA102): C+, 2023 Term 3\n",
            ],
        ),
        (
            amina,
            vec!["2"],
            vec![
                HOME_AMINA,
                "END Fee Balance\nTerm: 2024 Term 1\nAmount Due: KES 45000.00\nAmount Paid: KES 30000.00\nBalance: KES 15000.00\n",
            ],
        ),
        (
            amina,
            vec!["3", "98"],
            vec![
                HOME_AMINA,
                // A day's course and its time and venue stay on one page.
                "CON Your Timetable:\nMonday: Data Structures\n8:00:00 - 10:00:00 at LH 1\nTuesday: Discrete Mathematics\n10:00:00 - 12:00:00 at Room B12\n98. More",
                "END Wednesday: Operating Systems\n14:00:00 - 16:00:00 at Lab 3\nThursday: Technical Writing\n9:00:00 - 11:00:00 at LH 4\nFriday: Data Structures\n11:00:00 - 13:00:00 at Lab 2\n",
            ],
        ),
        (
            amina,
            vec!["4"],
            vec![
                HOME_AMINA,
                "END Missed Exams:\nCS204 - Operating Systems\nReschedule: 2024-04-15\n\nMA202 - Discrete Mathematics\nReschedule: 2024-04-18\n\n",
            ],
        ),
        (
            amina,
            vec!["5"],
            vec![
                HOME_AMINA,
                "END Notifications:\n- Exam Timetable: End of term exams start on 8 April.\n- Fee Deadline: Clear fee balances by 31 March.\n",
            ],
        ),
        (
            amina,
            vec!["6"],
            vec![HOME_AMINA, "END Thank you for using UniConnect. Goodbye!"],
        ),
        (
            amina,
            vec!["7"],
            vec![HOME_AMINA, "END Invalid option. Please try again."],
        ),
        (
            amina,
            vec!["00"],
            vec![HOME_AMINA, "END Invalid option. Please try again."],
        ),
        (
            amina,
            vec!["1", "3"],
            vec![
                HOME_AMINA,
                "CON View Results\n1. Current Term\n2. Previous Terms",
                "END Invalid option. Please try again.",
            ],
        ),
        // A wrong key on page 1 of a paginated answer ends the dialogue, as any unknown choice
        // does in this app (0 included: there is no page before).
        (
            amina,
            vec!["3", "5"],
            vec![HOME_AMINA, "", "END Invalid option. Please try again."],
        ),
        (
            amina,
            vec!["3", "0"],
            vec![HOME_AMINA, "", "END Invalid option. Please try again."],
        ),
        (
            amina,
            vec!["1", "2", "00"],
            vec![HOME_AMINA, "", "", "END Invalid option. Please try again."],
        ),
        (
            brian,
            vec!["1", "1"],
            vec![
                "CON Welcome to UniConnect, Brian Otieno\n1. View Results\n2. Check Balance\n3. View Timetable\n4. Missed Exams\n5. Notifications\n6. Exit",
                "CON View Results\n1. Current Term\n2. Previous Terms",
                "END No results found for current term.",
            ],
        ),
        (
            brian,
            vec!["1", "2"],
            vec!["", "", "END No previous term results found."],
        ),
        (brian, vec!["2"], vec!["", "END Balance info not found."]),
        (brian, vec!["3"], vec!["", "END No timetable found."]),
        (brian, vec!["4"], vec!["", "END No missed exams found."]),
        (
            "+254700000099",
            vec![],
            vec!["END Your phone number is not registered. Please contact admin."],
        ),
    ];
    for (i, (phone, inputs, expected)) in cases.iter().enumerate() {
        let answers = walk(&at, &format!("golden-{i}"), phone, inputs).await;
        assert_eq!(answers.len(), expected.len());
        for (got, want) in answers.iter().zip(expected) {
            // An empty golden means "already checked in another case".
            if !want.is_empty() {
                assert_eq!(got, want, "{phone} {inputs:?}");
            }
        }
    }
    gw.shutdown().await;
}

/// A pre-filled dial (`*123*2#`) goes straight to the fee balance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_filled_student_dial() {
    let sb = Sandbox::with_repo_flows("[[routes]]\nservice_code = \"*123#\"\nflow = \"student\"\n");
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    let body = at.hop("pre", "*123*2#", "+254700000001", "").await;
    assert!(body.starts_with("END Fee Balance\n"), "{body}");
    gw.shutdown().await;
}
