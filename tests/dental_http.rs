//! The dental appointments app (`*675#`) through the HTTP front, on a fixed clock so that the
//! slots generated relative to "today" are stable: every screen of the founding walk-through,
//! the SMS effects, and two people confirming the same slot at once.

mod common;

use common::{At, Sandbox};
use ussd_gateway::outbox::{Effect, Item};

const CODE: &str = "*675#";
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
        "CON Invalid choice. Please try again:\nWelcome, John!\n1. Check Appointments\n2. Book New Appointment\n3. Cancel Appointment\n4. Exit"
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
        walk(&at, "new", "+254700000077", &["1", "Peter"]).await,
        [
            "CON Welcome! No profile found.\n1. Register (Enter Name)\n2. Exit",
            "CON Enter your name",
            "CON Welcome, Peter!\n1. Check Appointments\n2. Book New Appointment\n3. Cancel Appointment\n4. Exit",
        ]
    );

    // A confirmation SMS at once and a reminder the day before the appointment.
    let items: Vec<Item> = gw
        .registry()
        .core()
        .store
        .outbox()
        .unwrap()
        .documents()
        .unwrap()
        .into_iter()
        .map(|doc| serde_json::from_value(doc).unwrap())
        .collect();
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
        .records()
        .get("slots", "gerehu-2026-01-06-14")
        .unwrap()
        .unwrap();
    assert_eq!(slot["status"], "booked");
    gw.shutdown().await;
}
