//! Tools of Model Context Protocol servers the operator configured
//! (`[tools] mcp_servers`), through the official SDK (`rmcp`).
//!
//! * Each server is written `"NAME=stdio:COMMAND ARGS..."` (a process the
//!   server starts and supervises) or `"NAME=http:URL"` (Streamable HTTP),
//!   optionally followed by ` bearer=ENV_VAR` (the token is read from that
//!   variable, never written in the settings).
//! * Its tools are offered to the model as `NAME__TOOL`, as the server listed
//!   them when it last connected; a conversation turns a whole server on or
//!   off by its name.
//! * A supervisor task per server connects, lists the tools, and when the
//!   connection ends (the process died, the server went away) connects again
//!   with backoff. A call while it is down, a server that fails, returns an
//!   error or garbage, each gives the model an error result; the answer's
//!   per-call timeout bounds one that never answers.

use crate::bedrock::ToolSpec;
use rmcp::{
    model::CallToolRequestParams,
    service::{Peer, RoleClient, ServiceExt},
    transport::{
        streamable_http_client::StreamableHttpClientTransportConfig, StreamableHttpClientTransport,
        TokioChildProcess,
    },
};
use serde_json::Value;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::sync::watch;

/// Between a tool's server name and its own in the name the model sees.
pub const SEPARATOR: &str = "__";
/// First and longest wait before connecting again.
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How long connecting and listing tools may take.
const CONNECT_TIME: Duration = Duration::from_secs(15);

/// How one MCP server is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    Stdio { command: String, args: Vec<String> },
    Http { url: String, bearer_env: Option<String> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpServerConfig {
    pub name: String,
    pub transport: Transport,
}

/// Reads one `mcp_servers` entry, or says what is wrong with it.
pub fn parse(entry: &str) -> Result<McpServerConfig, String> {
    let (name, rest) = entry
        .split_once('=')
        .ok_or_else(|| format!("{entry:?} is not NAME=stdio:COMMAND or NAME=http:URL"))?;
    let name = name.trim();
    if name.is_empty()
        || name.len() > 24
        || name.contains(SEPARATOR)
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "the MCP server name {name:?} must be 1 to 24 letters, digits, '-' or '_' (and no \"__\")"
        ));
    }
    let rest = rest.trim();
    let mut words: Vec<&str> = rest.split_whitespace().collect();
    let bearer_env = match words.last().and_then(|w| w.strip_prefix("bearer=")) {
        Some(var) => {
            words.pop();
            Some(var.to_owned())
        }
        None => None,
    };
    let transport = if let Some(command) = rest.strip_prefix("stdio:") {
        let mut parts = command.split_whitespace();
        let command = parts
            .next()
            .ok_or_else(|| format!("the MCP server {name:?} names no command"))?
            .to_owned();
        if bearer_env.is_some() {
            return Err(format!("the MCP server {name:?}: bearer= is for http servers"));
        }
        Transport::Stdio {
            command,
            args: parts.map(str::to_owned).collect(),
        }
    } else if let Some(url) = words.first().and_then(|w| w.strip_prefix("http:")) {
        let url = url.trim();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "the MCP server {name:?} needs an http:// or https:// URL"
            ));
        }
        Transport::Http {
            url: url.to_owned(),
            bearer_env,
        }
    } else {
        return Err(format!("the MCP server {name:?} must start with stdio: or http:"));
    };
    Ok(McpServerConfig {
        name: name.to_owned(),
        transport,
    })
}

/// Every configured MCP server, connected or reconnecting.
#[derive(Clone, Default)]
pub struct McpHub {
    servers: Arc<HashMap<String, Arc<Server>>>,
}

struct Server {
    config: McpServerConfig,
    /// The connection, while there is one.
    peer: watch::Sender<Option<Peer<RoleClient>>>,
    /// Its tools as last listed (kept while it reconnects).
    tools: Mutex<Vec<ToolSpec>>,
}

impl McpHub {
    /// Starts a supervisor for each server (inside a Tokio runtime).
    pub fn start(configs: Vec<McpServerConfig>) -> Self {
        let servers = configs
            .into_iter()
            .map(|config| {
                let server = Arc::new(Server {
                    config,
                    peer: watch::Sender::new(None),
                    tools: Mutex::default(),
                });
                tokio::spawn(supervise(server.clone()));
                (server.config.name.clone(), server)
            })
            .collect();
        Self {
            servers: Arc::new(servers),
        }
    }

    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.servers.keys().cloned().collect();
        names.sort();
        names
    }

    pub fn has(&self, server: &str) -> bool {
        self.servers.contains_key(server)
    }

    /// The tools of the servers named, as the model sees them.
    pub fn specs(&self, servers: &[String]) -> Vec<ToolSpec> {
        servers
            .iter()
            .filter_map(|name| self.servers.get(name))
            .flat_map(|server| server.tools.lock().expect("tools lock").clone())
            .collect()
    }

    /// Waits until `server` is connected (for tests and the start log).
    pub async fn connected(&self, server: &str, limit: Duration) -> bool {
        let Some(server) = self.servers.get(server) else {
            return false;
        };
        let mut peer = server.peer.subscribe();
        tokio::time::timeout(limit, peer.wait_for(Option::is_some))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Calls `NAME__TOOL`, if it names a tool of one of these servers.
    pub fn call(
        &self,
        full_name: &str,
        input: Value,
    ) -> Option<impl std::future::Future<Output = Result<String, String>>> {
        let (server_name, tool) = full_name.split_once(SEPARATOR)?;
        let server = self.servers.get(server_name)?.clone();
        let tool = tool.to_owned();
        Some(async move {
            let peer = server.peer.borrow().clone().ok_or_else(|| {
                format!(
                    "The tool server {:?} is not connected right now (it is being restarted). Try again shortly.",
                    server.config.name
                )
            })?;
            let arguments = match input {
                Value::Object(map) => map,
                _ => serde_json::Map::new(),
            };
            let result = peer
                .call_tool(CallToolRequestParams::new(tool.clone()).with_arguments(arguments))
                .await
                .map_err(|err| {
                    format!(
                        "The tool server {:?} failed during the call of {tool:?}: {err}",
                        server.config.name
                    )
                })?;
            let text: Vec<String> = result
                .content
                .iter()
                .map(|block| match block.as_text() {
                    Some(text) => text.text.clone(),
                    None => "[content that is not text]".to_owned(),
                })
                .collect();
            let text = match (text.is_empty(), &result.structured_content) {
                (true, Some(value)) => value.to_string(),
                _ => text.join("\n"),
            };
            if result.is_error == Some(true) {
                Err(text)
            } else {
                Ok(text)
            }
        })
    }
}

/// Keeps one server connected: connect, list its tools, wait for the end of
/// the connection, and again, with backoff while it keeps failing.
async fn supervise(server: Arc<Server>) {
    let name = server.config.name.clone();
    let mut wait = BACKOFF_FIRST;
    loop {
        match tokio::time::timeout(CONNECT_TIME, connect(&server.config)).await {
            Ok(Ok(running)) => {
                match tokio::time::timeout(CONNECT_TIME, running.peer().list_all_tools()).await {
                    Ok(Ok(tools)) => {
                        let specs = tools
                            .into_iter()
                            .map(|tool| ToolSpec {
                                name: format!("{name}{SEPARATOR}{}", tool.name),
                                description: tool
                                    .description
                                    .map(|d| d.to_string())
                                    .unwrap_or_else(|| format!("A tool of the {name} server.")),
                                input_schema: Value::Object((*tool.input_schema).clone()),
                            })
                            .collect::<Vec<_>>();
                        tracing::info!(server = %name, tools = specs.len(), "MCP server connected");
                        *server.tools.lock().expect("tools lock") = specs;
                        server.peer.send_replace(Some(running.peer().clone()));
                        wait = BACKOFF_FIRST;
                        let reason = running.waiting().await;
                        server.peer.send_replace(None);
                        tracing::warn!(server = %name, ?reason, "MCP server connection ended; reconnecting");
                    }
                    Ok(Err(err)) => {
                        tracing::warn!(server = %name, error = %err, "MCP server did not list its tools")
                    }
                    Err(_) => tracing::warn!(server = %name, "MCP server did not list its tools in time"),
                }
            }
            Ok(Err(err)) => tracing::warn!(server = %name, error = %err, "cannot connect to MCP server"),
            Err(_) => tracing::warn!(server = %name, "connecting to MCP server timed out"),
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(BACKOFF_MAX);
    }
}

type Running = rmcp::service::RunningService<RoleClient, ()>;

async fn connect(config: &McpServerConfig) -> Result<Running, String> {
    match &config.transport {
        Transport::Stdio { command, args } => {
            let mut cmd = tokio::process::Command::new(command);
            cmd.args(args).kill_on_drop(true);
            let transport =
                TokioChildProcess::new(cmd).map_err(|e| format!("cannot start {command:?}: {e}"))?;
            ().serve(transport).await.map_err(|e| e.to_string())
        }
        Transport::Http { url, bearer_env } => {
            let mut http = StreamableHttpClientTransportConfig::with_uri(url.clone());
            if let Some(var) = bearer_env {
                let token = std::env::var(var).map_err(|_| format!("the variable {var} holds no token"))?;
                http = http.auth_header(token);
            }
            let transport = StreamableHttpClientTransport::from_config(http);
            ().serve(transport).await.map_err(|e| e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_name_a_command_or_a_url() {
        assert_eq!(
            parse("files=stdio: npx -y server-files /tmp").unwrap(),
            McpServerConfig {
                name: "files".into(),
                transport: Transport::Stdio {
                    command: "npx".into(),
                    args: vec!["-y".into(), "server-files".into(), "/tmp".into()],
                },
            }
        );
        assert_eq!(
            parse("docs=http:https://mcp.example.com/mcp bearer=DOCS_TOKEN")
                .unwrap()
                .transport,
            Transport::Http {
                url: "https://mcp.example.com/mcp".into(),
                bearer_env: Some("DOCS_TOKEN".into()),
            }
        );
        for bad in [
            "nameless",
            "a__b=stdio:x",
            "x=stdio:",
            "x=ftp://h",
            "x=http:localhost",
            "x=stdio:cmd bearer=T",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
