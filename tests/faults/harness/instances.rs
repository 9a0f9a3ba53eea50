//! The PostgreSQL cluster and the RabbitMQ node the fault tests stop, restart and
//! alarm: their own, on ports of their own (docs/ARCHITECTURE.md, "Testing"), made
//! by `scripts/fault-instances` once per run of this binary and removed when it
//! exits. The tests take turns (`exclusive`), so the fault of one never hits another.

use std::process::Command;
use std::sync::OnceLock;

use tokio::sync::{Mutex, MutexGuard};

/// The fault cluster's root, without a database name.
pub const POSTGRES: &str = "postgres://postgres@127.0.0.1:5433";
/// The fault node.
pub const AMQP: &str = "amqp://guest:guest@127.0.0.1:5673/%2f";

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/fault-instances");

static TURN: Mutex<()> = Mutex::const_new(());
static UP: OnceLock<Result<(), String>> = OnceLock::new();

/// One test's turn on the instances. A test that fails leaves them as it left them
/// (stopped, alarmed): the turn's end brings them back for the next test.
pub struct Turn {
    _guard: MutexGuard<'static, ()>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = run("heal");
        }
    }
}

/// Waits for the other tests' turns, starts the instances on the first call.
pub async fn exclusive() -> Turn {
    let guard = TURN.lock().await;
    let up = UP.get_or_init(|| run_args(&["up", &std::process::id().to_string()]));
    if let Err(e) = up {
        panic!("the fault instances did not start: {e}");
    }
    Turn { _guard: guard }
}

/// Runs a control command of the script (`pg-stop`, `rabbit-start`, `alarm`, …);
/// panics when it fails. Asynchronous: the test's requests and its SMTP server,
/// on the same thread, go on meanwhile.
pub async fn control(what: &str) {
    let out = tokio::process::Command::new(SCRIPT).arg(what).output().await.unwrap();
    assert!(
        out.status.success(),
        "fault-instances {what}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run(what: &str) -> Result<(), String> {
    run_args(&[what])
}

fn run_args(args: &[&str]) -> Result<(), String> {
    let out = Command::new(SCRIPT).args(args).output().map_err(|e| format!("{SCRIPT}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{}\n{}{}", out.status, String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }
}
