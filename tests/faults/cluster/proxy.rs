//! The one address herald has for PostgreSQL: a TCP proxy in front of the primary,
//! as HAProxy stands in front of a Patroni cluster. `switch` points it at another
//! server and cuts the sessions open to the old one (HAProxy's
//! `on-marked-down shutdown-sessions`).

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;

pub struct Proxy {
    backend: Arc<AtomicU16>,
    sessions: Arc<Mutex<Vec<JoinHandle<()>>>>,
    acceptor: JoinHandle<()>,
}

impl Proxy {
    /// Listens on `127.0.0.1:port`, passing every session to `127.0.0.1:backend`.
    pub async fn start(port: u16, backend: u16) -> Proxy {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(([127, 0, 0, 1], port).into()).unwrap();
        let listener: TcpListener = socket.listen(256).unwrap();
        let backend = Arc::new(AtomicU16::new(backend));
        let sessions: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (b, s) = (backend.clone(), sessions.clone());
        let acceptor = actix_web::rt::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let to = b.load(Ordering::SeqCst);
                let task = actix_web::rt::spawn(async move {
                    let _ = pass(client, to).await;
                });
                let mut s = s.lock().unwrap();
                s.retain(|t| !t.is_finished());
                s.push(task);
            }
        });
        Proxy { backend, sessions, acceptor }
    }

    /// New sessions go to `127.0.0.1:backend`; the open ones are cut.
    pub fn switch(&self, backend: u16) {
        self.backend.store(backend, Ordering::SeqCst);
        for t in self.sessions.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.acceptor.abort();
        self.switch(0);
    }
}

async fn pass(mut client: TcpStream, backend: u16) -> std::io::Result<()> {
    let mut server = TcpStream::connect(("127.0.0.1", backend)).await?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    tokio::io::copy_bidirectional(&mut client, &mut server).await?;
    Ok(())
}
