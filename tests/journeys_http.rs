//! Journey analytics: every end record carries the screens its dialogue was shown with the time
//! spent on each (and nothing typed), each screen counts arrivals and exits, and
//! `GET /admin/journeys` tells per screen how many went on, ended, timed out or gave up there.

mod common;

use common::{At, Sandbox, eventually, metric};
use serde_json::{Value, json};

const ROUTES: &str = "[[routes]]\nservice_code = \"*123#\"\nflow = \"student\"\n\
                      [[routes]]\nservice_code = \"*675#\"\nflow = \"dental\"\n";
const AUTH: [(&str, &str); 1] = [("authorization", "Bearer test-token")];

async fn journeys(admin: &At, query: &str) -> Value {
    let a = admin
        .request("GET", &format!("/admin/journeys{query}"), &AUTH, "")
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    serde_json::from_str(&a.body).unwrap()
}

fn screen<'a>(j: &'a Value, name: &str) -> &'a Value {
    j["screens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["screen"] == name)
        .unwrap_or_else(|| panic!("no {name} in {j}"))
}

#[tokio::test]
async fn ended_dialogues_carry_their_journey_and_the_funnel_counts_each_screen() {
    let sb = Sandbox::with_repo_flows(ROUTES);
    let gw = sb.start().await;
    let at = At::new(gw.public_addr);
    let admin = At::new(gw.admin_addr);
    // One reads the current term's results (END), one gives up on the results menu, one
    // dials the dental app.
    at.walk("j1", "*123#", "254700000001", &["1", "1"]).await;
    at.walk("j2", "*123#", "254700000002", &["1"]).await;
    at.walk("j3", "*675#", "254700000001", &[]).await;
    let ended = admin
        .request(
            "POST",
            "/admin/dialogues/end",
            &AUTH,
            json!({ "session": "http:j2" }).to_string(),
        )
        .await;
    assert_eq!(ended.status, 200, "{ended:?}");

    // The ends reach the store with the next commit (`flush_every_ms`).
    assert!(
        eventually(10, || {
            let admin = admin.clone();
            async move { journeys(&admin, "?route=*123%23").await["dialogues"] == 2 }
        })
        .await,
        "{}",
        journeys(&admin, "?route=*123%23").await
    );
    let j = journeys(&admin, "?route=*123%23").await;
    let home = screen(&j, "home");
    assert_eq!(
        (home["arrived"].as_u64(), home["went_on"].as_u64()),
        (Some(2), Some(2)),
        "{home}"
    );
    let results = screen(&j, "results");
    assert_eq!(
        (
            results["arrived"].as_u64(),
            results["went_on"].as_u64(),
            results["aborted"].as_u64()
        ),
        (Some(2), Some(1), Some(1)),
        "{results}"
    );
    assert!(results["median_ms"].is_u64(), "{results}");
    let current = screen(&j, "current_results");
    assert_eq!(
        (current["arrived"].as_u64(), current["ended"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(
        j["screens"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["screen"] != "no_profile")
    );
    // The most recent, with their journeys and masked numbers.
    let recent = j["recent"].as_array().unwrap();
    assert_eq!(recent.len(), 2, "{j}");
    let walked = recent.iter().find(|r| r["reason"] == "end").unwrap();
    let screens: Vec<&str> = walked["journey"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["screen"].as_str().unwrap())
        .collect();
    assert_eq!(screens, ["home", "results", "current_results"]);
    assert!(
        !j.to_string().contains("254700000001"),
        "an unmasked number: {j}"
    );
    // Nothing ended yet since a time in the future; a bad `since` is refused.
    let later = journeys(&admin, "?since=2999-01-01T00:00:00Z").await;
    assert_eq!(later["dialogues"], 0);
    let bad = admin
        .request("GET", "/admin/journeys?since=yesterday", &AUTH, "")
        .await;
    assert_eq!(bad.status, 400);

    // The end record itself carries the journey (exported as kept).
    let export = admin
        .request("GET", "/admin/export/ended", &AUTH, "")
        .await
        .body;
    let record: Value = export
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|r| r["session"] == "http:j1")
        .unwrap_or_else(|| panic!("no j1 in {export}"));
    let steps = record["journey"].as_array().unwrap();
    assert_eq!(steps.len(), 3, "{record}");
    assert!(steps.iter().all(|s| s["ms"].is_u64()), "{record}");

    // The counters a funnel is drawn from.
    let admin_addr = gw.admin_addr;
    assert_eq!(
        metric(
            admin_addr,
            "ussd_screen_arrivals_total{route=\"*123#\",screen=\"home\"}"
        )
        .await,
        2.0
    );
    assert_eq!(
        metric(
            admin_addr,
            "ussd_screen_exits_total{route=\"*123#\",screen=\"results\",outcome=\"abort\"}"
        )
        .await,
        1.0
    );
    gw.shutdown().await;
}
