//! `ironic-discoverd-client`: the command-line client, compatible with
//! ironic-discoverd 1.0's `introspect` and `get_status`.
//!
//! Exit codes: 0 success, 1 server or network error (message on stderr),
//! 2 usage error.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};
use discoverd::client::{Client, ClientAuth, IntrospectOptions};
use discoverd::config::Secret;
use discoverd::keystone::{Credentials, Session};

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
    /// Start introspection of one or more nodes.
    Introspect {
        #[arg(required = true, value_name = "UUID")]
        uuids: Vec<String>,
        /// Set this IPMI user name on the node during introspection.
        #[arg(long)]
        new_ipmi_username: Option<String>,
        /// Set this IPMI password (1-20 alphanumeric characters).
        #[arg(long)]
        new_ipmi_password: Option<String>,
    },
    /// Print a node's introspection status as JSON.
    #[command(name = "get_status", alias = "get-status")]
    GetStatus {
        #[arg(value_name = "UUID")]
        uuid: String,
    },
    /// Print shell completions.
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff).
    #[command(hide = true)]
    Man,
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
        match &args.command {
            Command::Introspect {
                uuids,
                new_ipmi_username,
                new_ipmi_password,
            } => {
                let opts = IntrospectOptions {
                    new_ipmi_username: new_ipmi_username.clone(),
                    new_ipmi_password: new_ipmi_password.clone(),
                };
                for u in uuids {
                    client.introspect(u, &opts).await?;
                    eprintln!("introspection of {u} started");
                }
            }
            Command::GetStatus { uuid } => {
                let st = client.get_status(uuid).await?;
                println!("{}", serde_json::to_string_pretty(&st).unwrap_or_default());
            }
            Command::Completions { .. } | Command::Man => {}
        }
        Ok::<(), discoverd::client::ClientError>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ironic-discoverd-client: {e}");
            ExitCode::from(1)
        }
    }
}
