//! The microfinance app (`*384*303#`) through the HTTP front: every screen, the ledger behind
//! it, the outbox effects it writes, retries, and a kill -9 right after confirmed transactions.

mod common;

use common::{At, Sandbox};
use ussd_gateway::outbox::{Effect, Item};
use ussd_gateway::store::Store;

const CODE: &str = "*384*303#";
const AMINA: &str = "+254700000001";
const HOME: &str = "CON Welcome to Nerd Microfinance, Amina Wanjiru\n1. Please call me\n2. Deposit Money\n3. Withdraw Money\n4. Send Money\n5. Buy Airtime\n6. Repay Loan\n7. Check Balance";

fn sandbox() -> Sandbox {
    Sandbox::with_repo_flows("[[routes]]\nservice_code = \"*384*303#\"\nflow = \"microfinance\"\n")
}

async fn walk(at: &At, session: &str, phone: &str, inputs: &[&str]) -> Vec<String> {
    at.walk(session, CODE, phone, inputs).await
}

fn balance(store: &Store, phone: &str) -> i64 {
    store.records().get("wallets", phone).unwrap().unwrap()["balance_cents"]
        .as_i64()
        .unwrap()
}

fn outbox(store: &Store) -> Vec<Item> {
    store
        .outbox()
        .unwrap()
        .documents()
        .unwrap()
        .into_iter()
        .map(|doc| serde_json::from_value(doc).unwrap())
        .collect()
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
    assert_eq!(balance(&store, "254700000001"), 260_050);

    assert_eq!(
        walk(&at, "dep-bad", AMINA, &["2", "10.555", "0", "80000", "abc"]).await[2..],
        [
            "CON Enter an amount like 100 or 100.50.\nEnter amount you wish to deposit?",
            "CON The amount must be more than zero.\nEnter amount you wish to deposit?",
            "CON The most you can move at once is KES 70,000.00.\nEnter amount you wish to deposit?",
            "CON Enter an amount like 100 or 100.50.\nEnter amount you wish to deposit?",
        ]
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
            "END We are sending your withdrawal of KES 600.00 shortly.",
        ]
    );
    assert_eq!(
        walk(&at, "wd-poor", AMINA, &["3", "5000", "1"]).await[3],
        "END Sorry, you don't have sufficient funds in your account."
    );
    assert_eq!(balance(&store, "254700000001"), 200_050);

    assert_eq!(
        walk(&at, "send", AMINA, &["4", "0700000002", "10", "1"]).await[1..],
        [
            "CON Enter the phone number to send money to (like 0722122122)",
            "CON Enter amount to send to Brian Otieno",
            "CON Send KES 10.00 to Brian Otieno (+254700000002)\n1. Confirm\n2. Cancel",
            "END We are sending KES 10.00 to Brian Otieno shortly.",
        ]
    );
    assert_eq!(balance(&store, "254700000002"), 6_000);
    assert_eq!(
        walk(&at, "send-self", AMINA, &["4", "+254700000001"]).await[2],
        "CON You cannot send money to yourself.\nEnter the phone number to send money to (like 0722122122)"
    );
    assert_eq!(
        walk(&at, "send-unknown", AMINA, &["4", "0799999999"]).await[2],
        "END Sorry, 0799999999 is not registered with us."
    );

    assert_eq!(
        walk(&at, "air", AMINA, &["5", "2", "0711111111", "4", "10", "1"]).await[1..],
        [
            "CON Buy Airtime\n1. My Number\n2. Another Number",
            "CON Buy Airtime\nPlease enter phone number as (+2547XXXXXXXX)",
            "CON Buy Airtime\nPlease Enter Amount(Ksh)",
            "CON You can only buy airtime above Ksh 5.00.\nBuy Airtime\nPlease Enter Amount(Ksh)",
            "CON Purchase KES 10.00 worth of airtime for +254711111111\n1. Confirm\n2. Cancel",
            "END Please wait as we load your account.",
        ]
    );
    assert_eq!(
        walk(&at, "air-self", AMINA, &["5", "1", "20", "1"]).await[3],
        "CON Purchase KES 20.00 worth of airtime for +254700000001\n1. Confirm\n2. Cancel"
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
        "CON You have to choose a service.\nWelcome to Nerd Microfinance, Amina Wanjiru\n1. Please call me\n2. Deposit Money\n3. Withdraw Money\n4. Send Money\n5. Buy Airtime\n6. Repay Loan\n98. More"
    );

    // The effects went to the outbox with the right recipients (the founding app's airtime bug
    // sent airtime for another number to the caller).
    let effects: Vec<Effect> = outbox(&store).into_iter().map(|i| i.effect).collect();
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
            "CON Use letters and spaces only.\nPlease enter your name",
            "CON Name not supposed to be empty.\nPlease enter your name",
            "CON Use at most 20 characters.\nPlease enter your name",
            "CON Enter your city",
            "CON City not supposed to be empty.\nEnter your city",
            "END You have been successfully registered.",
        ]
    );
    let store = &gw.registry().core().store;
    let customer = store
        .records()
        .get("customers", "254700000055")
        .unwrap()
        .unwrap();
    assert_eq!(customer["name"], "Jane Doe");
    assert_eq!(customer["city"], "Eldoret");
    assert_eq!(customer["phone"], "254700000055");
    assert_eq!(balance(store, "254700000055"), 0);
    // The longest name registration accepts still fits the home menu on one screen.
    let longest = "+254700000056";
    let home = walk(&at, "reg2", longest, &["Abcdefghij Klmnopqrs", "Nairobi"]).await;
    assert_eq!(home[2], "END You have been successfully registered.");
    let menu = at.hop("reg2-home", CODE, longest, "").await;
    assert!(menu.ends_with("7. Check Balance"), "{menu}");
    assert!(!menu.contains("98. More"), "{menu}");
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
    assert_eq!(balance(&store, "254700000001"), 255_000);
    assert_eq!(store.journal().unwrap().len(), 1);
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

    let cfg = sb.config();
    let store = Store::open(&cfg.store.data_dir, 16, 500).unwrap();
    let journal = store.journal().unwrap();
    assert_eq!(journal.len(), 2, "{journal:?}");
    assert_eq!(journal[0].kind, "deposit");
    assert_eq!(journal[1].kind, "transfer");
    assert_eq!(balance(&store, "254700000001"), 250_000 + 7_000 - 3_000);
    assert_eq!(balance(&store, "254700000002"), 5_000 + 3_000);
}
