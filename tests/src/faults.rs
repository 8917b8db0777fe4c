//! Fault injection for the end-to-end tests: a private RabbitMQ node that a
//! test may stop and start without disturbing the shared broker other
//! tests use, and a TCP proxy that takes a dependency (the S3 endpoint)
//! off the network and brings it back on the same address.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::processes::free_port;

/// Where Debian/Ubuntu and the upstream packages put the RabbitMQ scripts
/// (the `/usr/sbin` wrappers switch to the `rabbitmq` user, which would
/// not see our environment).
const RABBIT_BIN_DIRS: [&str; 2] = ["/usr/lib/rabbitmq/bin", "/usr/local/lib/rabbitmq/bin"];

/// A RabbitMQ node of its own (its own name, ports and data folder),
/// stopped when dropped. `stop_app`/`start_app` restart the broker
/// application as an operator would, with the Erlang VM staying up.
pub struct PrivateRabbit {
    /// `auditx-fault-<port>@localhost`.
    pub node: String,
    pub port: u16,
    /// `amqp://guest:guest@127.0.0.1:<port>/%2f`.
    pub url: String,
    bin: PathBuf,
    pid_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl PrivateRabbit {
    /// The folder of `rabbitmq-server` and `rabbitmqctl`, if installed.
    pub fn installed() -> Option<PathBuf> {
        RABBIT_BIN_DIRS
            .iter()
            .map(PathBuf::from)
            .find(|dir| dir.join("rabbitmq-server").exists())
    }

    /// Starts a node and waits until it accepts AMQP connections.
    pub async fn start() -> anyhow::Result<PrivateRabbit> {
        let bin = Self::installed().context("rabbitmq-server is not installed")?;
        let dir = tempfile::tempdir()?;
        let (port, dist_port) = (free_port(), free_port());
        let node = format!("auditx-fault-{port}@localhost");
        let config = dir.path().join("rabbitmq.conf");
        std::fs::write(
            &config,
            format!("listeners.tcp.default = 127.0.0.1:{port}\nloopback_users = none\n"),
        )?;
        let plugins = dir.path().join("enabled_plugins");
        std::fs::write(&plugins, "[].\n")?;
        let pid_file = dir.path().join("rabbit.pid");
        let status = Command::new(bin.join("rabbitmq-server"))
            .arg("-detached")
            .env("RABBITMQ_NODENAME", &node)
            .env("RABBITMQ_NODE_PORT", port.to_string())
            .env("RABBITMQ_DIST_PORT", dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", dir.path().join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.path().join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", &plugins)
            .env("RABBITMQ_CONFIG_FILE", &config)
            .env("RABBITMQ_PID_FILE", &pid_file)
            .status()
            .context("starting rabbitmq-server")?;
        anyhow::ensure!(status.success(), "rabbitmq-server -detached: {status}");
        let rabbit = PrivateRabbit {
            url: format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
            node,
            port,
            bin,
            pid_file,
            _dir: dir,
        };
        let pid_file = rabbit.pid_file.display().to_string();
        rabbit.ctl(&["wait", &pid_file, "--timeout", "120"]).await?;
        rabbit.wait_accepting().await?;
        Ok(rabbit)
    }

    /// Runs `rabbitmqctl -n <node> <args>`.
    pub async fn ctl(&self, args: &[&str]) -> anyhow::Result<()> {
        let output = tokio::process::Command::new(self.bin.join("rabbitmqctl"))
            .arg("-n")
            .arg(&self.node)
            .args(args)
            .output()
            .await
            .context("running rabbitmqctl")?;
        anyhow::ensure!(
            output.status.success(),
            "rabbitmqctl {args:?}: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(())
    }

    /// Stops the broker application: every connection is closed and the
    /// AMQP port refuses new ones.
    pub async fn stop_app(&self) -> anyhow::Result<()> {
        self.ctl(&["stop_app"]).await
    }

    /// Starts the broker application again and waits for the AMQP port.
    pub async fn start_app(&self) -> anyhow::Result<()> {
        self.ctl(&["start_app"]).await?;
        self.ctl(&["await_startup", "--timeout", "120"]).await?;
        self.wait_accepting().await
    }

    async fn wait_accepting(&self) -> anyhow::Result<()> {
        for _ in 0..600 {
            if TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!("rabbitmq node {} never accepted connections", self.node)
    }
}

impl Drop for PrivateRabbit {
    fn drop(&mut self) {
        let stopped = Command::new(self.bin.join("rabbitmqctl"))
            .args(["-n", &self.node, "stop"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !stopped {
            // The Erlang VM is ours: make sure it goes.
            if let Ok(pid) = std::fs::read_to_string(&self.pid_file) {
                let _ = Command::new("kill").args(["-9", pid.trim()]).status();
            }
        }
    }
}

/// A TCP proxy in front of a dependency: clients are configured with its
/// address; [`TcpProxy::cut`] closes every open connection and refuses new
/// ones (as a dead endpoint does) and [`TcpProxy::restore`] listens on the
/// same address again.
pub struct TcpProxy {
    pub addr: SocketAddr,
    target: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl TcpProxy {
    pub async fn start(target: SocketAddr) -> anyhow::Result<TcpProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        Ok(TcpProxy {
            addr,
            target,
            task: Some(tokio::spawn(forward(listener, target))),
        })
    }

    /// `http://<addr>`, for an HTTP endpoint behind the proxy.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Takes the endpoint off the network.
    pub fn cut(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    /// Brings the endpoint back on the same address.
    pub async fn restore(&mut self) -> anyhow::Result<()> {
        if self.task.is_some() {
            return Ok(());
        }
        let mut attempts = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                // The old listener's socket may linger a moment.
                Err(_) if attempts < 50 => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e).context("listening on the proxy address again"),
            }
        };
        self.task = Some(tokio::spawn(forward(listener, self.target)));
        Ok(())
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
    }
}

/// Accepts and forwards connections until aborted; aborting drops the
/// listener and every forwarded connection with it.
async fn forward(listener: TcpListener, target: SocketAddr) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let Ok((mut inbound, _)) = listener.accept().await else {
            continue;
        };
        connections.spawn(async move {
            if let Ok(mut outbound) = TcpStream::connect(target).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}
