//! One herald process: the real binary (`herald serve`), configured only by its
//! `HERALD__…` environment, its log in a file of its own. It can be stopped with
//! SIGTERM, killed with SIGKILL, and started again on the same port and state.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// How long a start may take before the test gives up (migrations included).
const START: Duration = Duration::from_secs(60);

pub struct Herald {
    pub name: String,
    pub port: u16,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
    starts: usize,
}

impl Herald {
    /// Starts `herald serve` with `env` (every `HERALD__` key it needs; nothing of the
    /// test's own environment leaks in) on a free port, and waits until `/readyz`
    /// answers 200.
    pub async fn start(name: &str, env: Vec<(String, String)>) -> Herald {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("herald-fault-{name}-{:08x}.log", rand::random::<u32>()));
        let mut h = Herald { name: name.to_string(), port, env, log, child: None, starts: 0 };
        h.spawn();
        h.wait_ready().await;
        h
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HERALD_CONFIG_DIR", std::env::temp_dir().join("herald-fault-no-config"))
            .env("HERALD__HTTP__ADDR", format!("127.0.0.1:{}", self.port))
            // Several processes run at once: each its own gRPC port.
            .env("HERALD__GRPC__ADDR", "127.0.0.1:0")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true);
        self.child = Some(cmd.spawn().expect("the herald binary starts"));
        self.starts += 1;
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Waits until `/readyz` answers 200 (the database and the broker answer).
    pub async fn wait_ready(&mut self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + START;
        loop {
            if let Ok(r) = client.get(self.url("/readyz")).timeout(Duration::from_secs(2)).send().await {
                if r.status().as_u16() == 200 {
                    return;
                }
            }
            if let Some(status) = self.exited() {
                panic!("herald {} exited at start ({status}): {}", self.name, self.tail());
            }
            assert!(Instant::now() < deadline, "herald {} not ready in {START:?}: {}", self.name, self.tail());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `kill -9`: no shutdown, no goodbye to the broker or the database.
    pub async fn kill(&mut self) {
        let child = self.child.as_mut().expect("herald runs");
        child.start_kill().unwrap();
        child.wait().await.unwrap();
        self.child = None;
    }

    /// SIGTERM, and the exit status once it exited.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let child = self.child.as_mut().expect("herald runs");
        let pid = child.id().expect("a pid").to_string();
        let sent = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
            .await
            .expect("herald exits within 60 s of SIGTERM")
            .unwrap();
        self.child = None;
        status
    }

    /// Starts the same process again: same port, same environment, same state.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "restart after kill or terminate");
        self.spawn();
        self.wait_ready().await;
    }

    /// The exit status, when the process has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().unwrap())
    }

    /// The last lines of its log (for failure messages).
    pub fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(|l| l.chars().take(300).collect()).collect();
        format!("\n--- {} (last lines) ---\n{}", self.log.display(), lines[lines.len().saturating_sub(30)..].join("\n"))
    }
}

impl Drop for Herald {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("herald {} ({} start(s)): {}", self.name, self.starts, self.tail());
        } else {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// A port nobody listens on now (the kernel's pick, released for herald to bind).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
