//! The environment and secret-file layers, rule by rule, on real files in a temporary folder.

use crate::config::{Config, ConfigError};

fn load(toml: &str, files: &[(&str, &str)], env: &[(&str, &str)]) -> Result<Config, String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gateway.toml"), toml).unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                v.replace("$DIR", &dir.path().display().to_string()),
            )
        })
        .collect();
    Config::load_with(&dir.path().join("gateway.toml"), &env).map_err(|e| match e {
        ConfigError::Read { .. } => panic!("{e}"),
        ConfigError::Parse { message, .. } | ConfigError::Invalid { message, .. } => message,
    })
}

const BINDS: &str = "[[smpp.binds]]\nname = \"a\"\nhost = \"h\"\nsystem_id = \"ga\"\n\
                     [[smpp.binds]]\nname = \"b\"\nhost = \"h\"\nsystem_id = \"gb\"\n";

#[test]
fn section_keys_nested_tables_and_top_level_keys() {
    let c = load(
        "",
        &[],
        &[
            ("USSD_GATEWAY__PUBLIC__LISTEN", "0.0.0.0:8081"),
            ("USSD_GATEWAY__STORE__FLUSH_EVERY_MS", "20"),
            ("USSD_GATEWAY__AFRICASTALKING__RETRY__MAX_ATTEMPTS", "3"),
            ("USSD_GATEWAY__SEED_TIMEZONE", "Africa/Nairobi"),
            ("USSD_GATEWAY__LIMITS__BUSY_TEXT", "Busy; try later"),
            (
                "USSD_GATEWAY__PUBLIC__ALLOW_FROM",
                "[\"10.0.0.0/8\", \"192.0.2.0/24\"]",
            ),
            // Other variables are not ours.
            ("USSD_GATEWAY_CONFIG", "elsewhere.toml"),
            ("PATH", "/usr/bin"),
        ],
    )
    .unwrap();
    assert_eq!(c.public.listen.to_string(), "0.0.0.0:8081");
    assert_eq!(c.store.flush_every_ms, 20);
    assert_eq!(c.africastalking.retry.max_attempts, 3);
    assert_eq!(c.seed_timezone, "Africa/Nairobi");
    assert_eq!(c.limits.busy_text, "Busy; try later");
    assert_eq!(c.public.allow_from.len(), 2);
    assert_eq!(c.overrides.len(), 6);
}

#[test]
fn arrays_of_tables_by_index_and_one_past_the_end_adds_one() {
    let c = load(
        BINDS,
        &[],
        &[
            ("USSD_GATEWAY__SMPP__BINDS__1__PASSWORD", "bpw"),
            ("USSD_GATEWAY__SMPP__BINDS__2__NAME", "c"),
            ("USSD_GATEWAY__SMPP__BINDS__2__HOST", "h"),
            ("USSD_GATEWAY__SMPP__BINDS__2__SYSTEM_ID", "gc"),
        ],
    )
    .unwrap();
    assert_eq!(c.smpp.binds[0].password, "");
    assert_eq!(c.smpp.binds[1].password, "bpw");
    assert_eq!(c.smpp.binds[2].name, "c");
    let gap = load(
        BINDS,
        &[],
        &[("USSD_GATEWAY__SMPP__BINDS__3__PASSWORD", "x")],
    )
    .unwrap_err();
    assert!(
        gap.contains("USSD_GATEWAY__SMPP__BINDS__3__PASSWORD") && gap.contains("gap"),
        "{gap}"
    );
    // Tables added in numeric order: 10 after 2, not after 1.
    let mut env = Vec::new();
    let names: Vec<String> = (2..=10)
        .map(|i| format!("USSD_GATEWAY__ROUTES__{i}__SERVICE_CODE"))
        .collect();
    let codes: Vec<String> = (2..=10).map(|i| format!("*{}#", 100 + i)).collect();
    let flows: Vec<String> = (2..=10)
        .map(|i| format!("USSD_GATEWAY__ROUTES__{i}__FLOW"))
        .collect();
    for i in 0..names.len() {
        env.push((names[i].as_str(), codes[i].as_str()));
        env.push((flows[i].as_str(), "f"));
    }
    let two = "[[routes]]\nservice_code = \"*1#\"\nflow = \"f\"\n\
               [[routes]]\nservice_code = \"*2#\"\nflow = \"f\"\n";
    let c = load(two, &[], &env).unwrap();
    assert_eq!(c.routes.len(), 11);
    assert_eq!(c.routes[10].service_code, "*110#");
}

#[test]
fn text_keys_take_text_even_when_it_looks_like_a_number_or_a_date() {
    let c = load(
        BINDS,
        &[],
        &[
            ("USSD_GATEWAY__SMPP__BINDS__0__PASSWORD", "12345678"),
            ("USSD_GATEWAY__SMPP__BINDS__1__PASSWORD", "true"),
            ("USSD_GATEWAY__NUMBERS__DEFAULT_COUNTRY_CODE", "255"),
            ("USSD_GATEWAY__CLOCK__FIXED", "2026-01-05T08:00:00+10:00"),
        ],
    )
    .unwrap();
    assert_eq!(c.smpp.binds[0].password, "12345678");
    assert_eq!(c.smpp.binds[1].password, "true");
    assert_eq!(c.numbers.default_country_code, "255");
    assert_eq!(c.clock.fixed.as_deref(), Some("2026-01-05T08:00:00+10:00"));
    // A quoted value keeps its quotes: the variable's text is the value.
    let c = load(
        "",
        &[],
        &[("USSD_GATEWAY__ADMIN__TOKEN", "\"quoted-long-token\"")],
    )
    .unwrap();
    assert_eq!(c.admin.token.as_deref(), Some("\"quoted-long-token\""));
    let bad = load("", &[], &[("USSD_GATEWAY__STORE__CACHE_MB", "lots")]).unwrap_err();
    assert!(bad.contains("USSD_GATEWAY__STORE__CACHE_MB"), "{bad}");
}

#[test]
fn secrets_from_files_named_in_the_file_or_the_environment() {
    let c = load(
        "[admin]\ntoken_file = \"admin_token\"\n",
        &[
            ("admin_token", "a-token-read-from-a-file\n"),
            ("pw", "bpw\r\n"),
        ],
        &[("USSD_GATEWAY__SMPP__BINDS__0__PASSWORD_FILE", "$DIR/pw")],
    )
    .map(|c| (c.admin.token.clone(), c.overrides.clone()));
    // No bind in the file: the variable makes one, which then lacks its name.
    let e = c.unwrap_err();
    assert!(
        e.contains("USSD_GATEWAY__SMPP__BINDS__0__PASSWORD_FILE"),
        "{e}"
    );
    let c = load(
        &format!("[admin]\ntoken_file = \"admin_token\"\n{BINDS}"),
        &[
            ("admin_token", "a-token-read-from-a-file\n"),
            ("pw", "bpw\r\n"),
        ],
        &[("USSD_GATEWAY__SMPP__BINDS__1__PASSWORD_FILE", "pw")],
    )
    .unwrap();
    assert_eq!(c.admin.token.as_deref(), Some("a-token-read-from-a-file"));
    assert_eq!(c.smpp.binds[1].password, "bpw");
    let shown: Vec<String> = c.overrides.iter().map(ToString::to_string).collect();
    assert!(
        shown.contains(
            &"admin.token = *** (file admin_token, named by token_file in the file)".into()
        ),
        "{shown:?}"
    );
    assert!(
        shown.contains(
            &"smpp.binds[1].password = *** (file pw, named by USSD_GATEWAY__SMPP__BINDS__1__PASSWORD_FILE)"
                .into()
        ),
        "{shown:?}"
    );
}

#[test]
fn the_environment_wins_over_the_file_and_a_key_is_given_one_way_only() {
    let c = load(
        "[admin]\ntoken_file = \"admin_token\"\n",
        &[("admin_token", "the-file-token-is-long\n")],
        &[("USSD_GATEWAY__ADMIN__TOKEN", "the-environment-token")],
    )
    .unwrap();
    assert_eq!(c.admin.token.as_deref(), Some("the-environment-token"));
    let both = load(
        "[admin]\ntoken = \"x\"\ntoken_file = \"admin_token\"\n",
        &[("admin_token", "y")],
        &[],
    )
    .unwrap_err();
    assert!(both.contains("admin.token and admin.token_file"), "{both}");
    let both = load(
        "",
        &[("admin_token", "y")],
        &[
            ("USSD_GATEWAY__ADMIN__TOKEN", "x"),
            ("USSD_GATEWAY__ADMIN__TOKEN_FILE", "admin_token"),
        ],
    )
    .unwrap_err();
    assert!(both.contains("USSD_GATEWAY__ADMIN__TOKEN"), "{both}");
    let missing = load("[admin]\ntoken_file = \"nowhere\"\n", &[], &[]).unwrap_err();
    assert!(
        missing.contains("admin.token_file") && missing.contains("nowhere"),
        "{missing}"
    );
}

#[test]
fn names_that_cannot_be_a_key_are_refused() {
    for name in [
        "USSD_GATEWAY__",
        "USSD_GATEWAY__PUBLIC____LISTEN",
        "USSD_GATEWAY__SMPP__BINDS__0",
        "USSD_GATEWAY__STORE__FLUSH_EVERY_MS__X",
    ] {
        let e = load("[store]\nflush_every_ms = 50\n", &[], &[(name, "1")]).unwrap_err();
        assert!(e.contains(name), "{name}: {e}");
    }
}

#[test]
fn without_overrides_file_errors_keep_their_line() {
    let e = load("[store]\nflush_every_ms = \"soon\"\n", &[], &[]).unwrap_err();
    assert!(e.contains("line 2"), "{e}");
}
