//! A small MCP server written with `rmcp`: what the tests reach over stdio
//! and Streamable HTTP, and a demo for operators.
//!
//! ```text
//! cargo run --features ssr --example mcp_demo_server                 # stdio
//! cargo run --features ssr --example mcp_demo_server -- --http 127.0.0.1:8765 [--bearer TOKEN]
//! ```
//!
//! Its tools: `echo` and `add` answer; `fail` answers with an error result;
//! `crash` ends the process in the middle of the call; `hang` never answers.
//! Over HTTP it prints `listening on http://ADDR/mcp` once it is, and with
//! `--bearer` refuses requests without that token.

use rmcp::{
    handler::server::{router::tool::ToolRouter, wrapper::Parameters},
    model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig},
    schemars, tool, tool_handler, tool_router, ServerHandler, ServiceExt,
};

#[derive(Debug, Clone)]
struct Demo {
    #[allow(dead_code, reason = "read by the tool_handler macro")]
    tool_router: ToolRouter<Self>,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct EchoArgs {
    /// The text to send back.
    text: String,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct AddArgs {
    a: i64,
    b: i64,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct NoArgs {}

#[tool_router]
impl Demo {
    fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }

    #[tool(description = "Sends the text back.")]
    async fn echo(&self, Parameters(EchoArgs { text }): Parameters<EchoArgs>) -> String {
        format!("echo: {text}")
    }

    #[tool(description = "Adds two integers.")]
    async fn add(&self, Parameters(AddArgs { a, b }): Parameters<AddArgs>) -> String {
        a.saturating_add(b).to_string()
    }

    #[tool(description = "Always fails, with an error result.")]
    async fn fail(&self, Parameters(NoArgs {}): Parameters<NoArgs>) -> CallToolResult {
        CallToolResult::error(vec![ContentBlock::text("the demo tool failed on purpose")])
    }

    #[tool(description = "Ends the server's process in the middle of the call.")]
    async fn crash(&self, Parameters(NoArgs {}): Parameters<NoArgs>) -> String {
        std::process::exit(3)
    }

    #[tool(description = "Never answers.")]
    async fn hang(&self, Parameters(NoArgs {}): Parameters<NoArgs>) -> String {
        std::future::pending::<()>().await;
        String::new()
    }
}

#[tool_handler]
impl ServerHandler for Demo {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_instructions("A demo server of bedrock-chat.")
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    match flag("--http") {
        None => {
            let running = Demo::new().serve(rmcp::transport::stdio()).await?;
            running.waiting().await?;
        }
        Some(addr) => serve_http(&addr, flag("--bearer")).await?,
    }
    Ok(())
}

async fn serve_http(addr: &str, bearer: Option<String>) -> Result<(), Box<dyn std::error::Error>> {
    use rmcp::transport::streamable_http_server::{
        session::local::LocalSessionManager, StreamableHttpServerConfig, StreamableHttpService,
    };
    let service = StreamableHttpService::new(
        || Ok(Demo::new()),
        std::sync::Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let expected = bearer.map(|token| format!("Bearer {token}"));
    let app = axum::Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let expected = expected.clone();
                async move {
                    let given = request
                        .headers()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    match expected {
                        Some(expected) if given.as_deref() != Some(expected.as_str()) => {
                            axum::response::IntoResponse::into_response(axum::http::StatusCode::UNAUTHORIZED)
                        }
                        _ => next.run(request).await,
                    }
                }
            },
        ));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on http://{}/mcp", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
