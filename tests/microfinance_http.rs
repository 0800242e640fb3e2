//! The microfinance app (`*384*303#`) through the HTTP front: every screen, the ledger behind
//! it, the outbox effects it writes, retries, and a kill -9 right after confirmed transactions.

mod common;

use common::{At, Sandbox};
use ussd_gateway::outbox::Effect;
use ussd_gateway::store::Store;

const CODE: &str = "*384*303#";
const AMINA: &str = "+254700000001";
const HOME: &str = "CON Welcome to Nerd Microfinance, Amina Wanjiru Choose a service.\n1. Please call me\n2. Deposit Money\n3. Withdraw Money\n4. Send Money\n5. Buy Airtime\n6. Repay Loan\n7. Check Balance";

fn sandbox() -> Sandbox {
    Sandbox::with_repo_flows("[[routes]]\nservice_code = \"*384*303#\"\nflow = \"microfinance\"\n")
}

async fn walk(at: &At, session: &str, phone: &str, inputs: &[&str]) -> Vec<String> {
    at.walk(session, CODE, phone, inputs).await
}

async fn balance(store: &Store, phone: &str) -> i64 {
    store.load_record("wallets", phone).await.unwrap().unwrap()["balance_cents"]
        .as_i64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_microfinance_screen() {
    let sb = sandbox();
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    let store = gw.registry().core().store.clone();

    assert_eq!(
        walk(&at, "dep", AMINA, &["2", "100.50", "1"]).await,
        [
            HOME,
            "CON Enter amount you wish to deposit?",
            "CON Deposit KES 100.50 to your Wallet\n1. Confirm\n2. Cancel",
            "END Simulated deposit: KES 100.50 added to your Wallet (no M-Pesa checkout is sent in this sample). Balance: KES 2,600.50",
        ]
    );
    assert_eq!(balance(&store, "254700000001").await, 260_050);

    assert_eq!(
        walk(
            &at,
            "dep-bad",
            AMINA,
            &["2", "10.555", "0.00", "80000", "abc", "12345678901234567"]
        )
        .await[2..],
        [
            "CON Enter an amount like 100 or 100.50.\nEnter amount you wish to deposit?",
            "CON The amount must be more than zero.\nEnter amount you wish to deposit?",
            "CON The most you can move at once is KES 70,000.00.\nEnter amount you wish to deposit?",
            "CON Enter an amount like 100 or 100.50.\nEnter amount you wish to deposit?",
            "CON The most you can move at once is KES 70,000.00.\nEnter amount you wish to deposit?",
        ]
    );
    // A wrong key on a Confirm / Cancel screen is told so, not "You have to choose a service."
    assert_eq!(
        walk(&at, "dep-wrong", AMINA, &["2", "5", "9"]).await[3],
        "CON Invalid choice. Please try again.\nDeposit KES 5.00 to your Wallet\n1. Confirm\n2. Cancel"
    );
    assert_eq!(
        walk(&at, "dep-cancel", AMINA, &["2", "5", "2"]).await[3],
        "END Thank you for doing business with us"
    );

    assert_eq!(
        walk(&at, "wd", AMINA, &["3", "600", "1"]).await[1..],
        [
            "CON Enter amount you wish to withdraw?",
            "CON Withdraw KES 600.00 from your Wallet\n1. Confirm\n2. Cancel",
            // No payout is sent: like the deposit, the withdrawal is a simulation and says so.
            "END Simulated withdrawal: KES 600.00 taken from your Wallet (no M-Pesa payout is sent in this sample). Balance: KES 2,000.50",
        ]
    );
    assert_eq!(
        walk(&at, "wd-poor", AMINA, &["3", "5000", "1"]).await[3],
        "END Sorry, you don't have sufficient funds in your account."
    );
    assert_eq!(balance(&store, "254700000001").await, 200_050);

    assert_eq!(
        walk(&at, "send", AMINA, &["4", "0700000002", "10", "1"]).await[1..],
        [
            "CON Enter the phone number to send money to (like 0722122122)",
            "CON Enter amount to send to Brian Otieno",
            "CON Send KES 10.00 to Brian Otieno (+254700000002)\n1. Confirm\n2. Cancel",
            "END We are sending KES 10.00 to Brian Otieno shortly.",
        ]
    );
    assert_eq!(balance(&store, "254700000002").await, 6_000);
    assert_eq!(
        walk(&at, "send-self", AMINA, &["4", "+254700000001"]).await[2],
        "CON You cannot send money to yourself.\nEnter the phone number to send money to (like 0722122122)"
    );
    assert_eq!(
        walk(&at, "send-unknown", AMINA, &["4", "0799999999"]).await[2],
        "END Sorry, 0799999999 is not registered with us."
    );

    assert_eq!(
        walk(
            &at,
            "air",
            AMINA,
            &["5", "2", "0711", "0711111111", "4", "10", "1"]
        )
        .await[1..],
        [
            "CON Buy Airtime\n1. My Number\n2. Another Number\n0. Back",
            "CON Buy Airtime\nPlease enter phone number as (+2547XXXXXXXX)",
            // The founding app's screens, "Buy Airtime" once; KES as everywhere else.
            "CON Buy Airtime\nPlease enter a valid phone number as (+2547XXXXXXXX)",
            "CON Buy Airtime\nPlease Enter Amount(KES)",
            "CON Buy Airtime\nYou can only buy airtime above KES 5.00. Please enter amount",
            "CON Purchase KES 10.00 worth of airtime for +254711111111\n1. Confirm\n2. Cancel",
            "END Please wait as we load your account.",
        ]
    );
    assert_eq!(
        walk(&at, "air-self", AMINA, &["5", "1", "20", "1"]).await[3],
        "CON Purchase KES 20.00 worth of airtime for +254700000001\n1. Confirm\n2. Cancel"
    );
    // 0 on the airtime menu goes back home, as in the founding app; another key is refused.
    assert_eq!(walk(&at, "air-back", AMINA, &["5", "0"]).await[2], HOME);
    assert_eq!(
        walk(&at, "air-wrong", AMINA, &["5", "9"]).await[2],
        "CON Invalid choice. Please try again.\nBuy Airtime\n1. My Number\n2. Another Number\n0. Back"
    );

    assert_eq!(
        walk(&at, "repay", AMINA, &["6", "2000", "100", "1"]).await[1..],
        [
            "CON Your loan balance is KES 1,200.00. How much are you repaying?",
            "CON You can repay at most KES 1,200.00.\nYour loan balance is KES 1,200.00. How much are you repaying?",
            "CON Repay KES 100.00 of your loan from your Wallet\n1. Confirm\n2. Cancel",
            "END You have repaid KES 100.00. Your loan balance is KES 1,100.00.",
        ]
    );
    assert_eq!(
        walk(&at, "repay-none", "0700000002", &["6"]).await[1],
        "END You have no loan to repay."
    );

    assert_eq!(
        walk(&at, "bal", AMINA, &["7"]).await[1],
        "END Please wait as we load your account\nYou will receive an SMS notification shortly"
    );
    assert_eq!(
        walk(&at, "call", AMINA, &["1"]).await[1],
        "END Please wait while we place your call."
    );
    assert_eq!(
        walk(&at, "bad", AMINA, &["9"]).await[1],
        "CON You have to choose a service.\n1. Please call me\n2. Deposit Money\n3. Withdraw Money\n4. Send Money\n5. Buy Airtime\n6. Repay Loan\n7. Check Balance"
    );

    // The effects went to the outbox with the right recipients (the founding app's airtime bug
    // sent airtime for another number to the caller).
    let effects: Vec<Effect> = common::outbox_items(&gw)
        .await
        .into_iter()
        .map(|i| i.effect)
        .collect();
    assert_eq!(effects.len(), 5, "{effects:?}");
    assert_eq!(
        effects[0],
        Effect::Sms {
            to: "254700000002".into(),
            message: "You have received KES 10.00 from Amina Wanjiru (+254700000001).".into()
        }
    );
    assert_eq!(
        effects[1],
        Effect::Airtime {
            to: "254711111111".into(),
            currency: "KES".into(),
            amount_cents: 1000
        }
    );
    assert_eq!(
        effects[2],
        Effect::Airtime {
            to: "254700000001".into(),
            currency: "KES".into(),
            amount_cents: 2000
        }
    );
    let Effect::Sms { to, message } = &effects[3] else {
        panic!("{effects:?}")
    };
    assert_eq!(to, "254700000001");
    assert!(
        message.starts_with("Confirmed. Your Wallet balance was KES 1,860.50 on "),
        "{message}"
    );
    assert_eq!(
        effects[4],
        Effect::Call {
            to: "254700000001".into()
        }
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_validates_and_stores_the_customer() {
    let sb = sandbox();
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    let new = "+254700000055";
    assert_eq!(
        // (An empty first input cannot be told from a retry of the first hop in AT's cumulative
        // `text`, so the empty name comes second.)
        walk(
            &at,
            "reg",
            new,
            &[
                "J4ne",
                "",
                "A very long name indeed",
                "Jane Doe",
                "",
                "Eldoret"
            ]
        )
        .await,
        [
            "CON Please enter your name",
            "CON Use letters, spaces and . ' - only.\nPlease enter your name",
            "CON Name not supposed to be empty.\nPlease enter your name",
            "CON Use at most 20 characters.\nPlease enter your name",
            "CON Enter your city",
            "CON City not supposed to be empty.\nEnter your city",
            "END You have been successfully registered.",
        ]
    );
    let store = &gw.registry().core().store;
    let customer = store
        .load_record("customers", "254700000055")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(customer["name"], "Jane Doe");
    assert_eq!(customer["city"], "Eldoret");
    assert_eq!(customer["phone"], "254700000055");
    assert_eq!(balance(store, "254700000055").await, 0);
    // The longest name registration accepts still fits the home menu on one screen.
    let longest = "+254700000056";
    let home = walk(&at, "reg2", longest, &["Abcdefghij Klmnopqrs", "Nairobi"]).await;
    assert_eq!(home[2], "END You have been successfully registered.");
    let menu = at.hop("reg2-home", CODE, longest, "").await;
    assert!(menu.ends_with("7. Check Balance"), "{menu}");
    assert!(!menu.contains("98. More"), "{menu}");
    // So is the home menu after a wrong choice.
    let bad = at.hop("reg2-home", CODE, longest, "9").await;
    assert!(
        bad.starts_with("CON You have to choose a service.\n1. Please call me")
            && bad.ends_with("7. Check Balance"),
        "{bad}"
    );

    // The name rule is the dental app's: a hyphen, an apostrophe or a dot is fine.
    for (i, name) in ["Mary-Anne", "O'Neil", "J. Kamau"].into_iter().enumerate() {
        let phone = format!("+25470000007{i}");
        let answers = walk(&at, &format!("reg-name-{i}"), &phone, &[name, "Nairobi"]).await;
        assert_eq!(
            answers[2], "END You have been successfully registered.",
            "{name}"
        );
        let home = at
            .hop(&format!("reg-name-{i}-home"), CODE, &phone, "")
            .await;
        assert_eq!(home, HOME.replace("Amina Wanjiru", name), "{name}");
    }
    gw.shutdown().await;
}

/// Retried confirming hops are answered the same and apply nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_confirmation_applies_once() {
    let sb = sandbox();
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    let store = gw.registry().core().store.clone();
    let answers = walk(&at, "once", AMINA, &["2", "50", "1"]).await;
    let again = at.hop("once", CODE, AMINA, "2*50*1").await;
    assert_eq!(again, answers[3]);
    assert_eq!(balance(&store, "254700000001").await, 255_000);
    assert_eq!(store.journal_entries().await.unwrap().len(), 1);
    gw.shutdown().await;
}

/// kill -9 right after confirmed transactions: after a restart every confirmed transaction is
/// there exactly once, and retrying the confirming hops answers the same without applying again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_after_confirmations_loses_nothing_and_applies_nothing_twice() {
    let sb = sandbox();
    let gw = sb.spawn();
    let at = At::new(gw.public);
    let dep = walk(&at, "k-dep", AMINA, &["2", "70", "1"]).await;
    let send = walk(&at, "k-send", AMINA, &["4", "0700000002", "30", "1"]).await;
    assert!(
        dep[3].starts_with("END Simulated deposit: KES 70.00"),
        "{dep:?}"
    );
    assert_eq!(
        send[4],
        "END We are sending KES 30.00 to Brian Otieno shortly."
    );
    // No waiting: a confirmation is on disk before it is sent.
    gw.kill9();

    let gw = sb.spawn();
    let at = At::new(gw.public);
    assert_eq!(at.hop("k-dep", CODE, AMINA, "2*70*1").await, dep[3]);
    assert_eq!(
        at.hop("k-send", CODE, AMINA, "4*0700000002*30*1").await,
        send[4]
    );
    let status = gw.signal("TERM");
    assert!(status.success());

    let store = common::store_of(&sb).await;
    let journal = store.journal_entries().await.unwrap();
    assert_eq!(journal.len(), 2, "{journal:?}");
    assert_eq!(journal[0].kind, "deposit");
    assert_eq!(journal[1].kind, "transfer");
    assert_eq!(
        balance(&store, "254700000001").await,
        250_000 + 7_000 - 3_000
    );
    assert_eq!(balance(&store, "254700000002").await, 5_000 + 3_000);
}

/// Amounts with 16 or more whole digits get the answer any amount over the cap gets, on every
/// amount prompt, and nothing moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_amounts_get_the_cap_answer() {
    let sb = sandbox();
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    let store = gw.registry().core().store.clone();
    let cap = "CON The most you can move at once is KES 70,000.00.";
    for (i, huge) in [
        "1234567890123456",
        "99999999999999999999.50",
        &"9".repeat(40),
    ]
    .into_iter()
    .enumerate()
    {
        let cases: [(&[&str], String); 5] = [
            (&["2"], format!("{cap}\nEnter amount you wish to deposit?")),
            (&["3"], format!("{cap}\nEnter amount you wish to withdraw?")),
            (
                &["4", "0700000002"],
                format!("{cap}\nEnter amount to send to Brian Otieno"),
            ),
            (
                &["5", "1"],
                format!("{cap}\nBuy Airtime\nPlease Enter Amount(KES)"),
            ),
            (
                &["6"],
                "CON You can repay at most KES 1,200.00.\nYour loan balance is KES 1,200.00. How much are you repaying?".to_string(),
            ),
        ];
        for (j, (path, want)) in cases.iter().enumerate() {
            let mut inputs = path.to_vec();
            inputs.push(huge);
            let answers = walk(&at, &format!("huge-{i}-{j}"), AMINA, &inputs).await;
            assert_eq!(answers.last().unwrap(), want, "{inputs:?}");
        }
    }
    assert_eq!(balance(&store, "254700000001").await, 250_000);
    assert!(store.journal_entries().await.unwrap().is_empty());
    gw.shutdown().await;
}

/// On an amount, phone or name prompt, 0 goes back and 00 goes home (neither is a valid answer
/// there); the founding texts are unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_and_home_from_input_prompts() {
    let sb = sandbox();
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    let airtime = "CON Buy Airtime\n1. My Number\n2. Another Number\n0. Back";
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["2", "0"], HOME),
        (vec!["2", "00"], HOME),
        (vec!["3", "0"], HOME),
        (vec!["4", "0"], HOME),
        (
            vec!["4", "0700000002", "0"],
            "CON Enter the phone number to send money to (like 0722122122)",
        ),
        (vec!["4", "0700000002", "00"], HOME),
        (vec!["5", "2", "0"], airtime),
        (vec!["5", "1", "0"], airtime),
        (vec!["5", "2", "00"], HOME),
        (vec!["6", "00"], HOME),
        // Back from a Confirm / Cancel screen returns to the amount.
        (
            vec!["2", "50", "0"],
            "CON Enter amount you wish to deposit?",
        ),
    ];
    for (i, (inputs, want)) in cases.iter().enumerate() {
        let answers = walk(&at, &format!("nav-{i}"), AMINA, inputs).await;
        assert_eq!(answers.last().unwrap(), want, "{inputs:?}");
    }
    // Registration: 00 starts it again; 0 on the first prompt is just not a name.
    let new = "+254700000066";
    assert_eq!(
        walk(&at, "nav-reg", new, &["0", "Jane", "00"]).await,
        [
            "CON Please enter your name",
            "CON Use letters, spaces and . ' - only.\nPlease enter your name",
            "CON Enter your city",
            "CON Please enter your name",
        ]
    );
    assert_eq!(
        walk(&at, "nav-reg2", new, &["Jane", "0"]).await[2],
        "CON Please enter your name"
    );
    gw.shutdown().await;
}

/// Times in texts are East Africa Time: the balance SMS at 00:46 UTC says 03:46 AM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_times_are_east_africa_time() {
    let sb = Sandbox::with_repo_flows(
        "[clock]\nfixed = \"2026-01-05T00:46:00Z\"\n[[routes]]\nservice_code = \"*384*303#\"\nflow = \"microfinance\"\n",
    );
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    walk(&at, "tz", AMINA, &["7"]).await;
    let effects: Vec<Effect> = common::outbox_items(&gw)
        .await
        .into_iter()
        .map(|i| i.effect)
        .collect();
    assert_eq!(
        effects,
        [Effect::Sms {
            to: "254700000001".into(),
            message: "Confirmed. Your Wallet balance was KES 2,500.00 on 05/01/26 at 03:46 AM Transaction cost 0.00".into()
        }]
    );
    gw.shutdown().await;
}
