//! A real SMTP server inside the test process: it speaks SMTP over TCP on
//! 127.0.0.1, keeps what it receives, and can be told to refuse a recipient with a
//! 4xx or 5xx (a number of times, or always). Optionally slow, to keep deliveries
//! in flight.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One received message.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub raw: String,
}

#[derive(Default)]
struct State {
    mails: Vec<Mail>,
    /// recipient → (reply, how many more times; None = always).
    refusals: HashMap<String, (String, Option<usize>)>,
    /// Delay before answering DATA's final dot.
    delay: Duration,
    /// RCPT commands seen, refused ones included.
    rcpt_attempts: HashMap<String, usize>,
    /// Woken at every mail accepted: what `wait_for` waits on.
    arrived: Arc<tokio::sync::Notify>,
}

#[derive(Clone)]
pub struct SmtpServer {
    pub port: u16,
    state: Arc<Mutex<State>>,
}

impl SmtpServer {
    pub async fn start() -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        actix_web::rt::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else { return };
                let state = shared.clone();
                actix_web::rt::spawn(async move {
                    let _ = session(socket, state).await;
                });
            }
        });
        SmtpServer { port, state }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Answers RCPT for `recipient` with `reply` (e.g. `451 4.7.1 Try later`),
    /// `times` times (None: always), then accepts.
    pub fn refuse(&self, recipient: &str, reply: &str, times: Option<usize>) {
        self.state.lock().unwrap().refusals.insert(recipient.to_ascii_lowercase(), (reply.to_string(), times));
    }

    pub fn set_delay(&self, d: Duration) {
        self.state.lock().unwrap().delay = d;
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.state.lock().unwrap().mails.clone()
    }

    pub fn mails_to(&self, recipient: &str) -> Vec<Mail> {
        self.mails().into_iter().filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(recipient))).collect()
    }

    /// How many mails arrived, without copying them (the server shares the test's
    /// thread: copying thousands of mails on every poll slows it down).
    pub fn received(&self) -> usize {
        self.state.lock().unwrap().mails.len()
    }

    /// How many mails to `recipient` arrived, without copying them.
    pub fn received_by(&self, recipient: &str) -> usize {
        let st = self.state.lock().unwrap();
        st.mails.iter().filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(recipient))).count()
    }

    pub fn rcpt_attempts(&self, recipient: &str) -> usize {
        *self.state.lock().unwrap().rcpt_attempts.get(&recipient.to_ascii_lowercase()).unwrap_or(&0)
    }

    /// Waits until `n` mails to `recipient` arrived (or panics after `timeout`).
    pub async fn wait_for(&self, recipient: &str, n: usize, timeout: Duration) -> Vec<Mail> {
        let deadline = tokio::time::Instant::now() + timeout;
        let arrived = self.state.lock().unwrap().arrived.clone();
        loop {
            // Registered before the look, so a mail accepted in between wakes it.
            let next = arrived.notified();
            tokio::pin!(next);
            next.as_mut().enable();
            let mails = self.mails_to(recipient);
            if mails.len() >= n {
                return mails;
            }
            let woken = tokio::time::timeout_at(deadline, next).await;
            assert!(woken.is_ok(), "{n} mail(s) to {recipient} expected, got {} in {timeout:?}", mails.len());
        }
    }
}

async fn session(socket: tokio::net::TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 herald-test ESMTP\r\n").await?;
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_string();
        let upper = cmd.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") {
            "250-herald-test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8".into()
        } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
            "250 OK".into()
        } else if upper.starts_with("RSET") {
            from.clear();
            to.clear();
            "250 OK".into()
        } else if upper.starts_with("MAIL FROM:") {
            from = address(&cmd[10..]);
            to.clear();
            "250 OK".into()
        } else if upper.starts_with("RCPT TO:") {
            let rcpt = address(&cmd[8..]);
            let mut st = state.lock().unwrap();
            *st.rcpt_attempts.entry(rcpt.to_ascii_lowercase()).or_default() += 1;
            let refusal = match st.refusals.get_mut(&rcpt.to_ascii_lowercase()) {
                Some((reply, None)) => Some(reply.clone()),
                Some((reply, Some(n))) if *n > 0 => {
                    *n -= 1;
                    Some(reply.clone())
                }
                _ => None,
            };
            match refusal {
                Some(r) => r,
                None => {
                    to.push(rcpt);
                    "250 OK".into()
                }
            }
        } else if upper == "DATA" {
            write.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await?;
            let mut raw = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" || line == ".\n" {
                    break;
                }
                raw.push_str(line.strip_prefix('.').filter(|_| line.starts_with("..")).unwrap_or(&line));
            }
            // A server that answers slowly on purpose (`set_delay`): the delay is
            // what the test arranges, not a wait for something to happen.
            let delay = state.lock().unwrap().delay;
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let mut s = state.lock().unwrap();
            s.mails.push(Mail { from: from.clone(), to: to.clone(), raw });
            s.arrived.notify_waiters();
            drop(s);
            "250 OK queued".into()
        } else if upper.starts_with("QUIT") {
            write.write_all(b"221 Bye\r\n").await?;
            return Ok(());
        } else {
            "502 Command not implemented".into()
        };
        write.write_all(format!("{reply}\r\n").as_bytes()).await?;
    }
}

fn address(arg: &str) -> String {
    let arg = arg.trim();
    let inner = arg.split_once('<').and_then(|(_, r)| r.split_once('>')).map(|(a, _)| a).unwrap_or(arg);
    inner.to_string()
}

impl Mail {
    /// A header's value (unfolded).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.raw.split("\r\n\r\n").next().unwrap_or("");
        let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        unfolded.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    /// The decoded `Subject` (RFC 2047 `=?utf-8?b?…?=` words included).
    pub fn subject(&self) -> String {
        decode_words(&self.header("Subject").unwrap_or_default())
    }

    /// The decoded body of the part with this content type (`text/plain`, `text/html`).
    pub fn part(&self, content_type: &str) -> Option<String> {
        let ct = self.header("Content-Type")?;
        let boundary = ct.split("boundary=").nth(1)?.trim_matches('"').to_string();
        for part in self.raw.split(&format!("--{boundary}")) {
            let Some((head, body)) = part.trim_start_matches("\r\n").split_once("\r\n\r\n") else { continue };
            let head_l = head.to_ascii_lowercase();
            if !head_l.contains(&format!("content-type: {content_type}")) {
                continue;
            }
            let body = body.trim_end_matches("\r\n");
            return Some(if head_l.contains("quoted-printable") {
                quoted_printable(body)
            } else if head_l.contains("base64") {
                String::from_utf8(base64::engine::general_purpose::STANDARD.decode(body.replace("\r\n", "")).unwrap())
                    .unwrap()
            } else {
                body.to_string()
            });
        }
        None
    }

    pub fn is_multipart_alternative(&self) -> bool {
        self.header("Content-Type").is_some_and(|c| c.to_ascii_lowercase().starts_with("multipart/alternative"))
    }

    /// The invite code shown after `label` in the text part (`Your invite code: K3M9QX`).
    pub fn code_from_link(&self) -> String {
        let text = self.part("text/plain").expect("a text/plain part");
        let at = text.find("code=").expect("a link with code=");
        text[at + 5..].chars().take_while(|c| c.is_ascii_alphanumeric()).collect()
    }
}

fn quoted_printable(s: &str) -> String {
    let joined = s.replace("=\r\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            if let Some(b) = joined.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok()) {
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

fn decode_words(s: &str) -> String {
    let mut out = String::new();
    // Whitespace between two encoded words is not part of the text (RFC 2047 §6.2).
    let mut last_encoded = false;
    for word in s.split_whitespace() {
        let decoded = word.strip_prefix("=?").and_then(|w| w.strip_suffix("?=")).and_then(|w| {
            let mut it = w.splitn(3, '?');
            let (_charset, enc, text) = (it.next()?, it.next()?, it.next()?);
            match enc.to_ascii_lowercase().as_str() {
                "b" => {
                    base64::engine::general_purpose::STANDARD.decode(text).ok().and_then(|b| String::from_utf8(b).ok())
                }
                "q" => Some(quoted_printable(&text.replace('_', " "))),
                _ => None,
            }
        });
        let joins_encoded = last_encoded && decoded.is_some();
        if !out.is_empty() && !joins_encoded {
            out.push(' ');
        }
        last_encoded = decoded.is_some();
        out.push_str(decoded.as_deref().unwrap_or(word));
    }
    out
}
