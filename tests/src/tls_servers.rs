//! Servers that speak only TLS, of the test's own: certificates made with
//! the `openssl` CLI ([`TestCa`]: a CA, a server certificate for
//! `localhost` and `127.0.0.1`, a client certificate), a `redis-server`
//! with a TLS port only that requires client certificates ([`TlsRedis`];
//! a replica and a Redis Sentinel likewise, [`TlsSentinel`]),
//! a RabbitMQ node with a TLS listener only that requires them too
//! ([`TlsRabbit`]), and HTTPS in front of the embedded S3 endpoint
//! ([`TlsProxy`]). None of them touches the machine's own Redis (6379) or
//! RabbitMQ (5672).

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::processes::free_port;

/// A CA and the certificates it signed, PEM files in a folder of their own.
pub struct TestCa {
    pub ca: PathBuf,
    /// For `localhost` and `127.0.0.1` (subjectAltName).
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// For client authentication (mutual TLS).
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    dir: tempfile::TempDir,
}

impl TestCa {
    /// A fresh CA (`name` in its subject) and its certificates.
    pub fn create(name: &str) -> Self {
        let dir = tempfile::tempdir().expect("a folder for certificates");
        let path = |file: &str| dir.path().join(file);
        openssl(
            dir.path(),
            &[
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", "ca.key",
                "-out", "ca.pem", "-subj",
            ],
            &format!("/CN={name}"),
        );
        std::fs::write(
            path("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        std::fs::write(
            path("client.ext"),
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n\
             extendedKeyUsage=clientAuth\n",
        )
        .unwrap();
        for (who, subject) in [("server", "/CN=localhost"), ("client", "/CN=auditx")] {
            openssl(
                dir.path(),
                &[
                    "req",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-keyout",
                    &format!("{who}.key"),
                    "-out",
                    &format!("{who}.csr"),
                    "-subj",
                ],
                subject,
            );
            openssl(
                dir.path(),
                &[
                    "x509",
                    "-req",
                    "-in",
                    &format!("{who}.csr"),
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-days",
                    "2",
                    "-out",
                    &format!("{who}.pem"),
                    "-extfile",
                ],
                &format!("{who}.ext"),
            );
        }
        Self {
            ca: path("ca.pem"),
            server_cert: path("server.pem"),
            server_key: path("server.key"),
            client_cert: path("client.pem"),
            client_key: path("client.key"),
            dir,
        }
    }

    pub fn folder(&self) -> &Path {
        self.dir.path()
    }
}

/// Runs `openssl <args> <last>` in `dir`; panics with its output if it fails.
fn openssl(dir: &Path, args: &[&str], last: &str) {
    let output = Command::new("openssl")
        .args(args)
        .arg(last)
        .current_dir(dir)
        .output()
        .expect("the openssl command (apt-get install openssl)");
    assert!(
        output.status.success(),
        "openssl {args:?} {last}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A `redis-server` listening only on a TLS port, requiring a client
/// certificate signed by the test's CA (`--tls-auth-clients yes`).
pub struct TlsRedis {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl TlsRedis {
    pub async fn start(ca: &TestCa) -> Self {
        Self::start_with(ca, &[]).await
    }

    /// [`Self::start`] with more `redis-server` arguments (`--replicaof`).
    /// Replication runs over TLS too, with the client certificate.
    pub async fn start_with(ca: &TestCa, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("a folder for redis");
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--tls-cert-file")
            .arg(&ca.server_cert)
            .arg("--tls-key-file")
            .arg(&ca.server_key)
            .arg("--tls-ca-cert-file")
            .arg(&ca.ca)
            .args(["--tls-auth-clients", "yes", "--daemonize", "no"])
            .args(["--tls-replication", "yes", "--tls-client-cert-file"])
            .arg(&ca.client_cert)
            .arg("--tls-client-key-file")
            .arg(&ca.client_key)
            .arg("--dir")
            .arg(dir.path())
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("redis-server on the PATH, built with TLS (Debian's is)");
        let redis = Self {
            port,
            child,
            _dir: dir,
        };
        wait_until("the TLS redis to answer", Duration::from_secs(20), || {
            redis.cli(ca, &["PING"]) == "PONG"
        })
        .await;
        redis
    }

    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}/", self.port)
    }

    /// `redis-cli` over TLS with the client certificate; its output, trimmed.
    pub fn cli(&self, ca: &TestCa, args: &[&str]) -> String {
        tls_cli(ca, self.port, args)
    }
}

/// `redis-cli -p <port>` over TLS with the test's client certificate; its
/// output, trimmed.
pub fn tls_cli(ca: &TestCa, port: u16, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "--tls"])
        .arg("--cacert")
        .arg(&ca.ca)
        .arg("--cert")
        .arg(&ca.client_cert)
        .arg("--key")
        .arg(&ca.client_key)
        .args(args)
        .output()
        .expect("redis-cli on the PATH");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Redis Sentinel (`redis-server --sentinel`) speaking only TLS,
/// requiring client certificates, and reaching the servers it watches over
/// TLS with the test's client certificate; quorum 1.
pub struct TlsSentinel {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl TlsSentinel {
    pub const MASTER: &'static str = "auditx-tls-primary";

    /// Watches the primary on `primary_port` and waits until it knows the
    /// replica on `replica_port`.
    pub async fn start(ca: &TestCa, primary_port: u16, replica_port: u16) -> Self {
        let dir = tempfile::tempdir().expect("a folder for the sentinel");
        let port = free_port();
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port 0\ntls-port {port}\nbind 127.0.0.1\ndaemonize no\ndir {dir}\n\
                 tls-cert-file {cert}\ntls-key-file {key}\ntls-ca-cert-file {ca}\n\
                 tls-client-cert-file {client_cert}\ntls-client-key-file {client_key}\n\
                 tls-auth-clients yes\ntls-replication yes\n\
                 sentinel monitor {master} 127.0.0.1 {primary_port} 1\n\
                 sentinel down-after-milliseconds {master} 1000\n",
                dir = dir.path().display(),
                cert = ca.server_cert.display(),
                key = ca.server_key.display(),
                ca = ca.ca.display(),
                client_cert = ca.client_cert.display(),
                client_key = ca.client_key.display(),
                master = Self::MASTER,
            ),
        )
        .unwrap();
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("redis-server --sentinel");
        let sentinel = Self {
            port,
            child,
            _dir: dir,
        };
        let replica = replica_port.to_string();
        wait_until(
            "the TLS sentinel to know the replica",
            Duration::from_secs(60),
            || tls_cli(ca, port, &["SENTINEL", "REPLICAS", Self::MASTER]).contains(&replica),
        )
        .await;
        sentinel
    }
}

impl Drop for TlsSentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where Debian's package puts the broker's scripts.
const RABBITMQ_BIN: &str = "/usr/lib/rabbitmq/bin";

/// A RabbitMQ node of the test's own (its own node name, distribution
/// port, data, logs and configuration in a temporary folder), with one
/// listener, TLS, on loopback, that requires a client certificate signed
/// by the test's CA (`verify_peer`, `fail_if_no_peer_cert`). `guest` may
/// log in from loopback, as on any fresh node.
pub struct TlsRabbit {
    pub port: u16,
    node: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl TlsRabbit {
    /// Starts the node (as root, like the package's service) and waits
    /// until it has booted; startup takes 10 s or more.
    pub async fn start(ca: &TestCa) -> Self {
        let server = Path::new(RABBITMQ_BIN).join("rabbitmq-server");
        assert!(
            server.exists(),
            "{} is missing (apt-get install rabbitmq-server)",
            server.display()
        );
        let dir = tempfile::tempdir().expect("a folder for the rabbitmq node");
        let port = free_port();
        let node = format!("auditx-tls-{}-{port}@localhost", std::process::id());
        let conf = dir.path().join("rabbitmq.conf");
        std::fs::write(
            &conf,
            format!(
                "listeners.tcp = none\n\
                 listeners.ssl.1 = 127.0.0.1:{port}\n\
                 ssl_options.cacertfile = {ca}\n\
                 ssl_options.certfile = {cert}\n\
                 ssl_options.keyfile = {key}\n\
                 ssl_options.verify = verify_peer\n\
                 ssl_options.fail_if_no_peer_cert = true\n",
                ca = ca.ca.display(),
                cert = ca.server_cert.display(),
                key = ca.server_key.display(),
            ),
        )
        .unwrap();
        std::fs::write(dir.path().join("enabled_plugins"), "[].\n").unwrap();
        std::fs::write(dir.path().join("rabbitmq-env.conf"), "").unwrap();
        for sub in ["home", "mnesia", "log"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        let mut rabbit = Self {
            port,
            node,
            dir,
            child: None,
        };
        let child = rabbit
            .command(&server)
            .env("RABBITMQ_DIST_PORT", free_port().to_string())
            .env("RABBITMQ_CONFIG_FILE", &conf)
            .env("RABBITMQ_MNESIA_BASE", rabbit.dir.path().join("mnesia"))
            .env("RABBITMQ_LOG_BASE", rabbit.dir.path().join("log"))
            .env(
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                rabbit.dir.path().join("enabled_plugins"),
            )
            .env("RABBITMQ_PID_FILE", rabbit.dir.path().join("pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: the script starts the Erlang VM as a
            // child, and the whole group is stopped if all else fails.
            .process_group(0)
            .spawn()
            .expect("starting rabbitmq-server");
        rabbit.child = Some(child);
        let started = Instant::now();
        let listening = || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        wait_until(
            "the TLS rabbitmq listener",
            Duration::from_secs(120),
            listening,
        )
        .await;
        // The listener opens near the end of the boot: wait for its end.
        let mut await_startup = rabbit.command(&Path::new(RABBITMQ_BIN).join("rabbitmqctl"));
        await_startup.args(["-n", &rabbit.node, "await_startup", "--timeout", "60"]);
        let awaited = tokio::task::spawn_blocking(move || await_startup.output())
            .await
            .unwrap()
            .expect("running rabbitmqctl");
        assert!(
            awaited.status.success(),
            "the TLS rabbitmq node did not start: {}{} (logs in {})",
            String::from_utf8_lossy(&awaited.stdout),
            String::from_utf8_lossy(&awaited.stderr),
            rabbit.dir.path().join("log").display()
        );
        eprintln!(
            "TLS rabbitmq node {} up on port {port} in {:.1} s",
            rabbit.node,
            started.elapsed().as_secs_f64()
        );
        rabbit
    }

    /// `amqps://` for `guest` on this node, by host name (`localhost`, as
    /// the server certificate names it).
    pub fn url(&self) -> String {
        format!("amqps://guest:guest@localhost:{}/%2f", self.port)
    }

    /// A command of the broker's scripts for this node: its own HOME (the
    /// Erlang cookie) and an empty `rabbitmq-env.conf` instead of the
    /// machine's, which names the main node.
    fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        command
            .env("HOME", self.dir.path().join("home"))
            .env("RABBITMQ_NODENAME", &self.node)
            .env(
                "RABBITMQ_CONF_ENV_FILE",
                self.dir.path().join("rabbitmq-env.conf"),
            );
        command
    }

    /// Stops the node (`rabbitmqctl stop`), or kills its process group.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let stopped = self
            .command(&Path::new(RABBITMQ_BIN).join("rabbitmqctl"))
            .args(["-n", &self.node, "stop"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !stopped {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
        }
        let _ = child.wait();
    }
}

impl Drop for TlsRabbit {
    fn drop(&mut self) {
        self.stop();
    }
}

/// HTTPS in front of an HTTP endpoint: TLS terminated with the test CA's
/// server certificate, bytes passed through unchanged (Host header
/// included, so SigV4 signatures still verify).
///
/// A proxy rather than a TLS listener in the embedded S3 endpoint itself:
/// that endpoint is the development default on loopback, and a deployment
/// with a private CA puts TLS in front of its S3-compatible server (or a
/// load balancer does), which is what this stands for; no TLS server code
/// enters the product for the tests' sake.
pub struct TlsProxy {
    pub port: u16,
    task: JoinHandle<()>,
}

impl TlsProxy {
    pub async fn start(ca: &TestCa, upstream: SocketAddr) -> Self {
        let chain = CertificateDer::pem_file_iter(&ca.server_cert)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(&ca.server_key).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A client that refuses the certificate ends here.
                    let Ok(mut tls) = acceptor.accept(socket).await else {
                        return;
                    };
                    let Ok(mut plain) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        Self { port, task }
    }

    /// The endpoint by host name, as the server certificate names it.
    pub fn endpoint(&self) -> String {
        format!("https://localhost:{}", self.port)
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Polls `ready` every 100 ms until it holds; panics after `patience`.
async fn wait_until(what: &str, patience: Duration, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        if ready() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}
