//! `EmailSender`: SMTP (a few long-lived connections with `TCP_NODELAY`), a
//! directory of `.eml` files, or the log.
//!
//! lettre's own pool writes the message and its final `.` separately on a socket
//! without `TCP_NODELAY`; Nagle and delayed ACKs then cost ~40 ms a mail (measured
//! here: about 23 mails/s per connection, against 2,500/s with nodelay). herald opens its connections itself over a `TcpStream` with nodelay set and
//! keeps `email.smtp_connections` of them, used in parallel.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::Message as Mail;
use tokio::sync::Mutex;

use super::{Accepted, SendError};
use crate::config::{Email as EmailSettings, EmailTransport};

/// A command that takes longer than this is a transient failure.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Request: send one e-mail.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Accepted, SendError>")]
pub struct SendEmail(pub OutgoingEmail);

#[derive(Debug, Clone)]
pub struct OutgoingEmail {
    pub delivery_id: i64,
    pub to_address: String,
    pub to_name: String,
    pub subject: String,
    pub html: String,
    pub text: String,
}

/// Where and how to reach the SMTP server, parsed from `email.smtp_url`.
#[derive(Debug, Clone)]
struct SmtpTarget {
    host: String,
    port: u16,
    implicit_tls: bool,
    starttls: Tls,
    credentials: Option<Credentials>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tls {
    None,
    Opportunistic,
    Required,
}

fn parse_smtp_url(raw: &str) -> Result<SmtpTarget, String> {
    let url = url::Url::parse(raw).map_err(|e| format!("email.smtp_url: {e}"))?;
    let implicit_tls = match url.scheme() {
        "smtp" => false,
        "smtps" => true,
        other => return Err(format!("email.smtp_url: scheme {other:?} is not smtp or smtps")),
    };
    let host = url.host_str().ok_or("email.smtp_url: no host")?.to_string();
    let port = url.port().unwrap_or(if implicit_tls { 465 } else { 25 });
    let has_credentials = !url.username().is_empty();
    let starttls = match url.query_pairs().find(|(k, _)| k == "tls").map(|(_, v)| v.to_string()).as_deref() {
        // Credentials are never sent in the clear by default: with them and no
        // `tls=`, STARTTLS is required (docs/ARCHITECTURE.md, "Configuration").
        None if has_credentials && !implicit_tls => Tls::Required,
        None | Some("none") => Tls::None,
        Some("opportunistic") => Tls::Opportunistic,
        Some("required") => Tls::Required,
        Some(other) => return Err(format!("email.smtp_url: tls={other} is not none, opportunistic or required")),
    };
    let credentials = (!url.username().is_empty()).then(|| {
        let decode = |s: &str| percent_decode(s);
        Credentials::new(decode(url.username()), decode(url.password().unwrap_or("")))
    });
    Ok(SmtpTarget { host, port, implicit_tls, starttls, credentials })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

enum Transport {
    Smtp { target: SmtpTarget, slots: Vec<Mutex<Option<AsyncSmtpConnection>>>, next: AtomicUsize },
    File { dir: PathBuf },
    Log,
}

struct Inner {
    from: Mailbox,
    /// The domain of Message-IDs (`<delivery-id.invite@domain>`).
    domain: String,
    transport: Transport,
}

pub struct EmailSender {
    settings: EmailSettings,
    inner: Arc<Inner>,
}

impl EmailSender {
    /// Checks the settings, then starts the sender under a supervisor.
    ///
    /// # Errors
    /// `email.from` or `email.smtp_url` do not parse.
    pub fn start(settings: EmailSettings) -> Result<Addr<EmailSender>, String> {
        let inner = Arc::new(build(&settings)?);
        // Its own thread: SMTP conversations of every queue go through here.
        let arbiter = Arbiter::new();
        Ok(Supervisor::start_in_arbiter(&arbiter.handle(), move |_| EmailSender { settings, inner }))
    }
}

fn build(s: &EmailSettings) -> Result<Inner, String> {
    let from: Mailbox = s.from.parse().map_err(|e| format!("email.from: {e}"))?;
    let domain = from.email.domain().to_string();
    let transport = match s.transport {
        EmailTransport::Smtp => Transport::Smtp {
            target: parse_smtp_url(&s.smtp_url)?,
            slots: (0..s.smtp_connections.max(1)).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        },
        EmailTransport::File => Transport::File { dir: s.file_dir.clone() },
        EmailTransport::Log => Transport::Log,
    };
    Ok(Inner { from, domain, transport })
}

impl Actor for EmailSender {
    type Context = Context<Self>;
}

impl Supervised for EmailSender {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        // Fresh connections after a restart; the settings were valid at start.
        if let Ok(inner) = build(&self.settings) {
            self.inner = Arc::new(inner);
        }
    }
}

impl Handler<SendEmail> for EmailSender {
    type Result = ResponseFuture<Result<Accepted, SendError>>;

    fn handle(&mut self, msg: SendEmail, _ctx: &mut Self::Context) -> Self::Result {
        let inner = self.inner.clone();
        Box::pin(async move { inner.send(msg.0).await })
    }
}

impl Inner {
    fn compose(&self, m: &OutgoingEmail) -> Result<Mail, SendError> {
        let to: Mailbox = format!("{} <{}>", quote_name(&m.to_name), m.to_address)
            .parse()
            .or_else(|_| m.to_address.parse())
            .map_err(|e| SendError::permanent(format!("invalid recipient: {e}")))?;
        Mail::builder()
            .from(self.from.clone())
            .to(to)
            .subject(m.subject.clone())
            // Stable per delivery: a duplicate (the duplicate window of docs/ARCHITECTURE.md, "Guarantees")
            // carries the same Message-ID and is recognisable.
            .message_id(Some(format!("<{}.invite@{}>", m.delivery_id, self.domain)))
            .multipart(
                MultiPart::alternative()
                    .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(m.text.clone()))
                    .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(m.html.clone())),
            )
            .map_err(|e| SendError::permanent(format!("cannot build the message: {e}")))
    }

    async fn send(&self, m: OutgoingEmail) -> Result<Accepted, SendError> {
        let mail = self.compose(&m)?;
        match &self.transport {
            Transport::Log => {
                // Never the body: it holds the code.
                tracing::info!(delivery_id = m.delivery_id, subject = %m.subject, to = %crate::domain::contact::mask_email(&m.to_address), "e-mail (log transport)");
                Ok(Accepted::default())
            }
            Transport::File { dir } => {
                let bytes = mail.formatted();
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| SendError::transient(format!("{}: {e}", dir.display())))?;
                let path = dir.join(format!("{}.eml", m.delivery_id));
                let tmp = dir.join(format!(".{}.eml.tmp", m.delivery_id));
                tokio::fs::write(&tmp, &bytes)
                    .await
                    .map_err(|e| SendError::transient(format!("{}: {e}", tmp.display())))?;
                tokio::fs::rename(&tmp, &path)
                    .await
                    .map_err(|e| SendError::transient(format!("{}: {e}", path.display())))?;
                Ok(Accepted { provider_message_id: Some(path.display().to_string()) })
            }
            Transport::Smtp { target, slots, next } => {
                // A free connection if there is one; else wait for the next in turn.
                let mut guard = match slots.iter().find_map(|s| s.try_lock().ok()) {
                    Some(g) => g,
                    None => slots[next.fetch_add(1, Ordering::Relaxed) % slots.len()].lock().await,
                };
                let envelope = mail.envelope().clone();
                let bytes = mail.formatted();
                if guard.as_ref().is_none_or(|c| c.has_broken()) {
                    *guard = Some(timeout(connect(target)).await?);
                }
                let conn = guard.as_mut().expect("connected just above");
                match timeout(async { conn.send(&envelope, &bytes).await.map_err(classify) }).await {
                    Ok(response) => Ok(Accepted { provider_message_id: response.first_line().map(str::to_string) }),
                    Err(e) => {
                        // lettre aborts the session on an error; start fresh next time.
                        *guard = None;
                        Err(e)
                    }
                }
            }
        }
    }
}

/// Quotes a display name for a header: without quotes, a comma or `<` in a name
/// would change the meaning of the address list.
fn quote_name(name: &str) -> String {
    let clean: String = name.chars().filter(|c| !c.is_control() && *c != '"' && *c != '\\').collect();
    format!("\"{clean}\"")
}

async fn timeout<T>(fut: impl std::future::Future<Output = Result<T, SendError>>) -> Result<T, SendError> {
    tokio::time::timeout(SMTP_TIMEOUT, fut).await.unwrap_or_else(|_| Err(SendError::transient("SMTP timeout")))
}

async fn connect(t: &SmtpTarget) -> Result<AsyncSmtpConnection, SendError> {
    let hello = ClientId::default();
    let mut conn = if t.implicit_tls {
        let tls = TlsParameters::new(t.host.clone()).map_err(|e| SendError::permanent(format!("TLS setup: {e}")))?;
        AsyncSmtpConnection::connect_tokio1((t.host.as_str(), t.port), Some(SMTP_TIMEOUT), &hello, Some(tls), None)
            .await
            .map_err(classify)?
    } else {
        let stream = tokio::net::TcpStream::connect((t.host.as_str(), t.port))
            .await
            .map_err(|e| SendError::transient(format!("SMTP connect {}:{}: {e}", t.host, t.port)))?;
        // The reason herald opens its own sockets (see the module comment).
        stream.set_nodelay(true).map_err(|e| SendError::transient(format!("TCP_NODELAY: {e}")))?;
        let mut conn = AsyncSmtpConnection::connect_with_transport(Box::new(stream), &hello).await.map_err(classify)?;
        let want_tls = match t.starttls {
            Tls::None => false,
            Tls::Opportunistic => conn.can_starttls(),
            Tls::Required => true,
        };
        if want_tls {
            let tls =
                TlsParameters::new(t.host.clone()).map_err(|e| SendError::permanent(format!("TLS setup: {e}")))?;
            conn.starttls(tls, &hello).await.map_err(classify)?;
        }
        conn
    };
    if let Some(creds) = &t.credentials {
        conn.auth(&[Mechanism::Plain, Mechanism::Login], creds).await.map_err(classify)?;
    }
    Ok(conn)
}

/// SMTP 5xx and client-side errors are permanent; 4xx, I/O, TLS and timeouts are
/// transient.
fn classify(e: lettre::transport::smtp::Error) -> SendError {
    let message = format!("SMTP: {e}");
    if e.is_permanent() || e.is_client() {
        SendError::permanent(message)
    } else {
        SendError::transient(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls() {
        let t = parse_smtp_url("smtp://127.0.0.1:1025").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.implicit_tls, t.starttls), ("127.0.0.1", 1025, false, Tls::None));
        let t = parse_smtp_url("smtps://user:p%40ss@mail.example.com").unwrap();
        assert_eq!((t.port, t.implicit_tls), (465, true));
        assert!(t.credentials.is_some());
        let t = parse_smtp_url("smtp://mail.example.com:587?tls=required").unwrap();
        assert_eq!(t.starttls, Tls::Required);
        assert!(parse_smtp_url("http://x").is_err());
        let t = parse_smtp_url("smtp://user:pass@mail.example.com:587").unwrap();
        assert_eq!(t.starttls, Tls::Required, "credentials are not sent in the clear by default");
        let t = parse_smtp_url("smtp://user:pass@127.0.0.1:1025?tls=none").unwrap();
        assert_eq!(t.starttls, Tls::None, "unless asked for explicitly");
        assert!(parse_smtp_url("smtp://x?tls=maybe").is_err());
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("p%40ss"), "p@ss");
        assert_eq!(percent_decode("plain"), "plain");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
