//! The `herald` command line: parse, load configuration, run the subcommand.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use herald::auth::{Principal, TokenRequest};
use herald::config::Settings;
use herald::domain::Permission;
use herald::startup::{self, Application};

// glibc's malloc showed as a quarter of herald's CPU under a bulk load (render,
// MIME encoding and JSON allocate per delivery); mimalloc does the same work in
// a fraction of that.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "herald", version, about = "Resends invite codes and delivers them by e-mail and SMS")]
struct Cli {
    /// Folder with <HERALD_ENV>.toml overrides (the defaults are built in).
    #[arg(long, global = true, env = "HERALD_CONFIG_DIR", default_value = "config")]
    config_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP API (and, with the worker role, the delivery workers).
    Serve,
    /// Create the database if needed and run the migrations, then exit.
    Migrate,
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage users.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Re-invite many users of an organization: publishes a bulk job and follows it.
    BulkResend(BulkResendArgs),
    /// Inspect and replay deliveries.
    #[command(subcommand)]
    Deliveries(DeliveriesCommand),
    /// Register herald as a ZITADEL organization's HTTP notification provider.
    #[command(subcommand)]
    ZitadelProvider(ZitadelProviderCommand),
}

#[derive(Debug, Subcommand)]
enum ZitadelProviderCommand {
    /// Register a provider; prints its id (ZITADEL posts to /zitadel/v1/notifications/<id>).
    Add {
        #[arg(long)]
        org: String,
        /// email or sms: the kind of ZITADEL provider that points here.
        #[arg(long, value_parser = parse_channel)]
        channel: herald::domain::Channel,
        /// The signingKey ZITADEL answered (repeat while it rotates).
        #[arg(long = "signing-key", env = "HERALD_ZITADEL_SIGNING_KEY", value_delimiter = ',')]
        signing_keys: Vec<String>,
        /// Accept unsigned posts (ZITADEL before v4.2 signs nothing).
        #[arg(long)]
        no_signature: bool,
        #[arg(long, default_value = "")]
        description: String,
        /// Send ZITADEL's invite codes in herald's own invite template, not ZITADEL's texts.
        #[arg(long)]
        herald_invite_template: bool,
    },
    /// List providers.
    List {
        #[arg(long)]
        org: Option<String>,
    },
    /// Remove a provider.
    Remove { id: String },
}

fn parse_channel(s: &str) -> Result<herald::domain::Channel, String> {
    herald::domain::Channel::from_db(s).ok_or_else(|| format!("unknown channel {s:?}; email or sms"))
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Import users from a CSV file (with a header row) or JSON lines: username,
    /// email, phone, given_name, family_name, display_name, language. Bad rows are
    /// reported by line number and skipped.
    Import {
        file: PathBuf,
        #[arg(long)]
        org: String,
    },
}

#[derive(Debug, Args)]
struct BulkResendArgs {
    /// The organization.
    #[arg(long)]
    org: String,
    /// Every user whose invite was sent and not yet verified.
    #[arg(long, required_unless_present = "file", conflicts_with = "file")]
    all_pending: bool,
    /// A file of user ids, one per line.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Publish and exit, without following the job.
    #[arg(long)]
    no_follow: bool,
}

#[derive(Debug, Subcommand)]
enum DeliveriesCommand {
    /// List deliveries, newest first.
    List {
        /// queued, sending, sent, retrying, dead, superseded, expired or cancelled.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        org: Option<String>,
        #[arg(long)]
        user: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// One delivery with its attempts.
    Show { id: i64 },
    /// Replay dead deliveries: one (--id), all (--all), or by organization and age.
    Replay(ReplayArgs),
}

#[derive(Debug, Args)]
struct ReplayArgs {
    /// One delivery.
    #[arg(long, conflicts_with_all = ["all", "org", "since"])]
    id: Option<i64>,
    /// Every dead delivery.
    #[arg(long, required_unless_present_any = ["id", "org", "since"])]
    all: bool,
    /// Dead deliveries of one organization.
    #[arg(long)]
    org: Option<String>,
    /// Dead deliveries created at or after this time (RFC 3339).
    #[arg(long)]
    since: Option<chrono::DateTime<chrono::Utc>>,
    /// Count what would be replayed; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Give stale deliveries (code replaced or expired) a new code.
    #[arg(long)]
    reissue: bool,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token and print it (it is shown only this once).
    Create(TokenCreate),
}

#[derive(Debug, Args)]
struct TokenCreate {
    /// Scope the token to one organization.
    #[arg(long, required_unless_present = "instance", conflicts_with = "instance")]
    org: Option<String>,
    /// Scope the token to every organization.
    #[arg(long)]
    instance: bool,
    /// A permission (repeat for more): org.write user.read user.write delivery.read
    /// delivery.replay bulk.write token.write provider.write
    #[arg(long = "permission", required = true, value_parser = parse_permission)]
    permissions: Vec<Permission>,
    /// What the token is for.
    #[arg(long, default_value = "")]
    description: String,
}

fn parse_permission(s: &str) -> Result<Permission, String> {
    Permission::parse(s).ok_or_else(|| {
        let all: Vec<_> = Permission::ALL.iter().map(|p| p.as_str()).collect();
        format!("unknown permission {s:?}; one of {}", all.join(", "))
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env: Vec<(String, String)> = std::env::vars().collect();
    let settings = match Settings::load(&cli.config_dir, &env) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("herald: {e}");
            return ExitCode::from(2);
        }
    };
    herald::telemetry::init(&settings.log);
    let result = actix_web::rt::System::new().block_on(run(cli.command, settings));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("herald: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            let app = Application::build(settings).await?;
            app.run_until_stopped().await
        }
        Command::Migrate => {
            startup::open_database(&Settings {
                database: herald::config::Database { migrate_on_start: true, ..settings.database.clone() },
                ..settings
            })
            .await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Users(UsersCommand::Import { file, org }) => herald::cli::import_users(&settings, &file, &org).await,
        Command::BulkResend(a) => herald::cli::bulk_resend(&settings, &a.org, a.file.as_deref(), !a.no_follow).await,
        Command::Deliveries(DeliveriesCommand::List { status, org, user, limit }) => {
            let filter =
                herald::store::deliveries::DeliveryFilter { status, org_id: org, user_id: user, ..Default::default() };
            herald::cli::list_deliveries(&settings, filter, limit).await
        }
        Command::Deliveries(DeliveriesCommand::Show { id }) => herald::cli::show_delivery(&settings, id).await,
        Command::Deliveries(DeliveriesCommand::Replay(a)) => {
            let target = match a.id {
                Some(id) => herald::cli::ReplayTarget::One(id),
                None => herald::cli::ReplayTarget::Matching { org: a.org, since: a.since },
            };
            herald::cli::replay(&settings, target, a.dry_run, a.reissue).await
        }
        Command::ZitadelProvider(ZitadelProviderCommand::Add {
            org,
            channel,
            signing_keys,
            no_signature,
            description,
            herald_invite_template,
        }) => {
            let add = herald::zitadel::cli::AddProvider {
                org,
                channel,
                signing_keys,
                require_signature: !no_signature,
                description,
                use_herald_invite_template: herald_invite_template,
            };
            herald::zitadel::cli::add(&settings, add).await
        }
        Command::ZitadelProvider(ZitadelProviderCommand::List { org }) => {
            herald::zitadel::cli::list(&settings, org).await
        }
        Command::ZitadelProvider(ZitadelProviderCommand::Remove { id }) => {
            herald::zitadel::cli::remove(&settings, &id).await
        }
        Command::Token(TokenCommand::Create(args)) => {
            let pool = startup::open_database(&settings).await?;
            let state = startup::services(&settings, pool).await?;
            let issued = state
                .auth
                .issue(
                    &Principal::cli(),
                    TokenRequest {
                        org_id: args.org,
                        permissions: args.permissions,
                        description: args.description,
                        expires_at: None,
                    },
                )
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message()))?;
            eprintln!("token id: {} (the token is shown only once)", issued.token_id);
            println!("{}", issued.token);
            Ok(())
        }
    }
}
