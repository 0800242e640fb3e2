//! Real Redis servers for tests: a standalone primary, or a Redis Cluster of three primaries,
//! each `redis-server` (Debian's package, which the test command installs) on loopback, on a
//! free port, in a temporary folder, stopped (kill -9) and removed when dropped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One `redis-server` process.
pub struct Redis {
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
    extra: Vec<String>,
    /// `requirepass` (and `masterauth`), when started with one.
    password: Option<String>,
}

impl Redis {
    /// A standalone primary with an append-only file synced every second (Redis's own default
    /// for durability, and what docs/cluster.md recommends).
    pub fn standalone() -> Redis {
        Redis::start(&[])
    }

    /// A standalone primary that asks for `password` (`requirepass`, and `masterauth` for
    /// when it becomes a replica).
    pub fn with_password(password: &str) -> Redis {
        Redis::start_with(&[], Some(password))
    }

    /// A standalone primary that also listens on a Unix socket in its folder
    /// ([`Redis::unix_url`]).
    pub fn with_unix_socket() -> Redis {
        Redis::start(&["--unixsocket", "redis.sock", "--unixsocketperm", "700"])
    }

    /// `redis+unix://<folder>/redis.sock`, for a server started [`Redis::with_unix_socket`].
    pub fn unix_url(&self) -> String {
        format!(
            "redis+unix://{}",
            self.dir.path().join("redis.sock").display()
        )
    }

    /// A server with `extra` arguments (`--cluster-enabled yes`, ...).
    fn start(extra: &[&str]) -> Redis {
        Redis::start_with(extra, None)
    }

    fn start_with(extra: &[&str], password: Option<&str>) -> Redis {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port_with_bus();
        // A Unix socket in the server's own folder.
        let mut extra: Vec<String> = extra
            .iter()
            .map(|s| match *s {
                "redis.sock" => dir.path().join(s).display().to_string(),
                s => s.to_string(),
            })
            .collect();
        if let Some(pw) = password {
            extra.extend(["--requirepass", pw, "--masterauth", pw].map(String::from));
        }
        let child = spawn(port, dir.path(), &extra);
        let mut redis = Redis {
            port,
            child,
            dir,
            extra,
            password: password.map(String::from),
        };
        // The free port may be taken by another test's process before the server binds it
        // (the server then exits): another port, a few times.
        for _ in 0..5 {
            if redis.ready_within(Duration::from_secs(10)) {
                return redis;
            }
            redis.kill();
            redis.port = free_port_with_bus();
            redis.child = spawn(redis.port, redis.dir.path(), &redis.extra);
        }
        panic!("redis-server did not start on five free ports");
    }

    /// Starts the server again (after [`Redis::kill`]) on the same port and folder: it reads
    /// back what its append-only file kept.
    pub fn restart(&mut self) {
        self.kill();
        self.child = spawn(self.port, self.dir.path(), &self.extra);
        self.wait_ready(Duration::from_secs(10));
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Sends one command (its words) and returns the raw RESP answer.
    pub fn command(&self, words: &[&str]) -> String {
        command_as(self.addr(), self.password.as_deref(), words)
    }

    /// kill -9: the server is gone as a crash leaves it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn wait_ready(&mut self, within: Duration) {
        if !self.ready_within(within) {
            panic!("redis-server on port {} did not answer PING", self.port);
        }
    }

    /// Whether this server answers PING within `within` (false at once if it has exited).
    fn ready_within(&mut self, within: Duration) -> bool {
        let until = Instant::now() + within;
        while Instant::now() < until {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return false;
            }
            if serves(self.addr(), self.password.as_deref()) == Some(self.child.id()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Redis {
    /// A replica of `primary` (`--replicaof`), which a Sentinel may promote.
    pub fn replica_of(primary: &Redis) -> Redis {
        Redis::start_with(
            &["--replicaof", "127.0.0.1", &primary.port.to_string()],
            primary.password.as_deref(),
        )
    }

    /// Whether this replica holds everything its primary wrote so far (replication offsets).
    pub fn caught_up_with(&self, primary: &Redis) -> bool {
        let offset = |info: &str, key: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(key))
                .map(|v| v.trim().to_string())
        };
        let p = primary.command(&["INFO", "replication"]);
        let r = self.command(&["INFO", "replication"]);
        offset(&r, "master_link_status:").as_deref() == Some("up")
            && offset(&p, "master_repl_offset:").is_some()
            && offset(&p, "master_repl_offset:") == offset(&r, "slave_repl_offset:")
    }
}

/// A Sentinel (`redis-server <config> --sentinel`) watching one primary under the name
/// `gateway`, on loopback, quick to fail over (the primary is down after 500 ms), stopped
/// (kill -9) and removed when dropped.
pub struct Sentinel {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Sentinel {
    /// The name the primary is watched under.
    pub const MASTER: &'static str = "gateway";

    pub fn watching(primary: &Redis) -> Sentinel {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port_with_bus();
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {}\n\
                 sentinel monitor {m} 127.0.0.1 {p} 1\n\
                 sentinel down-after-milliseconds {m} 500\n\
                 sentinel failover-timeout {m} 5000\n\
                 sentinel parallel-syncs {m} 1\n{auth}",
                dir.path().display(),
                m = Sentinel::MASTER,
                p = primary.port,
                auth = primary
                    .password
                    .as_ref()
                    .map(|pw| format!("sentinel auth-pass {} {pw}\n", Sentinel::MASTER))
                    .unwrap_or_default(),
            ),
        )
        .unwrap();
        let child = Command::new("redis-server")
            .arg(&conf)
            .args(["--sentinel", "--loglevel", "warning"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("redis-server runs in Sentinel mode");
        let sentinel = Sentinel {
            port,
            child,
            _dir: dir,
        };
        let until = Instant::now() + Duration::from_secs(10);
        while sentinel.primary_port().is_none() {
            assert!(Instant::now() < until, "the Sentinel did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        sentinel
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port of the server the Sentinel names as the primary now.
    pub fn primary_port(&self) -> Option<u16> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        TcpStream::connect(addr).ok()?;
        let answer = command(
            addr,
            &["SENTINEL", "get-master-addr-by-name", Sentinel::MASTER],
        );
        // *2 $9 127.0.0.1 $5 <port>
        answer.lines().nth(4).and_then(|p| p.trim().parse().ok())
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Redis Cluster of three primaries (no replicas), every slot covered.
pub struct RedisCluster {
    pub nodes: Vec<Redis>,
}

impl RedisCluster {
    /// Starts three cluster-enabled servers and joins them with `redis-cli --cluster create`.
    pub fn start() -> RedisCluster {
        RedisCluster::start_with(None)
    }

    /// As [`RedisCluster::start`], every node asking for `password`.
    pub fn with_password(password: &str) -> RedisCluster {
        RedisCluster::start_with(Some(password))
    }

    fn start_with(password: Option<&str>) -> RedisCluster {
        let nodes: Vec<Redis> = (0..3)
            .map(|_| {
                Redis::start_with(
                    &["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"],
                    password,
                )
            })
            .collect();
        let addrs: Vec<String> = nodes.iter().map(|n| n.addr().to_string()).collect();
        let mut cli = Command::new("redis-cli");
        if let Some(pw) = password {
            cli.env("REDISCLI_AUTH", pw);
        }
        let out = cli
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli runs");
        assert!(out.status.success(), "cluster create: {out:?}");
        let cluster = RedisCluster { nodes };
        let until = Instant::now() + Duration::from_secs(20);
        while !cluster
            .nodes
            .iter()
            .all(|n| n.command(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))
        {
            assert!(Instant::now() < until, "the cluster did not reach state ok");
            std::thread::sleep(Duration::from_millis(50));
        }
        cluster
    }

    /// The seed nodes' URLs.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Redis::url).collect()
    }
}

/// `redis-server` on `port`, in `dir`, with an append-only file synced every second.
fn spawn(port: u16, dir: &std::path::Path, extra: &[String]) -> Child {
    Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args([
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
        ])
        .args(["--protected-mode", "no", "--loglevel", "warning"])
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("redis-server runs (Debian's redis-server package; ./scripts/test installs it)")
}

/// A free port whose cluster bus port (port + 10000) is free too.
fn free_port_with_bus() -> u16 {
    for _ in 0..100 {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
    panic!("no free port pair found");
}

/// One RESP command over a fresh connection: the first reply, raw (good enough for the
/// simple and bulk-string answers tests read).
pub fn command(addr: SocketAddr, words: &[&str]) -> String {
    command_as(addr, None, words)
}

/// [`command`], after `AUTH password` when there is one.
pub fn command_as(addr: SocketAddr, password: Option<&str>, words: &[&str]) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    if let Some(pw) = password {
        let ok = exchange(&mut s, &["AUTH", pw]);
        assert_eq!(ok, "+OK\r\n", "AUTH");
    }
    exchange(&mut s, words)
}

/// The process id of the Redis server answering on `addr` (`INFO server`), if one answers:
/// a test must know it talks to its own server, not to another test's that took the port.
fn serves(addr: SocketAddr, password: Option<&str>) -> Option<u32> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut send = |words: &[&str]| -> Option<String> {
        let mut req = format!("*{}\r\n", words.len());
        for w in words {
            req.push_str(&format!("${}\r\n{w}\r\n", w.len()));
        }
        s.write_all(req.as_bytes()).ok()?;
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while !complete(&out) {
            let n = s.read(&mut buf).ok().filter(|n| *n > 0)?;
            out.extend_from_slice(&buf[..n]);
        }
        Some(String::from_utf8_lossy(&out).into_owned())
    };
    if let Some(pw) = password {
        send(&["AUTH", pw])?;
    }
    let info = send(&["INFO", "server"])?;
    info.lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok())
}

/// One command and its first reply on `s`.
fn exchange(s: &mut TcpStream, words: &[&str]) -> String {
    let mut req = format!("*{}\r\n", words.len());
    for w in words {
        req.push_str(&format!("${}\r\n{w}\r\n", w.len()));
    }
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    // A reply is complete when it ends with CRLF and, for a bulk string, holds its length.
    loop {
        let n = s.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if complete(&out) {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn complete(reply: &[u8]) -> bool {
    if !reply.ends_with(b"\r\n") {
        return false;
    }
    match reply.first() {
        Some(b'$') => {
            let head_end = reply.windows(2).position(|w| w == b"\r\n").unwrap_or(0);
            let len: i64 = std::str::from_utf8(&reply[1..head_end])
                .ok()
                .and_then(|l| l.parse().ok())
                .unwrap_or(-1);
            len < 0 || reply.len() >= head_end + 2 + len as usize + 2
        }
        _ => true,
    }
}

/// The Redis a test's nodes share: a standalone primary or a Cluster of three primaries,
/// running as long as the test keeps it. Cluster mode's properties hold on both.
pub enum Server {
    Primary(Redis),
    Cluster(RedisCluster),
}

impl Server {
    /// One of each, started.
    pub fn both() -> [Server; 2] {
        [
            Server::Primary(Redis::standalone()),
            Server::Cluster(RedisCluster::start()),
        ]
    }

    /// For assertion messages.
    pub fn name(&self) -> &'static str {
        match self {
            Server::Primary(_) => "primary",
            Server::Cluster(_) => "cluster",
        }
    }

    /// A node's connection of its own, as `serve` makes it (a 2 s timeout).
    pub async fn client(&self) -> ussd_gateway::store::redis::Redis {
        let (urls, cluster) = match self {
            Server::Primary(r) => (vec![r.url()], false),
            Server::Cluster(c) => (c.urls(), true),
        };
        ussd_gateway::store::redis::Redis::connect(&ussd_gateway::store::redis::RedisSettings {
            urls,
            cluster,
            timeout: Duration::from_secs(2),
            sentinel_master: None,
            credentials: Default::default(),
        })
        .await
        .unwrap()
    }
}
