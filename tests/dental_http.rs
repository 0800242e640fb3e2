//! The dental appointments app (`*675#`) through the HTTP front, on a fixed clock so that the
//! slots generated relative to "today" are stable: every screen of the founding walk-through,
//! the SMS effects, and two people confirming the same slot at once.

mod common;

use common::{At, Sandbox};
use ussd_gateway::outbox::{Effect, Item};

const CODE: &str = "*675#";
/// A second code on the same app, for two live sessions of one number.
const OTHER_CODE: &str = "*676#";
const JOHN: &str = "+254700000001";
const MARY: &str = "+254700000002";
const HOME_JOHN: &str = "CON Welcome, John!\n1. Check Appointments\n2. Book New Appointment\n3. Cancel Appointment\n4. Exit";

fn sandbox() -> Sandbox {
    Sandbox::with_repo_flows(
        "[clock]\nfixed = \"2026-01-05T08:00:00+10:00\"\n[[routes]]\nservice_code = \"*675#\"\nflow = \"dental\"\n",
    )
}

async fn walk(at: &At, session: &str, phone: &str, inputs: &[&str]) -> Vec<String> {
    at.walk(session, CODE, phone, inputs).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dental_walk_through() {
    let sb = sandbox();
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);

    assert_eq!(
        walk(&at, "check", JOHN, &["1"]).await,
        [
            HOME_JOHN,
            "CON Your Dental Appointments:\n1. Cleaning (06/12/2025, Koki Dental Clinic - Done)\n2. Checkup (13/01/2026, Gerehu Dental Clinic - Upcoming)\n3. Back",
        ]
    );
    assert_eq!(
        walk(&at, "book", JOHN, &["2", "2", "1", "1", "1"]).await[1..],
        [
            "CON Select Appointment Type:\n1. Cleaning\n2. Checkup\n3. Filling\n4. Back",
            "CON Available Checkup Slots:\n1. Gerehu Dental Clinic (06/01/2026, 9 AM)\n2. Koki Dental Clinic (06/01/2026, 2 PM)\n3. Gerehu Dental Clinic (07/01/2026, 9 AM)\n98. More",
            "CON Book Checkup at Gerehu Dental Clinic, 06/01/2026, 9 AM?\n1. Confirm\n2. Cancel",
            "CON Appointment confirmed! You'll get an SMS reminder.\n1. Back to Main Menu",
            HOME_JOHN,
        ]
    );
    // Choosing an appointment shows it.
    assert_eq!(
        walk(&at, "detail", JOHN, &["1", "1", "1", "2", "0"]).await[2..],
        [
            "CON Cleaning\nClinic: Koki Dental Clinic\nDate: 06/12/2025, 9 AM\nStatus: Done\n1. Back",
            "CON Your Dental Appointments:\n1. Cleaning (06/12/2025, Koki Dental Clinic - Done)\n2. Checkup (06/01/2026, Gerehu Dental Clinic - Upcoming)\n98. More",
            "CON Checkup\nClinic: Gerehu Dental Clinic\nDate: 06/01/2026, 9 AM\nStatus: Upcoming\n1. Back",
            "CON Your Dental Appointments:\n1. Cleaning (06/12/2025, Koki Dental Clinic - Done)\n2. Checkup (06/01/2026, Gerehu Dental Clinic - Upcoming)\n98. More",
        ]
    );
    assert_eq!(
        walk(&at, "cancel", JOHN, &["3", "1", "1"]).await[1..],
        [
            "CON Select Appointment to Cancel:\n1. Checkup (06/01/2026, Gerehu Dental Clinic)\n2. Checkup (13/01/2026, Gerehu Dental Clinic)\n3. Back",
            "CON Cancel Checkup on 06/01/2026 at Gerehu Dental Clinic?\n1. Confirm\n2. Back",
            "CON Appointment cancelled successfully!\n1. Back to Main Menu",
        ]
    );
    // The cancelled slot is free again.
    assert_eq!(
        walk(&at, "rebook", MARY, &["2", "2"]).await[2],
        "CON Available Checkup Slots:\n1. Gerehu Dental Clinic (06/01/2026, 9 AM)\n2. Koki Dental Clinic (06/01/2026, 2 PM)\n3. Gerehu Dental Clinic (07/01/2026, 9 AM)\n98. More"
    );
    assert_eq!(
        walk(&at, "bad", JOHN, &["5"]).await[1],
        // The founding article's screen: the menu right under the error, no greeting.
        "CON Invalid choice. Please try again:\n1. Check Appointments\n2. Book New Appointment\n3. Cancel Appointment\n4. Exit"
    );
    assert_eq!(
        walk(&at, "none", MARY, &["1", "2"]).await[1..],
        [
            "CON No appointments found.\n1. Book New Appointment\n2. Exit",
            "END Thank you for using our dental service. Goodbye!",
        ]
    );
    assert_eq!(
        walk(&at, "none-cancel", MARY, &["3"]).await[1],
        "CON No upcoming appointments to cancel.\n1. Book New Appointment\n2. Exit"
    );
    assert_eq!(
        walk(
            &at,
            "new",
            "+254700000077",
            &["1", "J0hn", "0", "1", "O'Neil"]
        )
        .await,
        [
            "CON Welcome! No profile found.\n1. Register (Enter Name)\n2. Exit",
            "CON Enter your name",
            // The microfinance app's name rule, and its error.
            "CON Use letters, spaces and . ' - only.\nEnter your name",
            // 0 on the name prompt goes back.
            "CON Welcome! No profile found.\n1. Register (Enter Name)\n2. Exit",
            "CON Enter your name",
            "CON Welcome, O'Neil!\n1. Check Appointments\n2. Book New Appointment\n3. Cancel Appointment\n4. Exit",
        ]
    );

    // A confirmation SMS at once and a reminder the day before the appointment.
    let items: Vec<Item> = common::outbox_items(&gw).await;
    assert_eq!(items.len(), 2);
    assert_eq!(
        items[0].effect,
        Effect::Sms {
            to: "254700000001".into(),
            message: "Your Checkup at Gerehu Dental Clinic is booked for 06/01/2026, 9 AM.".into()
        }
    );
    assert_eq!(
        items[1].effect,
        Effect::Sms {
            to: "254700000001".into(),
            message:
                "Reminder: your Checkup at Gerehu Dental Clinic is tomorrow, 06/01/2026, 9 AM."
                    .into()
        }
    );
    // 2026-01-05T09:00:00+10:00, a day before the appointment.
    assert_eq!(items[1].not_before_ms, 1_767_567_600_000);
    gw.shutdown().await;
}

/// Two people confirm the same slot at once: exactly one gets it; the other is told it is gone
/// and shown the remaining slots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_slot_confirmed_twice_at_once() {
    let sb = sandbox();
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    for (session, phone) in [("j", JOHN), ("m", MARY)] {
        let screens = walk(&at, session, phone, &["2", "3", "1"]).await;
        assert_eq!(
            screens[3],
            "CON Book Filling at Gerehu Dental Clinic, 06/01/2026, 2 PM?\n1. Confirm\n2. Cancel"
        );
    }
    let (a, b) = tokio::join!(
        at.hop("j", CODE, JOHN, "2*3*1*1"),
        at.hop("m", CODE, MARY, "2*3*1*1")
    );
    let confirmed = "CON Appointment confirmed! You'll get an SMS reminder.\n1. Back to Main Menu";
    // The remaining slots, paginated (the apology takes room on the first page).
    let gone = "CON Sorry, that slot was just taken.\nAvailable Filling Slots:\n1. Gerehu Dental Clinic (07/01/2026, 2 PM)\n2. Gerehu Dental Clinic (08/01/2026, 2 PM)\n98. More";
    let mut answers = [a, b];
    answers.sort();
    assert_eq!(answers, [confirmed.to_string(), gone.to_string()]);
    let slot = gw
        .registry()
        .core()
        .store
        .load_record("slots", "gerehu-2026-01-06-14")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(slot["status"], "booked");
    gw.shutdown().await;
}

/// After "Appointment confirmed!" (or "cancelled"), Back goes to the main menu, not to the
/// confirmation screen that would book the same slot again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_after_a_confirmation_goes_home() {
    let sb = sandbox();
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    let booked = walk(&at, "b", JOHN, &["2", "2", "1", "1", "0"]).await;
    assert_eq!(
        booked[4],
        "CON Appointment confirmed! You'll get an SMS reminder.\n1. Back to Main Menu"
    );
    assert_eq!(booked[5], HOME_JOHN);
    let cancelled = walk(&at, "c", JOHN, &["3", "1", "1", "0"]).await;
    assert_eq!(
        cancelled[3],
        "CON Appointment cancelled successfully!\n1. Back to Main Menu"
    );
    assert_eq!(cancelled[4], HOME_JOHN);
    gw.shutdown().await;
}

/// A long list of slots: its last page has one Back (the option), and the page key says
/// "Previous".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_back_per_page() {
    let sb = sandbox();
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    let pages = walk(
        &at,
        "p",
        JOHN,
        &["2", "2", "98", "98", "98", "0", "98", "11"],
    )
    .await;
    assert_eq!(
        pages[3],
        "CON 4. Koki Dental Clinic (07/01/2026, 2 PM)\n5. Gerehu Dental Clinic (08/01/2026, 9 AM)\n6. Koki Dental Clinic (08/01/2026, 2 PM)\n0. Previous\n98. More"
    );
    assert_eq!(
        pages[5],
        "CON 10. Koki Dental Clinic (10/01/2026, 2 PM)\n11. Back\n0. Previous"
    );
    assert_eq!(pages[7], pages[5]);
    assert_eq!(
        pages[8],
        "CON Select Appointment Type:\n1. Cleaning\n2. Checkup\n3. Filling\n4. Back"
    );
    gw.shutdown().await;
}

/// The same patient cannot hold two appointments at the same time, at one clinic or two: told
/// when choosing the slot, and refused inside the booking's transaction when two sessions
/// confirm at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_bookings_are_refused() {
    let sb = Sandbox::with_repo_flows(&format!(
        "[clock]\nfixed = \"2026-01-05T08:00:00+10:00\"\n[[routes]]\nservice_code = \"{CODE}\"\nflow = \"dental\"\n[[routes]]\nservice_code = \"{OTHER_CODE}\"\nflow = \"dental\"\n",
    ));
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    let clash = "CON You already have an appointment at that time: Cleaning at Koki Dental Clinic, 06/01/2026, 9 AM.\n1. Choose another slot\n2. Back to Main Menu";
    assert_eq!(
        walk(&at, "clean", JOHN, &["2", "1", "1", "1"]).await[4],
        "CON Appointment confirmed! You'll get an SMS reminder.\n1. Back to Main Menu"
    );
    let answers = walk(&at, "check", JOHN, &["2", "2", "1", "1"]).await;
    assert_eq!(answers[3], clash);
    assert_eq!(
        answers[4],
        "CON Available Checkup Slots:\n1. Gerehu Dental Clinic (06/01/2026, 9 AM)\n2. Koki Dental Clinic (06/01/2026, 2 PM)\n3. Gerehu Dental Clinic (07/01/2026, 9 AM)\n98. More"
    );
    assert_eq!(
        walk(&at, "home", JOHN, &["2", "2", "1", "2"]).await[4],
        HOME_JOHN
    );

    // Mary confirms both at once, from two live sessions (a second dial on the same code ends
    // the first, so the second session is on another code routed to the same app).
    // A Checkup at Koki and a Filling at Gerehu, both on 06/01/2026 at 2 PM.
    let book = [("m1", CODE, "2", "2"), ("m2", OTHER_CODE, "3", "1")];
    for (session, code, kind, slot) in book {
        let screens = at.walk(session, code, MARY, &["2", kind, slot]).await;
        assert!(
            screens[3].starts_with("CON Book ") && screens[3].contains("06/01/2026, 2 PM?"),
            "{screens:?}"
        );
    }
    let (a, b) = tokio::join!(
        at.hop("m1", CODE, MARY, "2*2*2*1"),
        at.hop("m2", OTHER_CODE, MARY, "2*3*1*1")
    );
    let confirmed = "CON Appointment confirmed! You'll get an SMS reminder.\n1. Back to Main Menu";
    let mut answers = [a, b];
    answers.sort();
    assert_eq!(answers[0], confirmed, "{answers:?}");
    assert!(
        answers[1].starts_with("CON You already have an appointment at that time: "),
        "{answers:?}"
    );
    let mine: Vec<_> = gw
        .registry()
        .core()
        .store
        .list_records("bookings")
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, b)| b["phone"] == "254700000002" && b["status"] == "booked")
        .collect();
    assert_eq!(mine.len(), 1, "{mine:?}");
    gw.shutdown().await;
}

/// Cancelling an appointment voids its pending reminder in the same transaction: the patient is
/// not told tomorrow about an appointment they cancelled. (On the real clock, so that the
/// reminder is still pending when the appointment is cancelled.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_voids_the_reminder() {
    let sb = Sandbox::with_repo_flows("[[routes]]\nservice_code = \"*675#\"\nflow = \"dental\"\n");
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    // The third Checkup slot is the day after tomorrow: its reminder is due tomorrow.
    let booked = walk(&at, "b", JOHN, &["2", "2", "3", "1"]).await;
    assert!(
        booked[4].starts_with("CON Appointment confirmed!"),
        "{booked:?}"
    );
    let documents = || async {
        common::outbox_items(&gw)
            .await
            .iter()
            .map(|i| serde_json::to_value(i).unwrap())
            .collect::<Vec<_>>()
    };
    let reminder = |docs: Vec<serde_json::Value>| {
        docs.into_iter()
            .find(|d| {
                d["effect"]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("Reminder: "))
            })
            .unwrap()
    };
    assert_eq!(reminder(documents().await)["status"]["state"], "pending");
    let cancelled = walk(&at, "c", JOHN, &["3", "1", "1"]).await;
    assert_eq!(
        cancelled[3],
        "CON Appointment cancelled successfully!\n1. Back to Main Menu"
    );
    let voided = reminder(documents().await);
    assert_eq!(voided["status"]["state"], "voided", "{voided}");
    // Nothing else was voided: the booking's confirmation stays as the sender left it.
    let others: Vec<_> = documents()
        .await
        .into_iter()
        .filter(|d| d["status"]["state"] == "voided")
        .collect();
    assert_eq!(others.len(), 1);
    gw.shutdown().await;
}
