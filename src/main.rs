//! The `meridian` command: parses arguments, sets up logging and signals, and hands over to the
//! library.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use meridian::config::Config;
use meridian::control::Control;

#[derive(Parser)]
#[command(
    name = "meridian",
    version,
    about = "Authoritative GeoDNS load-balancing server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the configured zones.
    Serve {
        #[arg(long, default_value = "meridian.toml")]
        config: PathBuf,
    },
    /// Validate the config and every zone, print what was loaded, exit non-zero on error.
    Check {
        #[arg(long, default_value = "meridian.toml")]
        config: PathBuf,
    },
    /// Print the SHA-256 of an API token, for `[[api.tokens]] sha256 = "…"`.
    HashToken {
        /// The token (read from standard input when absent).
        token: Option<String>,
    },
    /// Make a DNSSEC signing key for a zone: writes it (PKCS#8 PEM, mode 600) and prints its
    /// DNSKEY and the DS record to give the parent zone.
    Keygen {
        /// The zone the key signs.
        #[arg(long)]
        zone: String,
        /// ecdsap256sha256 (13) or ed25519 (15).
        #[arg(long, default_value = "ecdsap256sha256")]
        algorithm: String,
        /// The folder the key file is written to.
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
    /// Print the DNSKEY and DS records of a zone's key file again.
    Ds {
        #[arg(long)]
        zone: String,
        /// The key file `keygen` wrote.
        key: PathBuf,
    },
    /// Show why a client gets the answer it gets for a name.
    Explain {
        #[arg(long, default_value = "meridian.toml")]
        config: PathBuf,
        /// The client (or ECS) address to answer for.
        #[arg(long)]
        client: std::net::IpAddr,
        /// The name asked.
        name: String,
        /// The record type asked.
        #[arg(default_value = "A")]
        rtype: String,
    },
    /// Check the zones folder's journal of changes, or repair a damaged one (stop `serve` first).
    Journal {
        #[command(subcommand)]
        action: JournalAction,
    },
    /// Show how clients would move between datacenters and endpoints with a changed zone file
    /// or GeoIP database, before making the change.
    Simulate {
        #[arg(long, default_value = "meridian.toml")]
        config: PathBuf,
        /// A changed zone file, `<origin>.toml`, in place of the served one.
        #[arg(long)]
        zone: Option<PathBuf>,
        /// The zone `--zone` is (needed when its file name is not a served zone's: a new zone).
        #[arg(long, requires = "zone")]
        origin: Option<String>,
        /// A different GeoIP database in place of the configured one.
        #[arg(long)]
        geoip: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum JournalAction {
    /// Report damaged bytes, changes lost to damage and edits that no longer apply; exit
    /// non-zero unless the journal can be served as it is.
    Check {
        #[arg(long, default_value = "meridian.toml")]
        config: PathBuf,
    },
    /// Copy the journal aside, then rewrite it with its sound records less the edits that no
    /// longer apply.
    Repair {
        #[arg(long, default_value = "meridian.toml")]
        config: PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MERIDIAN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli.command {
        Command::Serve { .. } => meridian::sys::ignore_file_size_signal(),
        // `meridian simulate | head`: a closed pipe ends a command quietly, as it does `ls`.
        _ => meridian::sys::default_sigpipe(),
    }
    let result = match cli.command {
        Command::Serve { config } => serve(&config),
        Command::Check { config } => check(&config),
        Command::Journal { action } => journal(action),
        Command::HashToken { token } => hash_token(token),
        Command::Keygen {
            zone,
            algorithm,
            out,
        } => keygen(&zone, &algorithm, &out),
        Command::Ds { zone, key } => ds(&zone, &key),
        Command::Explain {
            config,
            client,
            name,
            rtype,
        } => explain(&config, client, &name, &rtype),
        Command::Simulate {
            config,
            zone,
            origin,
            geoip,
            json,
        } => simulate(&config, zone.as_deref(), origin, geoip.as_deref(), json),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("meridian: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn load(path: &Path) -> anyhow::Result<(Config, Control)> {
    let config = Config::load(path)?;
    let state = Control::load(config.sources())?;
    Ok((config, state))
}

fn journal(action: JournalAction) -> anyhow::Result<()> {
    let (config, repair) = match action {
        JournalAction::Check { config } => (config, false),
        JournalAction::Repair { config } => (config, true),
    };
    let dir = Config::load(&config)?.zones_dir;
    let report = match repair {
        true => meridian::store::repair::repair(&dir),
        false => meridian::store::repair::check(&dir),
    };
    let report = report.with_context(|| format!("the journal in {}", dir.display()))?;
    print!("{report}");
    match (repair, report.is_sound()) {
        (true, false) => println!("repaired: `meridian serve` applies it as it is now"),
        (false, false) => anyhow::bail!("the journal is damaged: `meridian journal repair`"),
        (_, true) => println!("the journal is sound"),
    }
    Ok(())
}

fn check(path: &Path) -> anyhow::Result<()> {
    let (config, state) = load(path)?;
    // What `serve` would refuse, `check` refuses: the API's tokens and their environment.
    if let Some(api) = &config.api {
        meridian::api::check_tokens(api).map_err(anyhow::Error::msg)?;
    }
    // And DNS over TLS's certificate and key, read as `serve` reads them.
    if let Some(tls) = &config.tls {
        meridian::dns::tls::acceptor_for(tls).map_err(anyhow::Error::msg)?;
    }
    let snapshot = state.snapshot();
    if let Some(db) = &snapshot.geo {
        println!("GeoIP: {} ({})", db.describe(), db.path().display());
    }
    let mut zones: Vec<_> = snapshot.zones.iter().collect();
    zones.sort_by(|a, b| a.origin.cmp(&b.origin));
    println!(
        "{}: ok, {} zone(s) from {}",
        path.display(),
        zones.len(),
        config.zones_dir.display()
    );
    for zone in zones {
        let (names, records, pools) = zone.stats();
        println!(
            "  {} serial {}: {names} names, {records} static records, {pools} pools",
            zone.origin,
            zone.serial()
        );
    }
    drop(snapshot);
    // The process ends here: freeing a large zone object by object would only delay the exit.
    std::mem::forget(state);
    Ok(())
}

fn hash_token(token: Option<String>) -> anyhow::Result<()> {
    let token = match token {
        Some(t) => t,
        None => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            line.trim().to_owned()
        }
    };
    anyhow::ensure!(!token.is_empty(), "an empty token");
    println!("{}", meridian::api::hash_token(&token));
    Ok(())
}

fn zone_name(zone: &str) -> anyhow::Result<hickory_proto::rr::Name> {
    let mut name = hickory_proto::rr::Name::from_ascii(zone)
        .with_context(|| format!("{zone} is not a domain name"))?;
    name.set_fqdn(true);
    Ok(name.to_lowercase())
}

fn keygen(zone: &str, algorithm: &str, out: &Path) -> anyhow::Result<()> {
    use meridian::dnssec::{self, Algorithm, FLAGS_CSK, SigningKey};
    let origin = zone_name(zone)?;
    let algorithm = Algorithm::parse(algorithm).map_err(anyhow::Error::msg)?;
    let der = SigningKey::generate(algorithm).map_err(anyhow::Error::msg)?;
    let key = SigningKey::from_pkcs8(&der, FLAGS_CSK).map_err(anyhow::Error::msg)?;
    let dnskey = key.dnskey();
    let file = out.join(format!(
        "K{}+{:03}+{:05}.pem",
        origin.to_ascii(),
        algorithm.number(),
        dnssec::key_tag(&dnskey)
    ));
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&file)
        .with_context(|| format!("cannot create {}", file.display()))?;
    f.write_all(dnssec::to_pem(&der).as_bytes())?;
    f.sync_all()?;
    eprintln!(
        "wrote {} (keep it secret: readable by the server only)",
        file.display()
    );
    println!("{}", dnssec::dnskey_line(&origin, &dnskey));
    println!("{}", dnssec::ds_line(&origin, &dnskey));
    Ok(())
}

fn ds(zone: &str, key: &Path) -> anyhow::Result<()> {
    use meridian::dnssec::{self, FLAGS_CSK, SigningKey};
    let origin = zone_name(zone)?;
    let key = SigningKey::load(key, FLAGS_CSK).map_err(anyhow::Error::msg)?;
    println!("{}", dnssec::dnskey_line(&origin, &key.dnskey()));
    println!("{}", dnssec::ds_line(&origin, &key.dnskey()));
    Ok(())
}

fn explain(path: &Path, client: std::net::IpAddr, name: &str, rtype: &str) -> anyhow::Result<()> {
    use hickory_proto::rr::{Name, RecordType};
    let (_, state) = load(path)?;
    let name = Name::from_ascii(name)
        .with_context(|| format!("{name} is not a domain name"))?
        .to_lowercase();
    let mut name = name;
    name.set_fqdn(true);
    let rtype: RecordType = rtype
        .to_ascii_uppercase()
        .parse()
        .with_context(|| format!("{rtype} is not a record type"))?;
    let mut explanation = meridian::explain::explain(&state.snapshot(), &name, rtype, client);
    explanation.mark_registered(&state.registrations());
    print!("{explanation}");
    Ok(())
}

fn simulate(
    path: &Path,
    zone: Option<&Path>,
    origin: Option<String>,
    geoip: Option<&Path>,
    json: bool,
) -> anyhow::Result<()> {
    let (_, state) = load(path)?;
    let changed = zone
        .map(|file| -> anyhow::Result<_> {
            let named = origin.is_some();
            let origin = match &origin {
                Some(origin) => origin.as_str(),
                None => file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_suffix(".toml"))
                    .with_context(|| format!("{}: name the file <origin>.toml", file.display()))?,
            };
            let mut origin = hickory_proto::rr::Name::from_ascii(origin)
                .with_context(|| format!("{origin} is not a domain name"))?;
            origin.set_fqdn(true);
            // A file named after no served zone is more likely a typo than a new zone.
            if !named && state.snapshot().zones.get(&origin).is_none() {
                anyhow::bail!(
                    "{}: {origin} is not a zone of the config; name the file <origin>.toml \
                     after a served zone, or give --origin for a new zone",
                    file.display()
                );
            }
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            Ok((origin.to_lowercase(), text))
        })
        .transpose()?;
    let zone = changed
        .as_ref()
        .map(|(origin, text)| (origin, text.as_str()));
    let after = state.preview(zone, geoip)?;
    let report = meridian::simulate::simulate(&state.snapshot(), &after);
    match json {
        true => println!("{}", serde_json::to_string_pretty(&report)?),
        false => print!("{report}"),
    }
    Ok(())
}

fn serve(path: &Path) -> anyhow::Result<()> {
    let (config, state) = load(path)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the runtime")?;
    runtime.block_on(async move {
        let state = Arc::new(state);
        tracing::info!(zones = state.snapshot().zones.len(), "zones loaded");
        let shutdown = CancellationToken::new();
        tokio::spawn(signals(state.clone(), shutdown.clone()));
        meridian::run(config, state, shutdown)
            .await
            .context("cannot serve")
    })
}

/// SIGINT/SIGTERM cancel the shutdown token; SIGHUP reloads the zones, all or nothing.
async fn signals(state: Arc<Control>, shutdown: CancellationToken) {
    let (Ok(mut hup), Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = hup.recv() => {
                let state = state.clone();
                let result = tokio::task::spawn_blocking(move || state.reload()).await;
                match result {
                    Ok(Ok(zones)) => tracing::info!(zones, "reloaded zones"),
                    Ok(Err(error)) => tracing::error!("reload refused, the old zones keep serving: {error}"),
                    Err(error) => tracing::error!(%error, "reload failed"),
                }
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}
