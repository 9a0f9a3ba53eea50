//! A TCP gate in front of the test SMTP server: herald connects to the gate, which
//! passes the bytes through. `close` makes the mail server "down" (connections
//! refused, open ones cut), `open` brings it back on the same port, and `connections`
//! says how many sessions are still open (after a `kill -9`, the server has stored
//! every mail it will ever get from the dead process once none is).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;

pub struct Gate {
    pub port: u16,
    upstream: u16,
    live: Arc<AtomicUsize>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl Gate {
    /// A gate on a free port in front of `127.0.0.1:upstream`, open.
    pub async fn start(upstream: u16) -> Gate {
        let listener = bind(0).await;
        let port = listener.local_addr().unwrap().port();
        let mut gate = Gate { port, upstream, live: Arc::default(), tasks: Arc::default(), acceptor: None };
        gate.accept(listener);
        gate
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Sessions open through the gate.
    pub fn connections(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// The server is down: new connections are refused, open ones cut.
    pub fn close(&mut self) {
        if let Some(a) = self.acceptor.take() {
            a.abort();
        }
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    /// The server is back, on the same port.
    pub async fn open(&mut self) {
        assert!(self.acceptor.is_none(), "the gate is open");
        let listener = bind(self.port).await;
        self.accept(listener);
    }

    fn accept(&mut self, listener: TcpListener) {
        let (upstream, live, tasks) = (self.upstream, self.live.clone(), self.tasks.clone());
        self.acceptor = Some(actix_web::rt::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let live = live.clone();
                live.fetch_add(1, Ordering::SeqCst);
                let task = actix_web::rt::spawn(async move {
                    let _open = Open(live);
                    let _ = pass(client, upstream).await;
                });
                let mut tasks = tasks.lock().unwrap();
                tasks.retain(|t| !t.is_finished());
                tasks.push(task);
            }
        }));
    }
}

/// Counts a session down when its task ends, however it ends (aborted included).
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Passes bytes both ways until the server closed its side: when this returns, the
/// server's session has ended, even when the client died in the middle of it.
async fn pass(client: TcpStream, upstream: u16) -> std::io::Result<()> {
    let server = TcpStream::connect(("127.0.0.1", upstream)).await?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let up = async {
        let _ = tokio::io::copy(&mut from_client, &mut to_server).await;
        let _ = to_server.shutdown().await;
    };
    let down = async {
        let mut buf = [0u8; 8192];
        while let Ok(n @ 1..) = from_server.read(&mut buf).await {
            // A client that is gone no longer reads; the server is drained all the same.
            let _ = to_client.write_all(&buf[..n]).await;
        }
    };
    tokio::join!(up, down);
    Ok(())
}

async fn bind(port: u16) -> TcpListener {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket.bind(([127, 0, 0, 1], port).into()).unwrap();
    socket.listen(128).unwrap()
}
