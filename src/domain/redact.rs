//! Personal data out of provider replies (docs/ARCHITECTURE.md, "Retries"): an SMTP
//! server's `550 5.1.1 <ada@example.com>: Recipient rejected` or an SMS provider's
//! body that names the number would otherwise reach `lastError`, the attempt rows,
//! the log and the dead queue's `x-herald-reason`. The SMTP code and the enhanced
//! status stay, since they say what went wrong.

use super::contact::{mask_email, mask_phone};

/// Digits that make a run a phone number rather than a code or a status
/// (`550`, `5.1.1`, `2026-11-30` stay).
const PHONE_DIGITS: usize = 9;

/// `text` with every e-mail address masked like a delivery's recipient
/// (`a***@example.com`) and every phone-like run of digits like a phone
/// (`+4179*****67`).
pub fn mask_personal_data(text: &str) -> String {
    mask_phones(&mask_emails(text))
}

fn is_local(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._%+-!#$&'*/=?^`{|}~".contains(c)
}

fn is_domain(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '.' || c == '-'
}

fn mask_emails(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '@' {
            let start = {
                let mut s = i;
                while s > 0 && is_local(chars[s - 1]) {
                    s -= 1;
                }
                s
            };
            let mut end = i + 1;
            while end < chars.len() && is_domain(chars[end]) {
                end += 1;
            }
            if start < i && end > i + 1 {
                // The local part was already copied: take it back and mask it.
                let local_len: usize = chars[start..i].iter().map(|c| c.len_utf8()).sum();
                out.truncate(out.len() - local_len);
                let address: String = chars[start..end].iter().collect();
                out.push_str(&mask_email(&address));
                i = end;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

fn mask_phones(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let starts = (chars[i] == '+' || chars[i].is_ascii_digit()) && (i == 0 || !chars[i - 1].is_alphanumeric());
        if starts {
            // A run of digits, with the separators people write numbers with (not
            // dots: those make IP addresses and statuses, which stay readable).
            let mut end = i + 1;
            let mut last_digit = if chars[i].is_ascii_digit() { i + 1 } else { i };
            while end < chars.len() && (chars[end].is_ascii_digit() || " -()".contains(chars[end])) {
                if chars[end].is_ascii_digit() {
                    last_digit = end + 1;
                }
                end += 1;
            }
            let run = &chars[i..last_digit];
            if run.iter().filter(|c| c.is_ascii_digit()).count() >= PHONE_DIGITS {
                out.push_str(&mask_phone(&run.iter().collect::<String>()));
                i = last_digit;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_masked_and_the_smtp_codes_kept() {
        assert_eq!(
            mask_personal_data("SMTP: permanent error (550): 5.1.1 <ada@example.com>: Recipient rejected"),
            "SMTP: permanent error (550): 5.1.1 <a***@example.com>: Recipient rejected"
        );
        assert_eq!(mask_personal_data("to a.b+c@x.example, d@y.example"), "to a***@x.example, d***@y.example");
    }

    #[test]
    fn phone_numbers_are_masked_in_any_usual_writing() {
        let masked = mask_personal_data(r#"SMS provider answered 400: {"to":"+41791234567","error":"blocked"}"#);
        assert!(!masked.contains("1234567"), "{masked}");
        assert!(masked.contains("400") && masked.contains("blocked"), "{masked}");
        assert!(!mask_personal_data("call +41 79 123 45 67 now").contains("123 45"));
    }

    #[test]
    fn short_numbers_dates_and_plain_text_stay() {
        for keep in [
            "421 4.7.0 try again later",
            "HTTP 503 at 2026-11-30",
            "no personal data",
            "queued as 4XYZ12",
            "connect 192.168.100.200:25",
        ] {
            assert_eq!(mask_personal_data(keep), keep);
        }
    }
}
