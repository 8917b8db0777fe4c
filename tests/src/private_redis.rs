//! A Redis server of the test's own, on its own port and folder, that the
//! test can stop and start again: with AOF (`appendonly yes`,
//! `appendfsync everysec`, as `deploy/` runs it) a restart keeps its data;
//! without, it comes back empty. Also a replica of one and a Redis
//! Sentinel watching them ([`SentinelSet`]).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::processes::free_port;

pub struct PrivateRedis {
    pub port: u16,
    aof: bool,
    /// More `redis-server` arguments (e.g. `--replicaof`).
    extra: Vec<String>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl PrivateRedis {
    /// Starts `redis-server` (from the PATH) on a free loopback port.
    pub async fn start(aof: bool) -> Self {
        Self::start_with(aof, &[]).await
    }

    /// [`Self::start`] with more `redis-server` arguments.
    pub async fn start_with(aof: bool, extra: &[&str]) -> Self {
        let mut redis = Self {
            port: free_port(),
            aof,
            extra: extra.iter().map(|a| a.to_string()).collect(),
            dir: tempfile::tempdir().expect("a folder for redis"),
            child: None,
        };
        redis.launch().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn folder(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    async fn launch(&mut self) {
        let appendonly = if self.aof { "yes" } else { "no" };
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", appendonly])
            .args(["--appendfsync", "everysec", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("redis-server on the PATH (scripts/services.sh installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.ping().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("private redis on port {} did not start", self.port);
    }

    async fn ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)).await else {
            return false;
        };
        if stream.write_all(b"PING\r\n").await.is_err() {
            return false;
        }
        let mut answer = [0u8; 7];
        stream.read_exact(&mut answer).await.is_ok() && &answer == b"+PONG\r\n"
    }

    /// Stops the server the way an orchestrator does (SIGTERM: with AOF it
    /// flushes the file first) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// Stops the server and starts it again on the same port and folder.
    pub async fn restart(&mut self) {
        self.stop();
        self.launch().await;
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `redis-cli -p <port> <args>` and returns its output (trimmed).
pub fn redis_cli(port: u16, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli on the PATH (it comes with redis-server)");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A primary, its replica and a Redis Sentinel (quorum 1) watching them
/// under [`SentinelSet::MASTER`], each on a free loopback port. The
/// sentinel is `redis-server --sentinel`: no other package is needed.
pub struct SentinelSet {
    pub primary: PrivateRedis,
    pub replica: PrivateRedis,
    pub sentinel_port: u16,
    /// The sentinel's folder (it rewrites its configuration there).
    _dir: tempfile::TempDir,
    sentinel: Option<Child>,
}

impl SentinelSet {
    pub const MASTER: &'static str = "auditx-primary";

    /// Starts the three and waits until the sentinel knows the replica (a
    /// failover needs one).
    pub async fn start() -> Self {
        let primary = PrivateRedis::start(false).await;
        let replica_of = primary.port.to_string();
        let replica =
            PrivateRedis::start_with(false, &["--replicaof", "127.0.0.1", &replica_of]).await;
        wait_for("the replica to sync", || {
            redis_cli(replica.port, &["INFO", "replication"]).contains("master_link_status:up")
        })
        .await;
        let dir = tempfile::tempdir().expect("a folder for the sentinel");
        let sentinel_port = free_port();
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {sentinel_port}\nbind 127.0.0.1\ndaemonize no\ndir {dir}\n\
                 sentinel monitor {master} 127.0.0.1 {primary} 1\n\
                 sentinel down-after-milliseconds {master} 1000\n\
                 sentinel failover-timeout {master} 10000\n\
                 sentinel parallel-syncs {master} 1\n",
                dir = dir.path().display(),
                master = Self::MASTER,
                primary = primary.port,
            ),
        )
        .expect("writing sentinel.conf");
        let sentinel = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("redis-server --sentinel");
        let set = Self {
            primary,
            replica,
            sentinel_port,
            _dir: dir,
            sentinel: Some(sentinel),
        };
        let replica_port = set.replica.port.to_string();
        wait_for("the sentinel to know the replica", || {
            redis_cli(sentinel_port, &["SENTINEL", "REPLICAS", Self::MASTER])
                .contains(&replica_port)
        })
        .await;
        set
    }

    /// The port the sentinel names as the primary now.
    pub fn primary_port(&self) -> Option<u16> {
        let answer = redis_cli(
            self.sentinel_port,
            &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", Self::MASTER],
        );
        answer.lines().nth(1)?.trim().parse().ok()
    }

    /// `SENTINEL FAILOVER`: the replica becomes the primary, the primary
    /// its replica. Returns once the sentinel names the new primary.
    pub async fn fail_over(&self) {
        let before = self.primary_port();
        // Refused (NOGOODSLAVE) until the sentinel has heard from the
        // replica since discovering it.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let answer = redis_cli(self.sentinel_port, &["SENTINEL", "FAILOVER", Self::MASTER]);
            if answer == "OK" {
                break;
            }
            assert!(Instant::now() < deadline, "SENTINEL FAILOVER: {answer}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        wait_for("the sentinel to name the new primary", || {
            self.primary_port().is_some_and(|port| Some(port) != before)
        })
        .await;
    }
}

impl Drop for SentinelSet {
    fn drop(&mut self) {
        if let Some(mut child) = self.sentinel.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `ready` every 100 ms for up to 60 s.
async fn wait_for(what: &str, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if ready() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}
