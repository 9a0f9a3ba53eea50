//! The users a fault test starts from: imported by herald's own command line
//! (`herald users import`), each given a sent, unexpired e-mail code the way Create
//! leaves one but without a delivery, so the only mails are those the test causes.

use herald::domain::{CodeCipher, InviteCode};
use serde_json::json;

use super::Fault;

impl Fault {
    /// A new organization, made through `herald`'s API; its id.
    pub async fn org(&self, herald: &super::Herald) -> String {
        let resp = self
            .client
            .post(herald.url("/v2/organizations"))
            .bearer_auth(&self.bootstrap)
            .json(&json!({"name": format!("Org {:08x}", rand::random::<u32>())}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let body: serde_json::Value = resp.json().await.unwrap();
        body["organizationId"].as_str().expect("organizationId").to_string()
    }

    /// `n` users of `org` with the addresses `<local>0@example.com` …, each with a
    /// sent code and no delivery; their ids, in that order.
    pub async fn users_with_codes(&self, org: &str, local: &str, n: usize) -> Vec<String> {
        let users = self.import(org, local, n).await;
        self.seed_codes(org, &users).await;
        users
    }

    /// The address of user `i` of `local`.
    pub fn address(local: &str, i: usize) -> String {
        format!("{local}{i}@example.com")
    }

    async fn import(&self, org: &str, local: &str, n: usize) -> Vec<String> {
        let mut csv = String::from("username,email,given_name,family_name\n");
        for i in 0..n {
            csv.push_str(&format!("{local}{i},{},Ada,Lovelace {i}\n", Self::address(local, i)));
        }
        let path = std::env::temp_dir().join(format!("herald-fault-{:016x}.csv", rand::random::<u64>()));
        std::fs::write(&path, csv).unwrap();
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(["users", "import"])
            .arg(&path)
            .args(["--org", org])
            .env_clear()
            .env("HERALD_CONFIG_DIR", std::env::temp_dir().join("herald-fault-no-config"))
            .envs(self.env())
            .output()
            .await
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(out.status.success(), "herald users import: {}", String::from_utf8_lossy(&out.stderr));

        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT email, id FROM users WHERE org_id = $1 AND username LIKE $2")
                .bind(org)
                .bind(format!("{local}%"))
                .fetch_all(&self.pool)
                .await
                .unwrap();
        let by_email: std::collections::HashMap<String, String> = rows.into_iter().collect();
        assert_eq!(by_email.len(), n, "{}", String::from_utf8_lossy(&out.stdout));
        (0..n).map(|i| by_email[&Self::address(local, i)].clone()).collect()
    }

    /// The state Create leaves (the code sealed under the test's key, an
    /// `invite.code.added` event, the user's sequence bumped), written in one
    /// transaction for thousands of users.
    async fn seed_codes(&self, org: &str, users: &[String]) {
        let defaults = herald::config::Settings::defaults();
        let cipher = CodeCipher::new(&self.key);
        let sealed: Vec<Vec<u8>> =
            users.iter().map(|u| cipher.seal(&InviteCode::generate(defaults.invite.code_length), u)).collect();
        let mut tx = self.pool.begin().await.unwrap();
        sqlx::query("UPDATE users SET sequence = sequence + 1, changed_at = now() WHERE id = ANY($1)")
            .bind(users)
            .execute(&mut *tx)
            .await
            .unwrap();
        let sequences: Vec<i64> = sqlx::query_scalar(
            "SELECT u.sequence FROM UNNEST($1::text[]) WITH ORDINALITY AS s(id, n) JOIN users u ON u.id = s.id
             ORDER BY s.n",
        )
        .bind(users)
        .fetch_all(&mut *tx)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO events (aggregate_id, aggregate_type, sequence, type, payload, resource_owner, created_at,
                                 created_by)
             SELECT id, 'user', seq, 'invite.code.added', '{\"channel\": \"email\", \"returned\": false}', $3, now(),
                    'fault-test'
             FROM UNNEST($1::text[], $2::bigint[]) AS s(id, seq)",
        )
        .bind(users)
        .bind(&sequences)
        .bind(org)
        .execute(&mut *tx)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO invite_codes (user_id, code_encrypted, expires_at, url_template, application_name, channel,
                                       returned, failed_checks, event_sequence, created_at)
             SELECT id, sealed, now() + interval '1 day', $3, 'Acme', 'email', false, 0, seq, now()
             FROM UNNEST($1::text[], $2::bytea[], $4::bigint[]) AS s(id, sealed, seq)",
        )
        .bind(users)
        .bind(&sealed)
        .bind(&defaults.invite.default_url_template)
        .bind(&sequences)
        .execute(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
}
