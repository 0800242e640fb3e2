//! The microfinance and dental apps answer over a direct SMPP bind with exactly the texts they
//! give over HTTP (the student app is covered in smpp_sim.rs).

mod common;

use common::{At, Sandbox};
use std::time::Duration;

async fn compare(code: &str, paths: &[&[&str]], extra: &str) {
    let sim = common::operator_sim().await;
    let sb = Sandbox::with_repo_flows(&format!(
        "{extra}[[routes]]\nservice_code = \"*384*303#\"\nflow = \"microfinance\"\n[[routes]]\nservice_code = \"*675#\"\nflow = \"dental\"\n[[smpp.binds]]\nname = \"op\"\nhost = \"127.0.0.1\"\nport = {}\nsystem_id = \"gw\"\npassword = \"pw\"\nreconnect_cap_ms = 500\n",
        sim.addr().port()
    ));
    let gw = sb.start().await;
    assert!(sim.wait_bound(Duration::from_secs(10)).await);
    let at = At::new(gw.public_addr);
    for (i, path) in paths.iter().enumerate() {
        // HTTP as the second sample subscriber, SMPP as the first, so that money moved on one
        // front does not change what the other shows; the two differ only by name.
        let mut http = vec![at.hop(&format!("h{i}"), code, "+254700000002", "").await];
        for n in 1..=path.len() {
            http.push(
                at.hop(
                    &format!("h{i}"),
                    code,
                    "+254700000002",
                    &path[..n].join("*"),
                )
                .await,
            );
        }
        let (mut d, first) = sim.dial("254700000001", code).await.unwrap();
        let mut smpp = vec![first];
        for input in *path {
            smpp.push(d.reply(input).await.unwrap());
        }
        assert_eq!(http.len(), smpp.len());
        for (h, s) in http.iter().zip(&smpp) {
            let prefix = if s.end { "END " } else { "CON " };
            let s = format!("{prefix}{}", s.text);
            // The two subscribers differ only by name and number.
            let h = h
                .replace("Brian Otieno", "Amina Wanjiru")
                .replace("Mary", "John");
            assert_eq!(h, s, "{code} {path:?}");
        }
    }
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn microfinance_over_smpp() {
    compare(
        "*384*303#",
        &[&["2", "10", "2"], &["3", "99999"], &["5", "1"], &["9"]],
        "",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dental_over_smpp() {
    compare(
        "*675#",
        &[&["2", "1"], &["2", "3", "1", "2"], &["5"]],
        "[clock]\nfixed = \"2026-01-05T08:00:00+10:00\"\n",
    )
    .await;
}
