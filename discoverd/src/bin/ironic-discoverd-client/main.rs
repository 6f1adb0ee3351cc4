//! `ironic-discoverd-client`: the command-line client, compatible with
//! ironic-discoverd 1.0's `introspect` and `get_status`, with
//! ironic-inspector's `list`, `abort`, `reprocess`, `data save` and `rule`
//! commands, and `introspect --wait` following the event stream.
//!
//! Exit codes: 0 success, 1 server or network error or a failed
//! introspection under `--wait` (message on stderr), 2 usage error.
#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};
use discoverd::client::{Client, ClientAuth, ClientError, IntrospectOptions, ListQuery, Status};
use discoverd::config::Secret;
use discoverd::keystone::{Credentials, Session};
use serde_json::Value;

mod wait;

/// Largest file read for `rule create` or `reprocess --data`.
const MAX_INPUT_FILE: u64 = 64 * 1024 * 1024;

/// Client for the ironic-discoverd hardware introspection API.
///
/// Credentials: --os-auth-token, or a Keystone user (--os-auth-url,
/// --os-username, --os-password, --os-project-name, from the usual OS_*
/// variables), or HTTP basic (--http-user, --http-password); none for a
/// noauth server.
#[derive(Debug, Parser)]
#[command(name = "ironic-discoverd-client", version)]
struct Args {
    /// ironic-discoverd API URL ("/v1" is added when missing).
    #[arg(
        long,
        env = "DISCOVERD_URL",
        default_value = "http://127.0.0.1:5050",
        global = true
    )]
    discoverd_url: String,
    /// A Keystone token to send as X-Auth-Token.
    #[arg(long, env = "OS_AUTH_TOKEN", hide_env_values = true, global = true)]
    os_auth_token: Option<String>,
    /// Keystone URL, to obtain a token with the user below.
    #[arg(long, env = "OS_AUTH_URL", global = true)]
    os_auth_url: Option<String>,
    #[arg(long, env = "OS_USERNAME", global = true)]
    os_username: Option<String>,
    #[arg(long, env = "OS_PASSWORD", hide_env_values = true, global = true)]
    os_password: Option<String>,
    #[arg(long, env = "OS_PROJECT_NAME", global = true)]
    os_project_name: Option<String>,
    #[arg(long, env = "OS_USER_DOMAIN_NAME", default_value = "Default", global = true)]
    os_user_domain_name: String,
    #[arg(
        long,
        env = "OS_PROJECT_DOMAIN_NAME",
        default_value = "Default",
        global = true
    )]
    os_project_domain_name: String,
    /// HTTP basic user (auth_strategy = http_basic).
    #[arg(long, env = "DISCOVERD_HTTP_USER", global = true)]
    http_user: Option<String>,
    #[arg(long, env = "DISCOVERD_HTTP_PASSWORD", hide_env_values = true, global = true)]
    http_password: Option<String>,
    /// Seconds to wait for an answer.
    #[arg(long, default_value_t = 60, global = true)]
    timeout: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start introspection of one or more nodes (UUIDs, or names).
    Introspect {
        #[arg(required = true, value_name = "NODE")]
        nodes: Vec<String>,
        /// Set this IPMI user name on the node during introspection.
        #[arg(long)]
        new_ipmi_username: Option<String>,
        /// Set this IPMI password (1-20 alphanumeric characters).
        #[arg(long)]
        new_ipmi_password: Option<String>,
        /// Follow the nodes until all have finished (a live display on a
        /// terminal, a line per change otherwise); exit 1 if any failed.
        #[arg(long)]
        wait: bool,
    },
    /// Print a node's introspection status as JSON.
    #[command(name = "get_status", alias = "get-status", alias = "status")]
    GetStatus {
        #[arg(value_name = "NODE")]
        uuid: String,
    },
    /// List introspection statuses, newest first.
    List {
        /// The UUID of the last status of the previous page.
        #[arg(long)]
        marker: Option<String>,
        /// At most this many (the server's api_max_limit when unset).
        #[arg(long)]
        limit: Option<u32>,
        /// Only these states (comma-separated: waiting,finished,error,...).
        #[arg(long, value_delimiter = ',')]
        state: Vec<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Abort running introspections (the nodes are powered off).
    Abort {
        #[arg(required = true, value_name = "NODE")]
        nodes: Vec<String>,
    },
    /// Process the stored raw data again (or the data in --data).
    Reprocess {
        #[arg(value_name = "NODE")]
        node: String,
        /// A JSON file to process instead of the stored data.
        #[arg(long, value_name = "FILE")]
        data: Option<PathBuf>,
    },
    /// Stored introspection data.
    #[command(subcommand)]
    Data(DataCommand),
    /// Introspection rules.
    #[command(subcommand)]
    Rule(RuleCommand),
    /// Print shell completions.
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff).
    #[command(hide = true)]
    Man,
}

#[derive(Debug, Subcommand)]
enum DataCommand {
    /// Print or save a node's introspection data (JSON).
    Save {
        #[arg(value_name = "NODE")]
        node: String,
        /// Write to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// The raw data as the ramdisk sent it, not the processed data.
        #[arg(long)]
        unprocessed: bool,
    },
}

#[derive(Debug, Subcommand)]
enum RuleCommand {
    /// List the rules.
    List,
    /// Print one rule as JSON.
    Show { uuid: String },
    /// Create rules from a JSON file (one rule, or a list of rules).
    Create {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Delete one rule.
    Delete { uuid: String },
    /// Delete every rule.
    Purge,
}

fn auth(a: &Args) -> Result<ClientAuth, String> {
    if let Some(t) = &a.os_auth_token {
        return Ok(ClientAuth::Token(t.clone()));
    }
    if let (Some(user), Some(password)) = (&a.http_user, &a.http_password) {
        return Ok(ClientAuth::Basic {
            user: user.clone(),
            password: password.clone(),
        });
    }
    match (&a.os_auth_url, &a.os_username, &a.os_password, &a.os_project_name) {
        (Some(url), Some(user), Some(password), Some(project)) => {
            let creds = Credentials {
                auth_url: url.clone(),
                user: user.clone(),
                password: Secret::new(password.clone()),
                project: project.clone(),
                user_domain: a.os_user_domain_name.clone(),
                project_domain: a.os_project_domain_name.clone(),
            };
            Session::new(creds, Duration::from_secs(a.timeout))
                .map(ClientAuth::Keystone)
                .map_err(|e| e.to_string())
        }
        (Some(_), ..) => Err("--os-auth-url needs --os-username, --os-password and --os-project-name".into()),
        _ => Ok(ClientAuth::None),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match &args.command {
        Command::Completions { shell } => {
            clap_complete::generate(
                *shell,
                &mut Args::command(),
                "ironic-discoverd-client",
                &mut std::io::stdout(),
            );
            return ExitCode::SUCCESS;
        }
        Command::Man => {
            let page = clap_mangen::Man::new(Args::command());
            return match page.render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ironic-discoverd-client: {e}");
                    ExitCode::from(1)
                }
            };
        }
        _ => {}
    }
    let auth = match auth(&args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ironic-discoverd-client: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ironic-discoverd-client: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        let client = Client::new(&args.discoverd_url, auth, Duration::from_secs(args.timeout))?;
        run(&client, &args.command).await
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(Failure::Client(e)) => {
            eprintln!("ironic-discoverd-client: {e}");
            ExitCode::from(1)
        }
        Err(Failure::Input(e)) => {
            eprintln!("ironic-discoverd-client: {e}");
            ExitCode::from(2)
        }
    }
}

/// Why a command failed: the server or the network (exit 1), or what the
/// user gave (exit 2).
#[derive(Debug)]
enum Failure {
    Client(ClientError),
    Input(String),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure::Client(e)
    }
}

/// Runs one command; `false` when it ran but what it followed failed.
async fn run(client: &Client, command: &Command) -> Result<bool, Failure> {
    match command {
        Command::Introspect {
            nodes,
            new_ipmi_username,
            new_ipmi_password,
            wait,
        } => {
            let opts = IntrospectOptions {
                new_ipmi_username: new_ipmi_username.clone(),
                new_ipmi_password: new_ipmi_password.clone(),
            };
            for n in nodes {
                client.introspect(n, &opts).await?;
                eprintln!("introspection of {n} started");
            }
            if *wait {
                return Ok(wait::wait(client, nodes, std::io::stdout().is_terminal()).await?);
            }
        }
        Command::GetStatus { uuid } => {
            let st = client.get_status(uuid).await?;
            println!("{}", serde_json::to_string_pretty(&st).unwrap_or_default());
        }
        Command::List {
            marker,
            limit,
            state,
            json,
        } => {
            let q = ListQuery {
                marker: marker.clone(),
                limit: *limit,
                states: state.clone(),
            };
            let list = client.list(&q).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&list).unwrap_or_default());
            } else {
                print!("{}", table(&list));
            }
        }
        Command::Abort { nodes } => {
            for n in nodes {
                client.abort(n).await?;
                eprintln!("introspection of {n} aborting");
            }
        }
        Command::Reprocess { node, data } => {
            let body = match data {
                Some(f) => Some(read_json(f)?),
                None => None,
            };
            client.reprocess(node, body.as_ref()).await?;
            eprintln!("reprocessing of {node} started");
        }
        Command::Data(DataCommand::Save {
            node,
            file,
            unprocessed,
        }) => {
            let data = client.data(node, *unprocessed).await?;
            let text = serde_json::to_string_pretty(&data).unwrap_or_default();
            match file {
                Some(f) => std::fs::write(f, text + "\n")
                    .map_err(|e| Failure::Input(format!("cannot write {}: {e}", f.display())))?,
                None => println!("{text}"),
            }
        }
        Command::Rule(cmd) => rule(client, cmd).await?,
        Command::Completions { .. } | Command::Man => {}
    }
    Ok(true)
}

async fn rule(client: &Client, cmd: &RuleCommand) -> Result<(), Failure> {
    match cmd {
        RuleCommand::List => {
            for r in client.rules().await? {
                let text = |k: &str| r[k].as_str().unwrap_or("").to_owned();
                println!("{}  {}", text("uuid"), text("description"));
            }
        }
        RuleCommand::Show { uuid } => {
            let r = client.rule(uuid).await?;
            println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
        }
        RuleCommand::Create { file } => {
            let rules = match read_json(file)? {
                Value::Array(a) => a,
                one => vec![one],
            };
            for r in &rules {
                let created = client.create_rule(r).await?;
                println!("{}", created["uuid"].as_str().unwrap_or_default());
            }
        }
        RuleCommand::Delete { uuid } => client.delete_rule(uuid).await?,
        RuleCommand::Purge => client.delete_rules().await?,
    }
    Ok(())
}

/// A JSON file the user named (bounded in size).
fn read_json(path: &Path) -> Result<Value, Failure> {
    let bad = |e: String| Failure::Input(format!("{}: {e}", path.display()));
    let size = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?.len();
    if size > MAX_INPUT_FILE {
        return Err(bad(format!("{size} bytes, over the {MAX_INPUT_FILE}-byte limit")));
    }
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))
}

/// Statuses as an aligned table.
fn table(list: &[Status]) -> String {
    let rows: Vec<[String; 5]> = list
        .iter()
        .map(|s| {
            [
                s.uuid.clone().unwrap_or_default(),
                s.state.clone().unwrap_or_default(),
                s.started_at.clone().unwrap_or_default(),
                s.finished_at.clone().unwrap_or_default(),
                s.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let head = ["UUID", "State", "Started at", "Finished at", "Error"];
    let mut widths = head.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: [&str; 5]| -> String {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i == 4 {
                l.push_str(c);
            } else {
                l.push_str(&format!("{c:w$}  ", w = widths[i]));
            }
        }
        l.trim_end().to_owned() + "\n"
    };
    let mut out = line(head);
    for r in &rows {
        out.push_str(&line([&r[0], &r[1], &r[2], &r[3], &r[4]]));
    }
    out
}
