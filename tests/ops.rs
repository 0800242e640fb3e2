//! What the engineer who deploys and runs the gateway checks: the build it runs (`--version`,
//! `ussd_build_info`), configuration from the environment and from secret files, the command
//! line (enums listed in `--help`, shell completions), JSON logs grouped by dialogue, and the
//! packaging files (compose, the systemd unit) as far as they can be checked without Docker.

mod common;

use common::{At, Sandbox};
use std::path::Path;
use std::process::{Command, Output};

fn gateway() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ussd-gateway"));
    // What the developer's shell may have set must not leak into the child.
    for (k, _) in std::env::vars() {
        if k.starts_with("USSD_GATEWAY") || k == "AT_USERNAME" || k == "AT_API_KEY" {
            c.env_remove(k);
        }
    }
    c
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The commit `git rev-parse` gives for the repository, when git and the repository are there.
fn head_commit() -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn version_names_the_commit() {
    let out = gateway().arg("--version").output().unwrap();
    let (stdout, _) = text(&out);
    assert!(out.status.success());
    assert!(
        stdout.starts_with(&format!("ussd-gateway {} (", env!("CARGO_PKG_VERSION"))),
        "{stdout}"
    );
    let commit = head_commit().unwrap_or_else(|| "unknown".into());
    assert!(
        stdout.contains(&format!("commit {commit}")),
        "{stdout} (HEAD is {commit})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_info_carries_version_and_commit() {
    let sb = Sandbox::new("", &[]);
    let gw = sb.spawn();
    let metrics = At::new(gw.admin).request("GET", "/metrics", &[], "").await;
    let commit = head_commit().unwrap_or_else(|| "unknown".into());
    let line = metrics
        .body
        .lines()
        .find(|l| l.starts_with("ussd_build_info{"))
        .unwrap_or_else(|| panic!("no ussd_build_info in {}", metrics.body));
    assert!(
        line.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))),
        "{line}"
    );
    assert!(line.contains(&format!("commit=\"{commit}\"")), "{line}");
    assert!(line.ends_with(" 1"), "{line}");
}

/// `ussd-gateway check` on `config` (none: the default or `USSD_GATEWAY_CONFIG`) with `envs`.
fn check(config: Option<&Path>, envs: &[(&str, &str)]) -> (i32, String, String) {
    let mut c = gateway();
    c.arg("check");
    if let Some(path) = config {
        c.arg("--config").arg(path);
    }
    let out = c.envs(envs.iter().copied()).output().unwrap();
    let (stdout, stderr) = text(&out);
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

const BIND: &str = "[[smpp.binds]]\nname = \"op\"\nhost = \"127.0.0.1\"\nport = 1\nsystem_id = \"gw\"\n\
                    [smpp.listener]\nlisten = \"127.0.0.1:0\"\n\
                    [[smpp.listener.peers]]\nsystem_id = \"agg\"\n";

#[test]
fn check_shows_where_each_overridden_value_came_from() {
    let sb = Sandbox::new(BIND, &[]);
    let secret = sb.dir.path().join("peer_password");
    std::fs::write(&secret, "filepw\n").unwrap();
    let secret = secret.to_str().unwrap();
    let (code, stdout, stderr) = check(
        Some(&sb.config_path()),
        &[
            ("USSD_GATEWAY__STORE__FLUSH_EVERY_MS", "20"),
            ("USSD_GATEWAY__USSD__UNKNOWN_SERVICE_TEXT", "No such code"),
            // A password of digits stays text; the listener's peer password from a file.
            ("USSD_GATEWAY__SMPP__BINDS__0__PASSWORD", "12345678"),
            (
                "USSD_GATEWAY__SMPP__LISTENER__PEERS__0__PASSWORD_FILE",
                secret,
            ),
            ("USSD_GATEWAY__PUBLIC__ALLOW_FROM", "[\"10.0.0.0/8\"]"),
        ],
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    for line in [
        "store.flush_every_ms = 20 (USSD_GATEWAY__STORE__FLUSH_EVERY_MS)",
        "ussd.unknown_service_text = No such code (USSD_GATEWAY__USSD__UNKNOWN_SERVICE_TEXT)",
        "smpp.binds[0].password = *** (USSD_GATEWAY__SMPP__BINDS__0__PASSWORD)",
        "public.allow_from = [\"10.0.0.0/8\"] (USSD_GATEWAY__PUBLIC__ALLOW_FROM)",
    ] {
        assert!(stdout.contains(line), "{line:?} not in:\n{stdout}");
    }
    assert!(
        stdout.contains(&format!(
            "smpp.listener.peers[0].password = *** (file {secret}, named by \
             USSD_GATEWAY__SMPP__LISTENER__PEERS__0__PASSWORD_FILE)"
        )),
        "{stdout}"
    );
    assert!(!stdout.contains("12345678") && !stdout.contains("filepw"));
    // Without the environment the file alone lacks the peer's password.
    let (code, _, stderr) = check(Some(&sb.config_path()), &[]);
    assert_eq!(code, 64, "{stderr}");
    assert!(stderr.contains("password"), "{stderr}");
}

#[test]
fn a_bad_value_from_the_environment_names_its_variable() {
    let sb = Sandbox::new("", &[]);
    for (var, value, says) in [
        (
            "USSD_GATEWAY__STORE__FLUSH_EVERY_MS",
            "5000",
            "store.flush_every_ms",
        ),
        (
            "USSD_GATEWAY__STORE__FLUSH_EVERY_MS",
            "soon",
            "store.flush_every_ms",
        ),
        ("USSD_GATEWAY__PUBLIC__LISEN", "127.0.0.1:1", "lisen"),
        ("USSD_GATEWAY__ROUTES__7__FLOW", "x", "routes"),
        (
            "USSD_GATEWAY__ADMIN__TOKEN_FILE",
            "/nonexistent/token",
            "/nonexistent/token",
        ),
    ] {
        let (code, stdout, stderr) = check(Some(&sb.config_path()), &[(var, value)]);
        assert_eq!(code, 64, "{var}={value}: {stdout}{stderr}");
        assert!(
            stderr.contains(var) && stderr.contains(says),
            "{var}={value}: {stderr}"
        );
    }
}

#[test]
fn the_config_file_from_the_environment() {
    let sb = Sandbox::new("", &[]);
    let path = sb.config_path();
    let (code, stdout, stderr) = check(None, &[("USSD_GATEWAY_CONFIG", path.to_str().unwrap())]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("{}: ok", path.display())),
        "{stdout}"
    );
    // --config wins over the environment, and so does the file given without --config.
    let (code, stdout, _) = check(
        Some(&path),
        &[("USSD_GATEWAY_CONFIG", "/nonexistent/gateway.toml")],
    );
    assert_eq!(code, 0, "{stdout}");
    let out = gateway()
        .arg("check")
        .arg(&path)
        .env("USSD_GATEWAY_CONFIG", "/nonexistent/gateway.toml")
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
}

#[test]
fn the_older_variables_still_work_and_show() {
    let sb = Sandbox::new("", &[]);
    // The sandbox's file sets admin.token; a file without one takes it from the environment.
    let text = std::fs::read_to_string(sb.config_path())
        .unwrap()
        .replace("token = \"test-token\"\n", "");
    std::fs::write(sb.config_path(), text).unwrap();
    let (code, stdout, stderr) = check(
        Some(&sb.config_path()),
        &[
            ("USSD_GATEWAY_ADMIN_TOKEN", "a-long-admin-token-from-env"),
            (
                "USSD_GATEWAY_PUBLIC_SECRET",
                "a-long-public-secret-from-env",
            ),
            ("AT_USERNAME", "sandbox"),
            ("AT_API_KEY", "an-api-key"),
        ],
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    for line in [
        "admin.token = *** (USSD_GATEWAY_ADMIN_TOKEN)",
        "public.shared_secret = *** (USSD_GATEWAY_PUBLIC_SECRET)",
        "africastalking.username = sandbox (AT_USERNAME)",
        "africastalking.api_key = *** (AT_API_KEY)",
    ] {
        assert!(stdout.contains(line), "{line:?} not in:\n{stdout}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_served_gateway_runs_on_the_environment_and_secret_files() {
    let sim = common::operator_sim().await;
    let sb = Sandbox::new(
        &format!(
            "[[smpp.binds]]\nname = \"op\"\nhost = \"127.0.0.1\"\nport = {}\nsystem_id = \"gw\"\n",
            sim.addr().port()
        ),
        &[],
    );
    let token = sb.dir.path().join("admin_token");
    std::fs::write(&token, "a-token-from-a-secret-file\n").unwrap();
    let (gw, _log) = sb.spawn_logged_with(
        "warn",
        &[],
        &[
            (
                "USSD_GATEWAY__USSD__UNKNOWN_SERVICE_TEXT",
                "No such code here",
            ),
            ("USSD_GATEWAY__ADMIN__TOKEN_FILE", token.to_str().unwrap()),
            ("USSD_GATEWAY__SMPP__BINDS__0__PASSWORD", "pw"),
        ],
    );
    // The bind's password came from the environment: the operator accepts it.
    assert!(sim.wait_bound(std::time::Duration::from_secs(10)).await);
    let at = At::new(gw.public);
    assert_eq!(
        at.hop("s1", "*999#", "+254700000001", "").await,
        "END No such code here"
    );
    let admin = At::new(gw.admin);
    let status = |token: &'static str| {
        let admin = admin.clone();
        async move {
            admin
                .request("GET", "/admin/status", &[("authorization", token)], "")
                .await
                .status
        }
    };
    assert_eq!(status("Bearer a-token-from-a-secret-file").await, 200);
    assert_eq!(status("Bearer test-token").await, 401);
}

#[test]
fn export_lists_its_kinds_and_formats() {
    let out = gateway().args(["export", "--help"]).output().unwrap();
    let (help, _) = text(&out);
    assert!(out.status.success());
    for value in ["ended", "calls", "outbox", "journal", "jsonl", "csv"] {
        assert!(help.contains(value), "{value} not in:\n{help}");
    }
    assert!(
        help.contains("possible values") || help.contains("Possible values"),
        "{help}"
    );
    // A wrong value is refused by the command line, with the values it takes.
    let out = gateway().args(["export", "sessions"]).output().unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("ended, calls, outbox, journal"), "{stderr}");
    let out = gateway()
        .args(["export", "ended", "--format", "xml"])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("jsonl, csv"), "{stderr}");
}

#[test]
fn export_still_writes_records() {
    let sb = Sandbox::new("", &[]);
    for format in ["jsonl", "json", "csv"] {
        let out = gateway()
            .args(["export", "ended", "--format", format, "--config"])
            .arg(sb.config_path())
            .output()
            .unwrap();
        let (_, stderr) = text(&out);
        assert!(out.status.success(), "{format}: {stderr}");
        assert!(stderr.contains("0 records"), "{format}: {stderr}");
    }
}

#[test]
fn bash_completions() {
    let out = gateway().args(["completions", "bash"]).output().unwrap();
    let (script, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        script.contains("ussd-gateway") && script.contains("complete -F"),
        "{script}"
    );
    for word in [
        "serve",
        "check",
        "export",
        "journal",
        "completions",
        "--config",
    ] {
        assert!(script.contains(word), "{word} not in the script");
    }
    // bash itself reads it without a syntax error.
    let mut bash = Command::new("bash")
        .arg("-n")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("bash");
    use std::io::Write;
    bash.stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(bash.wait().unwrap().success());
}

/// Every whole line of a JSON log, parsed (a line that is not JSON fails the test); a last
/// line still being written is left out.
fn json_lines(log: &str) -> Vec<serde_json::Value> {
    let whole = log.rfind('\n').map_or("", |end| &log[..end]);
    whole
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect()
}

/// A field of a JSON log line: at the top (flattened) or under `fields`.
fn field<'a>(line: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    line.get(name)
        .or_else(|| line.get("fields").and_then(|f| f.get(name)))
        .and_then(|v| v.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_group_a_dialogues_lines_by_its_hop_span() {
    // An upstream that refuses connections: its dialogue fails, logged at ERROR twice (the
    // upstream call, the actor), both inside the hop.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let sb = Sandbox::with_repo_flows(&format!(
        "[[routes]]\nservice_code = \"*123#\"\nflow = \"student\"\n\
         [[routes]]\nservice_code = \"*500#\"\nupstream = \"http://127.0.0.1:{port}/ussd\"\n"
    ));
    let (gw, log) = sb.spawn_logged_with(
        "info,ussd_gateway::session=debug",
        &["--log-format", "json"],
        &[],
    );
    let at = At::new(gw.public);
    let end = at
        .walk("s-student", "*123#", "+254700000001", &["1", "1"])
        .await;
    assert!(end.last().unwrap().starts_with("END"), "{end:?}");
    let failed = at.hop("s-upstream", "*500#", "+254700000002", "").await;
    assert!(failed.starts_with("END"), "{failed}");
    // The actor's own line (the upstream's line, written first, contains "app failed" too).
    assert!(
        log.wait_for("\"app failed; dialogue ends\"", 10).await,
        "{}",
        log.text()
    );
    assert!(log.wait_for("dialogue ended", 10).await, "{}", log.text());
    let lines = json_lines(&log.text());
    let hop_span = |line: &serde_json::Value| {
        let span = line.get("span")?;
        (span.get("name")?.as_str()? == "hop").then(|| span.clone())
    };
    // The upstream dialogue: the upstream's error and the actor's, in one hop span carrying
    // the front, the route and the log id the actor's own line names.
    let actor = lines
        .iter()
        .find(|l| field(l, "message").is_some_and(|m| m.starts_with("app failed")))
        .unwrap();
    let session = field(actor, "session").unwrap();
    let span = hop_span(actor).unwrap_or_else(|| panic!("no hop span: {actor}"));
    assert_eq!(span["front"], "http", "{span}");
    assert_eq!(span["dialect"], "africastalking", "{span}");
    assert_eq!(span["route"], "*500#", "{span}");
    assert_eq!(span["session"], session, "{span}");
    let upstream = lines
        .iter()
        .find(|l| field(l, "message").is_some_and(|m| m.starts_with("upstream app failed")))
        .unwrap();
    assert_eq!(hop_span(upstream).unwrap(), span, "{upstream}");
    // The student dialogue's END: its own route and log id.
    let ended = lines
        .iter()
        .find(|l| field(l, "message") == Some("dialogue ended"))
        .unwrap();
    let student = hop_span(ended).unwrap_or_else(|| panic!("no hop span: {ended}"));
    assert_eq!(student["route"], "*123#", "{student}");
    assert_eq!(student["front"], "http", "{student}");
    assert_ne!(student["session"], span["session"]);
    assert_eq!(student["session"].as_str().unwrap().len(), 12, "{student}");
    // Lines outside any hop (start-up) are JSON too, without a hop span, and nothing is
    // coloured.
    assert!(lines.iter().any(|l| hop_span(l).is_none()));
    assert!(!log.text().contains('\u{1b}'));
}

#[test]
fn the_log_format_from_the_config_and_a_wrong_one_refused() {
    let sb = Sandbox::new("[log]\nformat = \"json\"\n", &[]);
    let (code, stdout, stderr) = check(Some(&sb.config_path()), &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let (code, _, stderr) = check(
        Some(&sb.config_path()),
        &[("USSD_GATEWAY__LOG__FORMAT", "xml")],
    );
    assert_eq!(code, 64, "{stderr}");
    assert!(stderr.contains("USSD_GATEWAY__LOG__FORMAT"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_from_the_config() {
    let sb = Sandbox::new("[log]\nformat = \"json\"\n", &[]);
    let (gw, log) = sb.spawn_logged_with("info", &[], &[]);
    At::new(gw.public)
        .hop("s1", "*999#", "+254700000001", "")
        .await;
    assert!(
        log.wait_for("unknown service code", 10).await,
        "{}",
        log.text()
    );
    let lines = json_lines(&log.text());
    assert!(
        lines
            .iter()
            .any(|l| field(l, "message") == Some("unknown service code"))
    );
}

/// The keys of config/gateway.toml whose line (or `[[table]]` line) has a comment just above it
/// that starts `# Not the default`.
fn marked_exceptions(text: &str) -> Vec<String> {
    let mut section = String::new();
    let mut previous = "";
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let marked = previous.starts_with("# Not the default");
        if let Some(name) = line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]")) {
            if marked {
                out.push(name.to_string());
            }
            section = name.to_string();
        } else if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
        } else if let Some((key, _)) = line.split_once('=')
            && !line.starts_with('#')
            && marked
        {
            let key = key.trim();
            out.push(if section.is_empty() {
                key.to_string()
            } else {
                format!("{section}.{key}")
            });
        }
        if !line.is_empty() {
            previous = line;
        }
    }
    out
}

/// Every leaf key of a table (arrays of tables count as one key), dotted.
fn leaf_keys(table: &toml::Table, at: &str, out: &mut Vec<String>) {
    for (k, v) in table {
        let path = if at.is_empty() {
            k.clone()
        } else {
            format!("{at}.{k}")
        };
        match v {
            toml::Value::Table(t) => leaf_keys(t, &path, out),
            _ => out.push(path),
        }
    }
}

fn without(table: &toml::Table, path: &str) -> toml::Table {
    let mut table = table.clone();
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts.pop().unwrap();
    let mut t = &mut table;
    for p in parts {
        t = t.get_mut(p).and_then(|v| v.as_table_mut()).unwrap();
    }
    t.remove(last);
    table
}

#[test]
fn the_sample_config_shows_every_default_or_marks_the_exception() {
    use ussd_gateway::config::Config;
    let text = std::fs::read_to_string(repo("config/gateway.toml")).unwrap();
    let table: toml::Table = toml::from_str(&text).unwrap();
    let whole = format!("{:?}", Config::parse(&text).unwrap());
    let exceptions = marked_exceptions(&text);
    let mut keys = Vec::new();
    leaf_keys(&table, "", &mut keys);
    let mut wrong = Vec::new();
    for key in &keys {
        let rest = toml::to_string(&without(&table, key)).unwrap();
        let is_default = format!("{:?}", Config::parse(&rest).unwrap()) == whole;
        let marked = exceptions.contains(key);
        if is_default == marked {
            wrong.push(format!(
                "{key}: {}",
                if marked {
                    "marked `# Not the default` but shows the default"
                } else {
                    "not the default and not marked `# Not the default`"
                }
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "config/gateway.toml:\n{}",
        wrong.join("\n")
    );
    assert!(keys.len() > 30, "{keys:?}");
}

/// A compose file's service, as parsed.
fn service<'a>(compose: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    compose["services"]
        .get(name)
        .unwrap_or_else(|| panic!("no service {name}"))
}

/// The `host:container[:ro]` bind mounts and named volumes of a service.
fn mounts(service: &serde_json::Value) -> Vec<(String, String)> {
    service["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let parts: Vec<&str> = v.as_str().unwrap().split(':').collect();
            (parts[0].to_string(), parts[1].to_string())
        })
        .collect()
}

/// The host path a container path of `service` is mounted from (bind mounts only).
fn host_path(service: &serde_json::Value, container: &str) -> Option<std::path::PathBuf> {
    mounts(service).into_iter().find_map(|(host, target)| {
        let rest = container.strip_prefix(&target)?;
        let host = repo(host.strip_prefix("./")?);
        match rest.strip_prefix('/') {
            _ if rest.is_empty() => Some(host),
            Some(rest) => Some(host.join(rest)),
            None => None,
        }
    })
}

#[test]
fn compose_has_three_nodes_on_redis_behind_a_balancer_with_prometheus_and_grafana_provisioned() {
    let mut yaml: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(repo("compose.yaml")).unwrap()).unwrap();
    // The nodes share their settings through a YAML anchor and merge keys, as compose reads them.
    yaml.apply_merge().unwrap();
    let compose: serde_json::Value = serde_json::to_value(&yaml).unwrap();
    let mut names: Vec<&str> = compose["services"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "gateway-1",
            "gateway-2",
            "gateway-3",
            "grafana",
            "lb",
            "prometheus",
            "redis"
        ]
    );
    let nodes = ["gateway-1", "gateway-2", "gateway-3"];
    let gateway = service(&compose, "gateway-1");
    let env = gateway["environment"].as_object().unwrap();
    let env_of = |k: &str| env[k].as_str().unwrap().to_string();

    // Every named volume is declared; every bind mount's source is in the repository.
    for name in nodes.iter().chain(&["lb", "prometheus", "grafana"]) {
        for (host, _) in mounts(service(&compose, name)) {
            match host.strip_prefix("./") {
                Some(path) => assert!(repo(path).exists(), "{name}: {host} missing"),
                None => assert!(compose["volumes"].get(&host).is_some(), "{name}: {host}"),
            }
        }
        let health = service(&compose, name)["healthcheck"]["test"].to_string();
        assert!(health.contains("http://127.0.0.1:"), "{name}: {health}");
    }
    // Redis keeps what the nodes confirm (append-only file), on a volume, with a health check
    // the nodes wait for.
    let redis = service(&compose, "redis");
    let command = redis["command"].to_string();
    assert!(command.contains(r#""--appendonly","yes""#), "{command}");
    assert!(
        mounts(redis)
            .iter()
            .any(|(host, target)| host == "redis-data" && target == "/data")
    );
    assert!(redis["healthcheck"]["test"].to_string().contains("ping"));

    // The nodes: the same configuration, on the cluster's Redis; health on the public listener;
    // each its own data volume at its data_dir; none published (the balancer is).
    let public_port = env_of("USSD_GATEWAY__PUBLIC__LISTEN")
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let data = env_of("USSD_GATEWAY__STORE__DATA_DIR");
    assert_eq!(env_of("USSD_GATEWAY__STORE__BACKEND"), "redis");
    assert_eq!(
        env_of("USSD_GATEWAY__STORE__REDIS__URLS"),
        r#"["redis://redis:6379"]"#
    );
    let mut volumes = std::collections::BTreeSet::new();
    for name in nodes {
        let node = service(&compose, name);
        assert_eq!(node["environment"], gateway["environment"], "{name}");
        assert_eq!(
            node["depends_on"]["redis"]["condition"], "service_healthy",
            "{name}"
        );
        let health = node["healthcheck"]["test"].to_string();
        assert!(
            health.contains(&format!("127.0.0.1:{public_port}/health")),
            "{name}: {health}"
        );
        let volume = mounts(node)
            .into_iter()
            .find(|(host, target)| !host.starts_with('.') && data.starts_with(target.as_str()))
            .unwrap_or_else(|| panic!("{name}: {data} is not on a volume"));
        assert!(volumes.insert(volume.0), "{name} shares a data volume");
        assert!(node.get("ports").is_none(), "{name} is reached through lb");
    }

    // The balancer: published, its config the one that sends to every node's public port.
    let lb = service(&compose, "lb");
    assert!(lb["ports"].to_string().contains(&format!("{public_port}:")));
    let nginx = std::fs::read_to_string(host_path(lb, "/etc/nginx/nginx.conf").unwrap()).unwrap();
    for name in nodes {
        assert!(
            nginx.contains(&format!("server {name}:{public_port} ")),
            "{name} not in the balancer:\n{nginx}"
        );
    }
    assert!(nginx.contains("proxy_pass http://gateway;"), "{nginx}");

    // Prometheus scrapes the gateway's admin listener, with the alert rules.
    let prometheus = service(&compose, "prometheus");
    let config = prometheus["command"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|a| a.as_str()?.strip_prefix("--config.file="))
        .unwrap();
    let config = host_path(prometheus, config).unwrap();
    let scrape = std::fs::read_to_string(&config).unwrap();
    let admin_port = env_of("USSD_GATEWAY__ADMIN__LISTEN")
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    for name in nodes {
        assert!(
            scrape.contains(&format!("\"{name}:{admin_port}\"")),
            "{scrape}"
        );
    }
    assert!(config.with_file_name("alerts.yml").exists());

    // Grafana: the datasource the dashboard names, on the Prometheus service; the dashboards
    // where the provider reads them.
    let grafana = service(&compose, "grafana");
    let datasource = std::fs::read_to_string(
        host_path(
            grafana,
            "/etc/grafana/provisioning/datasources/prometheus.yml",
        )
        .unwrap(),
    )
    .unwrap();
    assert!(
        datasource.contains("url: http://prometheus:9090"),
        "{datasource}"
    );
    assert!(datasource.contains("uid: prometheus"), "{datasource}");
    let provider = std::fs::read_to_string(
        host_path(
            grafana,
            "/etc/grafana/provisioning/dashboards/ussd-gateway.yml",
        )
        .unwrap(),
    )
    .unwrap();
    let path = provider
        .lines()
        .find_map(|l| l.trim().strip_prefix("path: "))
        .unwrap();
    let dashboards = host_path(grafana, path).unwrap();
    assert!(
        dashboards.join("ussd-gateway.json").exists(),
        "{}",
        dashboards.display()
    );

    // The configuration it mounts, with its environment (container paths mapped to the
    // repository's files, the secret to a file made here), passes `check`.
    let dir = tempfile::tempdir().unwrap();
    let mut vars: Vec<(String, String)> = Vec::new();
    for (k, v) in env {
        let v = v.as_str().unwrap();
        let v = if let Some(secret) = v.strip_prefix("/run/secrets/") {
            assert!(gateway["secrets"].to_string().contains(secret));
            let file = dir.path().join(secret);
            std::fs::write(&file, "0f1e2d3c4b5a69788796a5b4c3d2e1f0\n").unwrap();
            file.display().to_string()
        } else if k == "USSD_GATEWAY__STORE__DATA_DIR" {
            dir.path().join("data").display().to_string()
        } else if let Some(host) = v.starts_with('/').then(|| host_path(gateway, v)).flatten() {
            host.display().to_string()
        } else {
            v.to_string()
        };
        vars.push((k.clone(), v));
    }
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (code, stdout, stderr) = check(None, &vars);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("admin.token = *** (file "), "{stdout}");
}

#[test]
fn the_image_runs_as_a_user_with_a_health_check_and_its_config_passes_check() {
    let dockerfile = std::fs::read_to_string(repo("Dockerfile")).unwrap();
    let last_stage = dockerfile.rsplit("\nFROM ").next().unwrap();
    let instruction = |name: &str| {
        last_stage
            .lines()
            .filter(|l| l.starts_with(&format!("{name} ")))
            .map(|l| l[name.len() + 1..].to_string())
            .collect::<Vec<_>>()
    };
    let user = instruction("USER");
    assert_eq!(user.len(), 1, "{user:?}");
    assert!(
        !user[0].starts_with("root") && !user[0].starts_with("0"),
        "{user:?}"
    );
    assert!(instruction("VOLUME")[0].contains("/var/lib/ussd-gateway"));
    assert!(instruction("VOLUME")[0].contains("/etc/ussd-gateway"));
    let health = last_stage.split("HEALTHCHECK").nth(1).unwrap();
    assert!(health.contains("http://127.0.0.1:8080/health"), "{health}");
    // Its ENV (with the sample config copied to /etc/ussd-gateway) passes `check`.
    let env_block = last_stage.split("\nENV ").nth(1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut vars = Vec::new();
    for line in env_block.lines() {
        let line = line.trim().trim_end_matches('\\').trim();
        let Some((k, v)) = line.split_once('=') else {
            break;
        };
        let v = match v {
            "/etc/ussd-gateway/gateway.toml" => repo("config/gateway.toml").display().to_string(),
            v if k == "USSD_GATEWAY__STORE__DATA_DIR" => {
                assert!(v.starts_with("/var/lib/ussd-gateway"));
                dir.path().display().to_string()
            }
            v => v.to_string(),
        };
        vars.push((k.to_string(), v));
    }
    assert!(
        vars.iter().any(|(k, _)| k == "USSD_GATEWAY_CONFIG"),
        "{vars:?}"
    );
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (code, stdout, stderr) = check(None, &vars);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("public.listen = 0.0.0.0:8080"), "{stdout}");
}

#[test]
fn the_license_file_is_the_license_cargo_toml_names() {
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(repo("Cargo.toml")).unwrap()).unwrap();
    assert_eq!(manifest["package"]["license"].as_str(), Some("Apache-2.0"));
    let license = std::fs::read_to_string(repo("LICENSE")).unwrap();
    let words: Vec<&str> = license.split_whitespace().take(5).collect();
    assert_eq!(words, ["Apache", "License", "Version", "2.0,", "January"]);
    assert!(license.contains("END OF TERMS AND CONDITIONS"));
    let changelog = std::fs::read_to_string(repo("CHANGELOG.md")).unwrap();
    assert!(changelog.contains("## [Unreleased]") && changelog.contains("Keep a Changelog"));
}

#[test]
fn the_docs_cite_only_documents_in_the_repository() {
    let mut files = vec![repo("README.md"), repo("deny.toml"), repo("CHANGELOG.md")];
    for e in std::fs::read_dir(repo("docs")).unwrap() {
        files.push(e.unwrap().path());
    }
    let mut missing = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let words = text.split(|c: char| !(c.is_ascii_alphanumeric() || "_-./".contains(c)));
        for word in words.filter(|w| w.ends_with(".md") && !w.contains("//")) {
            let word = word.trim_start_matches("./");
            let found = repo(word).exists()
                || repo("docs").join(word).exists()
                || file.parent().unwrap().join(word).exists();
            if !found {
                missing.push(format!("{}: {word}", file.display()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "cited but not in the repository:\n{}",
        missing.join("\n")
    );
}

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}
